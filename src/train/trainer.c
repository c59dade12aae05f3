/* trainer.c - `diffuse train`; see trainer.h.
 *
 * Step s (0-based) uses, for every sample b of the full batch, the image index, flip, tau and
 * noise drawn at (seed, train_stream(s, b, purpose)), so training is a pure function of the
 * checkpointed state (weights, EMA, AdamW moments, step, seed): a resumed run is bit-identical
 * to an uninterrupted one with the same thread count. Learning rate and EMA decay: train/schedule.h
 * (by default linear warmup to lr over `warmup` steps, then constant, as DDPM). Nothing is allocated per step once the graph arena
 * has reached its high-water mark on the first step.
 *
 * trainer_open does everything that can fail on bad input (data, model, checkpoint, memory
 * estimate) and writes nothing; trainer_run is the first to write into the run directory.
 */
#include "train/trainer.h"
#include "train/schedule.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/functions.h"
#include "backend/comm.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/rng.h"
#include "diffusion/unet_denoiser.h"
#include "diffusion/objective.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/image.h"
#include "nn/checkpoint.h"
#include "samplers/sampler.h"

/* ---- helpers ---- */

struct Trainer {
  const RunConfig *rc;
  TrainOptions opt;
  Dataset data;
  Diffusion diffusion;
  Objective objective;
  UNet model;
  Graph graph;
  cJSON *config_json;
  char *ckpt_path, *log_path, *config_path, *samples_dir;
  long step, first_step, saved_step; /* the next step to run; where this run started; the last checkpoint */
  bool data_failed;                  /* a batch could not be read: stop, but the weights are good */
  SamplerOptions grid_sampler; /* DDIM, trailing spacing (EDM: karras): the first step at tau_max */
  float *grid_noise, *grid_work;
  int *batch_idx, *batch_labels;
  uint8_t *batch_flip;
  float *batch_host; /* one micro-batch of images, read on the host before the upload */
  double *step_tau, *step_terms; /* train.loss vlb: (train.batch) each, one buffer (terms after tau), every rank's
                                    samples, for the loss history */
  float *terms_host;             /* (micro) one micro-batch's bound terms */
  int per_rank, micro; /* images per step on this rank (train.batch / ranks), per forward pass */
};

static void save_sample_grid(Trainer *tr, long step, const TrainCallbacks *cb) {
  const RunConfig *rc = tr->rc;
  const UNetConfig *m = &rc->model;
  if (m->classifier) return; /* nothing to sample */
  const int N = rc->train.sample_n;
  const size_t per = (size_t)m->in_channels * m->resolution * m->resolution;
  float *x = xmalloc((size_t)N * per * sizeof(float));
  memcpy(x, tr->grid_noise, (size_t)N * per * sizeof(float)); /* the same noise at every grid */
  int *labels = NULL;
  if (m->num_classes > 0) {
    labels = xmalloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) labels[i] = i % m->num_classes;
  }
  params_swap_ema(&tr->model.params);
  UNetDenoiser ctx = {.diffusion = &tr->diffusion, .model = &tr->model, .graph = &tr->graph, .labels = labels};
  Denoiser den = unet_denoiser(&ctx);
  NoiseSource unused = noise_source_rng(0, 0); /* DDIM with eta = 0 draws no noise */
  sampler_run(&tr->grid_sampler, &tr->diffusion, &den, &unused, x, N, per, tr->grid_work);
  params_swap_ema(&tr->model.params);
  char err[512], *path = xasprintf("%s/step_%07ld.png", tr->samples_dir, step);
  if (image_write_grid_png(path, x, N, m->in_channels, m->resolution, m->resolution, err, sizeof err))
    fprintf(stderr, "diffuse train: warning: %s\n", err);
  else if (cb && cb->on_sample)
    cb->on_sample(cb->ctx, step, path);
  free(path);
  free(x);
  free(labels);
}

/* The checkpoint's training state: step, seed and (train.loss vlb) the loss history table. */
static TrainProgress train_progress(Trainer *tr) {
  const LossHistory *h = &tr->objective.history;
  return (TrainProgress){tr->step, (uint64_t)tr->rc->train.seed, h->table, h->T, 1 + LOSS_HISTORY_PER_T, false};
}

static int save_checkpoint(Trainer *tr, const TrainCallbacks *cb, char *err, size_t errlen) {
  const TrainProgress prog = train_progress(tr);
  if (cb && cb->on_save) cb->on_save(cb->ctx, true);
  const int rc = checkpoint_save(tr->ckpt_path, &tr->model, tr->config_json, &prog, err, errlen);
  if (cb && cb->on_save) cb->on_save(cb->ctx, false);
  return rc;
}

/* For messages: "the last good checkpoint is PATH", or that there is none. */
static const char *last_checkpoint(const Trainer *tr, char *buf, size_t n) {
  if (access(tr->ckpt_path, F_OK) != 0) return "no checkpoint was written yet";
  snprintf(buf, n, "the last good checkpoint is %s", tr->ckpt_path);
  return buf;
}

/* Name of the first parameter holding a non-finite value in buf (a flat buffer of p), or NULL. */
static const char *first_nonfinite(const ParamTable *p, const BackendMem *buf) {
  const size_t at = p->backend->ops->find_nonfinite(p->backend, buf, p->total);
  for (int i = 0; i < p->count && at < p->total; i++)
    if (at >= p->info[i].offset && at < p->info[i].offset + p->info[i].numel) return p->info[i].name;
  return NULL; /* none, or in the padding between parameters (never written) */
}

/* One optimizer step; returns the loss, or NAN after printing why it stopped (a non-finite value,
 * an unreadable streamed image). */
static double train_step(Trainer *tr, long step, double *grad_norm_out) {
  const RunConfig *rc = tr->rc;
  const TrainConfig *t = &rc->train;
  const UNetConfig *m = &rc->model;
  const int micro = tr->micro, n_micro = tr->per_rank / micro, ranks = comm_size();
  const int first = comm_rank() * tr->per_rank; /* this rank's samples of the step's batch: first .. */
  const uint64_t seed = (uint64_t)t->seed;
  ParamTable *p = &tr->model.params;
  params_zero_grad(p);
  double loss_sum = 0.0;
  bool failed = false;
  const bool bound_history = tr->objective.loss == LOSS_VLB;
  if (bound_history) {
    memset(tr->step_tau, 0, 2 * (size_t)t->batch * sizeof(double));
  }
  for (int k = 0; k < n_micro && !failed; k++) {
    Graph *g = &tr->graph;
    graph_reset(g);
    g->grad_enabled = true;
    g->training = true;
    for (int b = 0; b < micro; b++) {
      const int s = first + k * micro + b;
      tr->batch_idx[b] = (int)(rng_uniform(seed, train_stream(step, s, STREAM_INDEX), 0) * (float)tr->data.n);
      if (tr->batch_idx[b] >= tr->data.n) tr->batch_idx[b] = tr->data.n - 1;
      tr->batch_flip[b] = rc->data.flip && rng_uniform(seed, train_stream(step, s, STREAM_FLIP), 0) < 0.5f;
    }
    const int shape[4] = {micro, m->in_channels, m->resolution, m->resolution};
    char err[1024];
    if (dataset_get_batch(&tr->data, tr->batch_idx, tr->batch_flip, micro, tr->batch_host,
                          m->num_classes > 0 ? tr->batch_labels : NULL, err, sizeof err)) {
      fprintf(stderr, "diffuse train: %s; stopping at step %ld\n", err, step + 1);
      failed = true;
      break;
    }
    for (int b = 0; b < micro && m->null_class; b++) /* classifier-free guidance: the null class num_classes */
      if (rng_uniform(seed, train_stream(step, first + k * micro + b, STREAM_LABEL_DROP), 0) < (float)t->p_uncond)
        tr->batch_labels[b] = m->num_classes;
    Tensor *x0 = graph_tensor_upload(g, 4, shape, tr->batch_host);
    const int piece_first = first + k * micro;
    Tensor *terms = NULL;
    Tensor *loss = m->classifier
                       ? classifier_training_loss(&tr->diffusion, &tr->objective, &tr->model, g, x0, tr->batch_labels,
                                                  seed, step, piece_first)
                       : diffusion_training_loss(&tr->diffusion, &tr->objective, &tr->model, g, x0,
                                                 m->num_classes > 0 ? tr->batch_labels : NULL, seed, step, piece_first,
                                                 bound_history ? tr->step_tau + piece_first : NULL,
                                                 bound_history ? &terms : NULL);
    float loss_value;
    tensor_download(loss, &loss_value);
    if (bound_history) {
      tensor_download(terms, tr->terms_host);
      for (int b = 0; b < micro; b++) tr->step_terms[piece_first + b] = tr->terms_host[b];
    }
    loss_sum += loss_value;
    /* each piece's share of the batch mean, so the sum over pieces and ranks is the full batch's gradient */
    const int pieces = n_micro * ranks;
    graph_backward(g, pieces > 1 ? ag_scale(g, loss, 1.0f / (float)pieces) : loss);
  }
  if (comm_any(failed)) { /* every rank stops at the same step: the weights are intact, trainer_run saves */
    tr->data_failed = true;
    return NAN;
  }
  const Backend *be = p->backend;
  comm_sum_backend_floats(be, p->grad, p->total); /* all ranks now hold the same gradient */
  comm_sum_doubles(&loss_sum, 1);
  const double loss = loss_sum / (n_micro * ranks);
  const double norm = sqrt(be->ops->sum_squares(be, p->grad, p->total)); /* double sum: finite iff every element is */
  const char *bad = isfinite(norm) ? NULL : first_nonfinite(p, p->grad);
  if (!isfinite(loss) || !isfinite(norm)) { /* the same on every rank: they hold the same numbers */
    char ck[1200];
    if (comm_is_root())
      fprintf(stderr, "diffuse train: non-finite %s at step %ld%s%s; stopping (%s). Lower train.lr or check the data.\n",
            isfinite(loss) ? "gradient" : "loss", step + 1, bad ? ", first non-finite gradient: " : "", bad ? bad : "",
            last_checkpoint(tr, ck, sizeof ck));
    return NAN;
  }
  const double clip = t->grad_clip > 0 ? t->grad_clip / (norm + 1e-6) : 1.0; /* torch.nn.utils.clip_grad_norm_ */
  const OptimStep os = {schedule_lr(t, step + 1), t->beta1, t->beta2, t->adam_eps, t->weight_decay, step + 1,
                        clip < 1.0 ? (float)clip : 1.0f, schedule_ema_decay(t, step + 1)};
  be->ops->optim_step(be, p->data, p->grad, p->adam_m, p->adam_v, p->ema, p->total, &os);
  bad = first_nonfinite(p, p->data);
  if (bad) {
    char ck[1200];
    if (comm_is_root())
      fprintf(stderr, "diffuse train: non-finite weight %s after step %ld; stopping (%s).\n", bad, step + 1,
            last_checkpoint(tr, ck, sizeof ck));
    return NAN;
  }
  if (bound_history) { /* every rank folds in every sample's term, in sample order: the same table everywhere */
    comm_sum_doubles(tr->step_tau, 2 * (size_t)t->batch); /* tau and terms in one all-reduce */
    objective_record_terms(&tr->objective, tr->step_tau, tr->step_terms, t->batch);
  }
  *grad_norm_out = norm;
  return loss;
}

static int trainer_setup(Trainer *tr, char *err, size_t errlen);

/* Refuse a training batch that cannot fit: the parameter state (weights, gradients, two AdamW moments,
 * EMA) plus the activations of one micro-batch, measured on batches of 1 and 2 and extrapolated. */
static int check_training_memory(Trainer *tr, char *err, size_t errlen) {
  const size_t total = memory_total_bytes();
  const int micro = tr->micro;
  const double state = 5.0 * sizeof(float) * (double)tr->model.params.total;
  const double a1 = (double)unet_activation_bytes(&tr->model, 1, true, NULL);
  const double a2 = (double)unet_activation_bytes(&tr->model, 2, true, NULL);
  const double need = state + a1 + (a2 - a1) * (micro - 1);
  if (total == 0 || need <= (double)total) return 0;
  char need_s[32], state_s[32], total_s[32];
  return errorf(err, errlen,
                "a training step at micro-batch %d needs about %s (parameter state %s + activations), more than this "
                "machine's %s: lower train.batch (--batch), or set train.micro_batch to accumulate gradients over "
                "smaller pieces",
                micro, format_bytes(need_s, sizeof need_s, need), format_bytes(state_s, sizeof state_s, state),
                format_bytes(total_s, sizeof total_s, (double)total));
}

Trainer *trainer_open(const RunConfig *rc, const TrainOptions *opt, char *err, size_t errlen) {
  Trainer *tr = xcalloc(1, sizeof *tr);
  tr->rc = rc;
  tr->opt = *opt;
  if (trainer_setup(tr, err, errlen)) {
    trainer_close(tr);
    return NULL;
  }
  return tr;
}

static int trainer_setup(Trainer *tr, char *err, size_t errlen) {
  const RunConfig *rc = tr->rc;
  const UNetConfig *m = &rc->model;
  const char *out = tr->opt.out_dir;
  tr->ckpt_path = xasprintf("%s/ckpt.safetensors", out);
  tr->log_path = xasprintf("%s/log.jsonl", out);
  tr->config_path = xasprintf("%s/config.json", out);
  tr->samples_dir = xasprintf("%s/samples", out);
  tr->config_json = run_config_to_json(rc);

  if (!rc->data.path[0]) return errorf(err, errlen, "no training data: give --data PATH or data.path in the config");
  DatasetOptions dopt = {.kind = DATASET_AUTO, .path = rc->data.path, .resolution = m->resolution,
                         .channels = m->in_channels, .center_crop = rc->data.center_crop,
                         .train_split = strcmp(rc->data.split, "train") == 0, .skip_bad = tr->opt.skip_bad,
                         .with_labels = m->num_classes > 0, .max_images = rc->data.max_images,
                         .seed = (uint64_t)rc->train.seed,
                         .cache_limit_bytes = (size_t)rc->data.cache_mb << 20};
  if (!strncmp(rc->data.path, "procedural:", 11)) { /* generated shapes, for smoke tests: procedural:COUNT */
    char *end;
    const long count = strtol(rc->data.path + 11, &end, 10);
    if (*end || count < 1 || count > 10000000)
      return errorf(err, errlen, "data.path '%s': write procedural:COUNT with COUNT a number of images", rc->data.path);
    dopt.kind = DATASET_PROCEDURAL;
    dopt.procedural_count = (int)count;
  }
  if (dataset_load(&tr->data, &dopt, err, errlen)) return -1;
  if (tr->data.skipped) fprintf(stderr, "diffuse train: skipped %d unreadable image(s)\n", tr->data.skipped);
  if (m->num_classes > 0 && tr->data.num_classes > m->num_classes)
    return errorf(err, errlen, "%s has %d classes but model.num_classes is %d", rc->data.path, tr->data.num_classes,
                  m->num_classes);
  if (diffusion_init(&tr->diffusion, &rc->diffusion, err, errlen) ||
      objective_init(&tr->objective, &tr->diffusion, rc->train.loss, rc->train.loss_weighting, rc->train.min_snr_gamma,
                     err, errlen))
    return -1;
  sampler_options_default(&tr->grid_sampler, SAMPLER_DDIM, rc->train.sample_steps);
  tr->grid_sampler.spacing = tr->diffusion.kind == DIFFUSION_EDM ? SPACING_KARRAS : SPACING_TRAILING;
  char why[256];
  if (sampler_check(&tr->grid_sampler, &tr->diffusion, why, sizeof why))
    return errorf(err, errlen, "train.sample_steps: %s", why);

  const int ranks = comm_size();
  if (rc->train.batch % ranks)
    return errorf(err, errlen, "train.batch %d does not split evenly across %d ranks: choose a multiple of %d",
                  rc->train.batch, ranks, ranks);
  tr->per_rank = rc->train.batch / ranks;
  tr->micro = rc->train.micro_batch ? rc->train.micro_batch : tr->per_rank;
  if (tr->per_rank % tr->micro)
    return errorf(err, errlen, "train.micro_batch %d must divide the %d images of each of the %d ranks",
                  rc->train.micro_batch, tr->per_rank, ranks);
  unet_init(&tr->model, m, tr->opt.backend);
  if (check_training_memory(tr, err, errlen)) return -1;
  params_alloc_optimizer(&tr->model.params);
  tr->step = 0;
  if (tr->opt.resume) {
    params_alloc_ema(&tr->model.params);
    TrainProgress prog = train_progress(tr);
    const CheckpointLoadOptions lo = {.for_training = true};
    if (checkpoint_load(tr->opt.resume, &tr->model, &lo, &prog, err, errlen)) return -1;
    char bad_history[512];
    if (prog.loss_history && !prog.loss_history_found)
      fprintf(stderr, "diffuse train: note: %s has no L_vlb loss history (trained with another train.loss): t is "
                      "drawn uniformly until every t has %d terms again\n", tr->opt.resume, LOSS_HISTORY_PER_T);
    else if (prog.loss_history && objective_history_loaded(&tr->objective, bad_history, sizeof bad_history))
      return errorf(err, errlen, "%s: train.loss_history: %s (a corrupt checkpoint)", tr->opt.resume, bad_history);
    if (prog.seed != (uint64_t)rc->train.seed)
      fprintf(stderr, "diffuse train: note: resuming with seed %d (checkpoint used %llu)\n", rc->train.seed,
              (unsigned long long)prog.seed);
    if (prog.step >= rc->train.steps)
      return errorf(err, errlen, "%s is at step %ld, so train.steps %d leaves nothing to train: give --steps above %ld",
                    tr->opt.resume, prog.step, rc->train.steps, prog.step);
    tr->step = prog.step;
  } else {
    unet_init_weights(&tr->model, (uint64_t)rc->train.seed);
    params_alloc_ema(&tr->model.params);
  }
  tr->first_step = tr->saved_step = tr->step;
  graph_init(&tr->graph, tr->opt.backend, 64u << 20);
  const int micro = tr->micro;
  tr->batch_idx = xmalloc((size_t)micro * sizeof(int));
  tr->batch_labels = xmalloc((size_t)micro * sizeof(int));
  tr->batch_flip = xmalloc((size_t)micro);
  tr->batch_host = xmalloc((size_t)micro * m->in_channels * m->resolution * m->resolution * sizeof(float));
  if (tr->objective.loss == LOSS_VLB) {
    tr->step_tau = xmalloc(2 * (size_t)rc->train.batch * sizeof(double));
    tr->step_terms = tr->step_tau + rc->train.batch;
    tr->terms_host = xmalloc((size_t)micro * sizeof(float));
  }
  const size_t per = (size_t)m->in_channels * m->resolution * m->resolution, N = (size_t)rc->train.sample_n;
  tr->grid_noise = xmalloc(N * per * sizeof(float));
  tr->grid_work = xmalloc(sampler_work_floats(&tr->grid_sampler, N * per) * sizeof(float));
  rng_fill_normal(tr->grid_noise, N * per, (uint64_t)rc->train.seed, 0xF1C5ED0000000000ull, 0);
  const float prior = (float)diffusion_prior_std(&tr->diffusion);
  for (size_t i = 0; i < N * per; i++) tr->grid_noise[i] *= prior;
  return 0;
}

int trainer_step(Trainer *tr, double *loss) {
  double norm = 0.0;
  const double l = train_step(tr, tr->step, &norm);
  if (isnan(l)) return -1;
  tr->step++;
  if (loss) *loss = l;
  return 0;
}

Graph *trainer_graph(Trainer *tr) { return &tr->graph; }

void trainer_close(Trainer *tr) {
  if (!tr) return;
  dataset_free(&tr->data);
  objective_free(&tr->objective);
  diffusion_free(&tr->diffusion);
  unet_free(&tr->model);
  graph_free(&tr->graph);
  cJSON_Delete(tr->config_json);
  free(tr->grid_noise), free(tr->grid_work), free(tr->batch_idx), free(tr->batch_labels), free(tr->batch_flip),
      free(tr->batch_host), free(tr->step_tau), free(tr->terms_host);
  free(tr->ckpt_path), free(tr->log_path), free(tr->config_path), free(tr->samples_dir);
  free(tr);
}

/* log.jsonl, appended to; never through a symlink planted in the run directory. */
static FILE *open_log(const char *path, char *err, size_t errlen) {
  const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;
  if (!f) {
    const int e = errno;
    if (fd >= 0) close(fd);
    errorf(err, errlen, "%s: cannot open: %s", path,
           e == ELOOP ? "it is a symbolic link (remove it; the log is never written through a link)" : strerror(e));
  }
  return f;
}

/* Rank 0's checkpoint, agreed on: every rank learns whether it failed. */
static int save_checkpoint_agreed(Trainer *tr, const TrainCallbacks *cb, char *err, size_t errlen) {
  const bool failed = comm_is_root() && save_checkpoint(tr, cb, err, errlen);
  if (failed) fprintf(stderr, "diffuse train: %s\n", err);
  if (comm_any(failed)) return -1;
  tr->saved_step = tr->step;
  return 0;
}

/* Rank 0 writes the run directory (log, config, checkpoints, grids); the other ranks only compute. */
TrainOutcome trainer_run(Trainer *tr, const TrainCallbacks *cb) {
  const RunConfig *rc = tr->rc;
  const TrainConfig *t = &rc->train;
  const bool root = comm_is_root();
  char err[1024];
  FILE *log = NULL;
  int failed = 0;
  if (root) {
    log = open_log(tr->log_path, err, sizeof err); /* first: the likelier failure, before anything is written */
    char *text = log ? cJSON_Print(tr->config_json) : NULL;
    failed = !log || atomic_file_write(tr->config_path, text, strlen(text), err, sizeof err);
    free(text);
    if (failed) fprintf(stderr, "diffuse train: %s\n", err);
  }
  if (comm_any(failed)) {
    if (log) fclose(log);
    return TRAIN_FAILED;
  }
  if (root)
    fprintf(stderr, "diffuse train: %d images (%dx%dx%d), %zu parameters, batch %d%s, steps %ld -> %d, out %s\n",
            tr->data.n, tr->data.C, tr->data.H, tr->data.W, tr->model.params.total, t->batch,
            comm_size() > 1 ? " across the ranks" : "", tr->step, t->steps, tr->opt.out_dir);
  const double t0 = now_seconds();
  double window_t = t0, loss_acc = 0.0, norm_last = 0.0;
  int window_n = 0;
  bool stopped = false;
  while (tr->step < t->steps && !failed && !(stopped = comm_any(cb && cb->should_stop && cb->should_stop(cb->ctx)))) {
    double norm = 0.0;
    const double loss = train_step(tr, tr->step, &norm);
    if (isnan(loss)) {
      failed = 1;
      break;
    }
    const long step = ++tr->step;
    loss_acc += loss, norm_last = norm, window_n++;
    const bool last = step == t->steps;
    if (root && (step % t->log_every == 0 || last)) {
      const double now = now_seconds(), ips = window_n * (double)t->batch / (now - window_t);
      const TrainReport r = {step, t->steps, loss_acc / window_n, norm_last, schedule_lr(t, step), ips,
                             (t->steps - step) * (double)t->batch / ips, now - t0};
      fprintf(log,
              "{\"step\": %ld, \"loss\": %.6g, \"lr\": %.6g, \"grad_norm\": %.6g, \"img_per_s\": %.4g, \"elapsed\": "
              "%.3f}\n",
              r.step, r.loss, r.lr, r.grad_norm, r.img_per_s, r.elapsed_s);
      fflush(log);
      if (cb && cb->on_report) cb->on_report(cb->ctx, &r);
      loss_acc = 0.0, window_n = 0, window_t = now_seconds();
    }
    if (t->ckpt_every && step % t->ckpt_every == 0 && !last && save_checkpoint_agreed(tr, cb, err, sizeof err))
      failed = 1;
    if (root && !failed && t->sample_every && step % t->sample_every == 0 && !last) save_sample_grid(tr, step, cb);
  }
  if (root && cb && cb->on_report) cb->on_report(cb->ctx, NULL);
  if ((!failed || tr->data_failed) && tr->step > tr->saved_step) {
    if (save_checkpoint_agreed(tr, cb, err, sizeof err)) {
      failed = 1;
    } else if (tr->data_failed && root) {
      fprintf(stderr, "diffuse train: the %ld steps done are saved in %s (continue with --resume %s)\n",
              tr->step - tr->first_step, tr->ckpt_path, tr->ckpt_path);
    }
  } else if (tr->data_failed && root) {
    char ck[1200];
    fprintf(stderr, "diffuse train: no steps since the last checkpoint (%s)\n", last_checkpoint(tr, ck, sizeof ck));
  }
  if (log) fclose(log);
  if (failed) return TRAIN_FAILED;
  if (stopped && root) {
    if (tr->step > tr->first_step)
      fprintf(stderr, "diffuse train: stopped at step %ld of %d; checkpoint %s (continue with --resume %s)\n",
              tr->step, t->steps, tr->ckpt_path, tr->ckpt_path);
    else
      fprintf(stderr, "diffuse train: stopped before the first step; nothing to save\n");
  }
  if (stopped) return TRAIN_STOPPED;
  if (!root) return TRAIN_FINISHED;
  save_sample_grid(tr, tr->step, cb);
  fprintf(stderr, "diffuse train: done, %ld steps in %.1fs; checkpoint %s, samples in %s\n",
          tr->step - tr->first_step, now_seconds() - t0, tr->ckpt_path, tr->samples_dir);
  return TRAIN_FINISHED;
}
