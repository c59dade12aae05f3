/* trainer.c - `diffuse train`; see trainer.h.
 *
 * Step s (0-based) uses, for every sample b of the full batch, the image index, flip, tau and
 * noise drawn at (seed, train_stream(s, b, purpose)), so training is a pure function of the
 * checkpointed state (weights, EMA, AdamW moments, step, seed): a resumed run is bit-identical
 * to an uninterrupted one with the same thread count. Learning rate: linear warmup to lr over
 * `warmup` steps, then constant (DDPM). Nothing is allocated per step once the graph arena
 * has reached its high-water mark on the first step.
 */
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "core/rng.h"
#include "diffusion/denoiser.h"
#include "diffusion/objective.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/image.h"
#include "nn/checkpoint.h"
#include "samplers/sampler.h"
#include "train/optim.h"

/* ---- helpers ---- */

static volatile sig_atomic_t g_stop_signal = 0;
static void on_signal(int sig) { g_stop_signal = sig; }

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int make_dir(const char *path, char *err, size_t errlen) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0755) && errno != EEXIST) return errorf(err, errlen, "%s: cannot create: %s", buf, strerror(errno));
      *p = '/';
    }
  if (mkdir(buf, 0755) && errno != EEXIST) return errorf(err, errlen, "%s: cannot create: %s", buf, strerror(errno));
  return 0;
}

static void format_duration(char *buf, size_t n, double s) {
  if (!isfinite(s) || s < 0) snprintf(buf, n, "?");
  else if (s < 60) snprintf(buf, n, "%.0fs", s);
  else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
  else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

typedef struct {
  const RunConfig *rc;
  const TrainOptions *opt;
  Dataset data;
  Diffusion diffusion;
  UNet model;
  Graph graph;
  cJSON *config_json;
  char ckpt_path[1100], log_path[1100];
  SamplerOptions grid_sampler; /* DDIM, trailing spacing: the first step at tau_max */
  float *grid_noise, *grid_work;
  int *batch_idx, *batch_labels;
  uint8_t *batch_flip;
} Trainer;

static void save_sample_grid(Trainer *tr, long step) {
  const RunConfig *rc = tr->rc;
  const UNetConfig *m = &rc->model;
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
  UNetDenoiser ctx = {&tr->diffusion, &tr->model, &tr->graph, labels};
  Denoiser den = unet_denoiser(&ctx);
  NoiseSource unused = noise_source_rng(0, 0); /* DDIM with eta = 0 draws no noise */
  sampler_run(&tr->grid_sampler, &tr->diffusion, &den, &unused, x, N, per, tr->grid_work);
  params_swap_ema(&tr->model.params);
  char path[1200], err[512];
  snprintf(path, sizeof path, "%s/samples/step_%07ld.png", tr->opt->out_dir, step);
  if (image_write_grid_png(path, x, N, m->in_channels, m->resolution, m->resolution, err, sizeof err))
    fprintf(stderr, "diffuse train: warning: %s\n", err);
  free(x);
  free(labels);
}

static int save_checkpoint(Trainer *tr, long step, char *err, size_t errlen) {
  const TrainProgress prog = {step, (uint64_t)tr->rc->train.seed};
  return checkpoint_save(tr->ckpt_path, &tr->model, tr->config_json, &prog, err, errlen);
}

/* Name of the first parameter holding a non-finite value in buf, or NULL. */
static const char *first_nonfinite(const ParamTable *p, const float *buf) {
  for (int i = 0; i < p->count; i++)
    for (size_t k = 0; k < p->info[i].numel; k++)
      if (!isfinite(buf[p->info[i].offset + k])) return p->info[i].name;
  return NULL;
}

/* One optimizer step; returns the loss, or NAN after printing why it stopped (a non-finite value,
 * an unreadable streamed image). */
static double train_step(Trainer *tr, long step, double *grad_norm_out) {
  const RunConfig *rc = tr->rc;
  const TrainConfig *t = &rc->train;
  const UNetConfig *m = &rc->model;
  const int micro = t->micro_batch ? t->micro_batch : t->batch, n_micro = t->batch / micro;
  const uint64_t seed = (uint64_t)t->seed;
  ParamTable *p = &tr->model.params;
  params_zero_grad(p);
  double loss_sum = 0.0;
  for (int k = 0; k < n_micro; k++) {
    Graph *g = &tr->graph;
    graph_reset(g);
    g->grad_enabled = true;
    g->training = true;
    for (int b = 0; b < micro; b++) {
      const int s = k * micro + b;
      tr->batch_idx[b] = (int)(rng_uniform(seed, train_stream(step, s, STREAM_INDEX), 0) * (float)tr->data.n);
      if (tr->batch_idx[b] >= tr->data.n) tr->batch_idx[b] = tr->data.n - 1;
      tr->batch_flip[b] = rc->data.flip && rng_uniform(seed, train_stream(step, s, STREAM_FLIP), 0) < 0.5f;
    }
    const int shape[4] = {micro, m->in_channels, m->resolution, m->resolution};
    Tensor *x0 = graph_tensor(g, 4, shape);
    char err[1024];
    if (dataset_get_batch(&tr->data, tr->batch_idx, tr->batch_flip, micro, x0->data,
                          m->num_classes > 0 ? tr->batch_labels : NULL, err, sizeof err)) {
      fprintf(stderr, "diffuse train: %s; stopping at step %ld (last checkpoint: %s)\n", err, step + 1, tr->ckpt_path);
      return NAN;
    }
    Tensor *loss = diffusion_training_loss(&tr->diffusion, &tr->model, g, x0,
                                           m->num_classes > 0 ? tr->batch_labels : NULL, seed, step, k * micro);
    loss_sum += loss->data[0];
    graph_backward(g, n_micro > 1 ? ag_scale(g, loss, 1.0f / (float)n_micro) : loss);
  }
  const double loss = loss_sum / n_micro;
  const char *bad = first_nonfinite(p, p->grad);
  if (!isfinite(loss) || bad) {
    const bool have_ckpt = access(tr->ckpt_path, F_OK) == 0;
    fprintf(stderr, "diffuse train: non-finite %s at step %ld%s%s; stopping (%s%s). Lower train.lr or check the data.\n",
            isfinite(loss) ? "gradient" : "loss", step + 1, bad ? ", first non-finite gradient: " : "", bad ? bad : "",
            have_ckpt ? "the last good checkpoint is " : "no checkpoint was written yet", have_ckpt ? tr->ckpt_path : "");
    return NAN;
  }
  const double norm = t->grad_clip > 0 ? grad_clip(p->grad, p->total, t->grad_clip) : grad_norm(p->grad, p->total);
  const double warm = t->warmup > 0 ? fmin(1.0, (double)(step + 1) / t->warmup) : 1.0;
  const AdamWConfig adam = {t->lr * warm, t->beta1, t->beta2, t->adam_eps, t->weight_decay};
  adamw_step(p->data, p->grad, p->adam_m, p->adam_v, p->total, &adam, step + 1);
  bad = first_nonfinite(p, p->data);
  if (bad) {
    fprintf(stderr, "diffuse train: non-finite weight %s after step %ld; stopping (last checkpoint: %s).\n", bad,
            step + 1, tr->ckpt_path);
    return NAN;
  }
  const double ema_decay = t->ema_warmup ? fmin(t->ema_decay, (1.0 + step) / (10.0 + step)) : t->ema_decay;
  ema_update(p->ema, p->data, p->total, ema_decay);
  *grad_norm_out = norm;
  return loss;
}

static int trainer_setup(Trainer *tr, long *start_step, char *err, size_t errlen) {
  const RunConfig *rc = tr->rc;
  const UNetConfig *m = &rc->model;
  if (make_dir(tr->opt->out_dir, err, errlen)) return -1;
  char samples[1100];
  snprintf(samples, sizeof samples, "%s/samples", tr->opt->out_dir);
  if (make_dir(samples, err, errlen)) return -1;
  snprintf(tr->ckpt_path, sizeof tr->ckpt_path, "%s/ckpt.safetensors", tr->opt->out_dir);
  snprintf(tr->log_path, sizeof tr->log_path, "%s/log.jsonl", tr->opt->out_dir);
  tr->config_json = run_config_to_json(rc);
  char *text = cJSON_Print(tr->config_json), cfg_path[1100];
  snprintf(cfg_path, sizeof cfg_path, "%s/config.json", tr->opt->out_dir);
  const int wrc = atomic_file_write(cfg_path, text, strlen(text), err, errlen);
  free(text);
  if (wrc) return -1;

  if (!rc->data.path[0]) return errorf(err, errlen, "no training data: give --data PATH or data.path in the config");
  DatasetOptions dopt = {.kind = DATASET_AUTO, .path = rc->data.path, .resolution = m->resolution,
                         .channels = m->in_channels, .center_crop = rc->data.center_crop,
                         .train_split = strcmp(rc->data.split, "train") == 0, .skip_bad = tr->opt->skip_bad,
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
  if (diffusion_init(&tr->diffusion, &rc->diffusion, err, errlen)) return -1;
  sampler_options_default(&tr->grid_sampler, SAMPLER_DDIM, rc->train.sample_steps);
  tr->grid_sampler.spacing = SPACING_TRAILING;
  char why[256];
  if (sampler_check(&tr->grid_sampler, &tr->diffusion, why, sizeof why))
    return errorf(err, errlen, "train.sample_steps: %s", why);

  unet_init(&tr->model, m);
  params_alloc_optimizer(&tr->model.params);
  *start_step = 0;
  if (tr->opt->resume) {
    params_alloc_ema(&tr->model.params);
    TrainProgress prog;
    const CheckpointLoadOptions lo = {.for_training = true};
    if (checkpoint_load(tr->opt->resume, &tr->model, &lo, &prog, err, errlen)) return -1;
    if (prog.seed != (uint64_t)rc->train.seed)
      fprintf(stderr, "diffuse train: note: resuming with seed %d (checkpoint used %llu)\n", rc->train.seed,
              (unsigned long long)prog.seed);
    *start_step = prog.step;
  } else {
    unet_init_weights(&tr->model, (uint64_t)rc->train.seed);
    params_alloc_ema(&tr->model.params);
  }
  graph_init(&tr->graph, 64u << 20);
  const int micro = rc->train.micro_batch ? rc->train.micro_batch : rc->train.batch;
  tr->batch_idx = xmalloc((size_t)micro * sizeof(int));
  tr->batch_labels = xmalloc((size_t)micro * sizeof(int));
  tr->batch_flip = xmalloc((size_t)micro);
  const size_t per = (size_t)m->in_channels * m->resolution * m->resolution, N = (size_t)rc->train.sample_n;
  tr->grid_noise = xmalloc(N * per * sizeof(float));
  tr->grid_work = xmalloc(sampler_work_floats(&tr->grid_sampler, N * per) * sizeof(float));
  rng_fill_normal(tr->grid_noise, N * per, (uint64_t)rc->train.seed, 0xF1C5ED0000000000ull, 0);
  const float prior = (float)diffusion_prior_std(&tr->diffusion);
  for (size_t i = 0; i < N * per; i++) tr->grid_noise[i] *= prior;
  return 0;
}

static void trainer_free(Trainer *tr) {
  dataset_free(&tr->data);
  diffusion_free(&tr->diffusion);
  unet_free(&tr->model);
  graph_free(&tr->graph);
  cJSON_Delete(tr->config_json);
  free(tr->grid_noise), free(tr->grid_work), free(tr->batch_idx), free(tr->batch_labels), free(tr->batch_flip);
}

int train_run(const RunConfig *rc, const TrainOptions *opt) {
  Trainer tr;
  memset(&tr, 0, sizeof tr);
  tr.rc = rc;
  tr.opt = opt;
  char err[1024];
  long step = 0;
  if (trainer_setup(&tr, &step, err, sizeof err)) {
    fprintf(stderr, "diffuse train: %s\n", err);
    trainer_free(&tr);
    return 1;
  }
  const TrainConfig *t = &rc->train;
  FILE *log = fopen(tr.log_path, "a");
  if (!log) {
    fprintf(stderr, "diffuse train: %s: cannot open: %s\n", tr.log_path, strerror(errno));
    trainer_free(&tr);
    return 1;
  }
  const bool tty = isatty(STDERR_FILENO) && !opt->quiet;
  fprintf(stderr, "diffuse train: %d images (%dx%dx%d), %zu parameters, batch %d, steps %ld -> %d, out %s\n",
          tr.data.n, tr.data.C, tr.data.H, tr.data.W, tr.model.params.total, t->batch, step, t->steps, opt->out_dir);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  const double t0 = now_seconds();
  double window_t = t0, loss_acc = 0.0, norm_last = 0.0;
  int window_n = 0, rc_exit = 0;
  const long first = step;
  while (step < t->steps && !g_stop_signal) {
    double norm = 0.0;
    const double loss = train_step(&tr, step, &norm);
    if (isnan(loss)) {
      rc_exit = 1;
      break;
    }
    step++;
    loss_acc += loss, norm_last = norm, window_n++;
    const bool last = step == t->steps;
    if (step % t->log_every == 0 || last) {
      const double now = now_seconds(), ips = window_n * (double)t->batch / (now - window_t);
      const double eta = (t->steps - step) * (double)t->batch / ips;
      const double warm = t->warmup > 0 ? fmin(1.0, step / t->warmup) : 1.0;
      fprintf(log,
              "{\"step\": %ld, \"loss\": %.6g, \"lr\": %.6g, \"grad_norm\": %.6g, \"img_per_s\": %.4g, \"elapsed\": "
              "%.3f}\n",
              step, loss_acc / window_n, t->lr * warm, norm_last, ips, now - t0);
      fflush(log);
      char eta_s[32];
      format_duration(eta_s, sizeof eta_s, eta);
      if (tty) {
        const int width = 24, filled = (int)((double)step / t->steps * width);
        fprintf(stderr, "\r[%.*s%*s] step %ld/%d  loss %.4f  %.1f img/s  ETA %s   ", filled,
                "========================", width - filled, "", step, t->steps, loss_acc / window_n, ips, eta_s);
      } else {
        fprintf(stderr, "step %ld/%d loss %.4f grad_norm %.3f %.1f img/s ETA %s\n", step, t->steps,
                loss_acc / window_n, norm_last, ips, eta_s);
      }
      loss_acc = 0.0, window_n = 0, window_t = now_seconds();
    }
    if (t->ckpt_every && step % t->ckpt_every == 0 && !last && save_checkpoint(&tr, step, err, sizeof err)) {
      fprintf(stderr, "\ndiffuse train: %s\n", err);
      rc_exit = 1;
      break;
    }
    if (t->sample_every && step % t->sample_every == 0 && !last) save_sample_grid(&tr, step);
  }
  if (tty) fputc('\n', stderr);
  if (rc_exit == 0) {
    if (step > first && save_checkpoint(&tr, step, err, sizeof err)) {
      fprintf(stderr, "diffuse train: %s\n", err);
      rc_exit = 1;
    } else if (g_stop_signal) {
      fprintf(stderr, "diffuse train: stopped by signal at step %ld; checkpoint %s (continue with --resume %s)\n", step,
              tr.ckpt_path, tr.ckpt_path);
    } else {
      save_sample_grid(&tr, step);
      fprintf(stderr, "diffuse train: done, %ld steps in %.1fs; checkpoint %s, samples in %s/samples\n", step - first,
              now_seconds() - t0, tr.ckpt_path, opt->out_dir);
    }
  }
  fclose(log);
  trainer_free(&tr);
  return rc_exit;
}
