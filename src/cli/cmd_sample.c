/* cmd_sample.c - `diffuse sample`: generate images from a checkpoint with any sampler.
 *
 * The prior noise of sample k is drawn from stream k of --seed (or read from --init-noise), and
 * samplers draw per-sample noise the same way, so sample k is the same whatever --batch is.
 * Writes a PNG grid (--out, at most SAMPLE_GRID_MAX images), one PNG per sample (--outdir, numbered,
 * never overwriting without --force) and/or the raw float samples (--save-tensor, tensor "x" of
 * shape [N, C, H, W]). Samples stream: only a batch is in memory (plus the grid's images), PNGs
 * and the tensor are written batch by batch, and the tensor file appears only when complete.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "backend/comm.h"
#include "commands.h"
#include "precision.h"
#include "core/clock.h"
#include "core/error.h"
#include "diffusion/unet_denoiser.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "nn/checkpoint.h"
#include "run_config_source.h"
#include "class_list.h"
#include "guidance_classifier.h"
#include "image_condition.h"
#include "sampler_flags.h"
#include "samplers/sampler.h"

#define SAMPLE_GRID_MAX 4096

/* A denoiser that forwards to another and reports progress on a terminal. */
typedef struct {
  Denoiser *inner;
  bool tty;
  int done, n;
  double t0;
} Progress;

static void progress_tick(Denoiser *self) {
  const Progress *p = self->ctx;
  self->nfe++;
  if (p->tty)
    fprintf(stderr, "\rdiffuse sample: %d/%d images, batch NFE %ld, %.0fs   ", p->done, p->n, self->nfe,
            now_seconds() - p->t0);
}

static void progress_predict(Denoiser *self, float *eps, const float *x, int B, double tau) {
  Progress *p = self->ctx;
  p->inner->predict_eps(p->inner, eps, x, B, tau);
  progress_tick(self);
}

static void progress_predict_var(Denoiser *self, float *eps, float *var, const float *x, int B, double tau) {
  Progress *p = self->ctx;
  p->inner->predict_eps_var(p->inner, eps, var, x, B, tau);
  progress_tick(self);
}

/* --init-noise: tensor "x" of shape [N, C, H, W] matching the model; N becomes --n (or must equal it). */
static float *load_init_noise(const char *path, const UNetConfig *mc, int *n, char *err, size_t errlen) {
  SafeTensors st;
  if (st_load(&st, path, err, errlen)) return NULL;
  const StTensor *t = st_find(&st, "x");
  float *x = NULL;
  if (!t) {
    errorf(err, errlen, "%s: no tensor named \"x\" (expected the initial noise, shape [N, C, H, W])", path);
  } else if (t->ndim != 4 || t->shape[1] != mc->in_channels || t->shape[2] != mc->resolution ||
             t->shape[3] != mc->resolution || t->shape[0] < 1 || t->shape[0] > 1000000) {
    errorf(err, errlen, "%s: tensor x must have shape [N, %d, %d, %d] for this model", path, mc->in_channels,
           mc->resolution, mc->resolution);
  } else if (*n > 0 && *n != t->shape[0]) {
    errorf(err, errlen, "%s holds %lld samples but --n is %d", path, (long long)t->shape[0], *n);
  } else {
    *n = (int)t->shape[0];
    x = xmalloc(t->numel * sizeof(float));
    if (st_tensor_to_f32(t, x, err, errlen)) free(x), x = NULL;
  }
  st_free(&st);
  return x;
}

/* --interpolate: frames latents slerp(a, b, k / (frames - 1)) (Shoemake 1985; the rule of DDIM's and
 * score_sde's interpolations) between a and b, per floats each; lerp where they are parallel. */
static float *slerp_frames(const float *a, const float *b, size_t per, int frames) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t j = 0; j < per; j++) ab += (double)a[j] * b[j], aa += (double)a[j] * a[j], bb += (double)b[j] * b[j];
  const double theta = acos(fmax(-1.0, fmin(1.0, ab / sqrt(aa * bb))));
  float *x = xmalloc((size_t)frames * per * sizeof(float));
  for (int k = 0; k < frames; k++) {
    const double t = frames > 1 ? (double)k / (frames - 1) : 0.0;
    const double ca = theta > 1e-6 ? sin((1.0 - t) * theta) / sin(theta) : 1.0 - t;
    const double cb = theta > 1e-6 ? sin(t * theta) / sin(theta) : t;
    for (size_t j = 0; j < per; j++) x[(size_t)k * per + j] = (float)(ca * a[j] + cb * b[j]);
  }
  return x;
}

/* k if name is a numbered sample PNG ("000042.png", digits then .png), else -1. */
static long numbered_png(const char *name) {
  const char *dot = strchr(name, '.');
  if (!dot || dot == name || dot - name > 12 || strcmp(dot, ".png")) return -1;
  long k = 0;
  for (const char *c = name; c < dot; c++) {
    if (*c < '0' || *c > '9') return -1;
    k = k * 10 + (*c - '0');
  }
  return k;
}

/* --outdir: create it and refuse, before any sampling, to overwrite numbered PNGs without --force
 * (one pass over the directory, whatever --n is). */
static int prepare_outdir(const char *outdir, int n, bool force, char *err, size_t errlen) {
  if (!outdir[0]) return errorf(err, errlen, "--outdir: the directory name is empty");
  if (mkdir(outdir, 0755) && errno != EEXIST) return errorf(err, errlen, "%s: cannot create: %s", outdir, strerror(errno));
  if (force) return 0;
  DIR *dp = opendir(outdir);
  if (!dp) return errorf(err, errlen, "%s: cannot open directory: %s", outdir, strerror(errno));
  int rc = 0;
  for (struct dirent *e; rc == 0 && (e = readdir(dp)) != NULL;) {
    const long k = numbered_png(e->d_name);
    if (k >= 0 && k < n) rc = errorf(err, errlen, "%s/%s exists (use --force to overwrite)", outdir, e->d_name);
  }
  closedir(dp);
  return rc;
}

/* Where the samples go, written batch by batch as they are made. */
typedef struct {
  const char *out, *outdir;
  float *grid;     /* (lead + n, per): the --out grid needs every image; NULL without --out */
  int lead;        /* images shown before the samples in the grid (input, mask or reference) */
  StStream tensor; /* --save-tensor */
  bool tensor_open;
} SampleSinks;

/* lead (n_lead images of per floats): shown as the grid's first tiles. */
static int sinks_open(SampleSinks *s, const char *out, const char *outdir, const char *save_tensor, int n,
                      const float *lead, int n_lead, const UNetConfig *mc, char *err, size_t errlen) {
  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  memset(s, 0, sizeof *s);
  s->out = out, s->outdir = outdir;
  s->lead = n_lead;
  s->grid = out ? xmalloc((size_t)(s->lead + n) * per * sizeof(float)) : NULL;
  if (s->grid && n_lead) memcpy(s->grid, lead, (size_t)n_lead * per * sizeof(float));
  if (!save_tensor) return 0;
  const int64_t shape[4] = {n, mc->in_channels, mc->resolution, mc->resolution};
  if (st_stream_open(&s->tensor, save_tensor, "x", 4, shape, err, errlen)) return -1;
  s->tensor_open = true;
  return 0;
}

static int sinks_add(SampleSinks *s, const float *x, int first, int B, const UNetConfig *mc, char *err, size_t errlen) {
  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  for (int b = 0; s->outdir && b < B; b++) {
    char *path = xasprintf("%s/%06d.png", s->outdir, first + b);
    const int rc = image_write_png(path, x + (size_t)b * per, mc->in_channels, mc->resolution, mc->resolution, err, errlen);
    free(path);
    if (rc) return -1;
  }
  if (s->grid) memcpy(s->grid + (size_t)(s->lead + first) * per, x, (size_t)B * per * sizeof(float));
  if (s->tensor_open && st_stream_write(&s->tensor, x, (size_t)B * per))
    return errorf(err, errlen, "--save-tensor: write failed: %s", strerror(errno));
  return 0;
}

/* Finish the outputs (grid, tensor commit) when ok; otherwise drop the unfinished tensor file. */
static int sinks_close(SampleSinks *s, int ok, int n, const UNetConfig *mc, char *err, size_t errlen) {
  int rc = ok ? 0 : -1;
  if (rc == 0 && s->grid)
    rc = image_write_grid_png(s->out, s->grid, s->lead + n, mc->in_channels, mc->resolution, mc->resolution, err, errlen);
  if (s->tensor_open && st_stream_close(&s->tensor, rc == 0, err, errlen) && rc == 0) rc = -1;
  free(s->grid);
  return rc;
}

int cmd_sample(int argc, char **argv) {
  const char *ckpt = NULL, *config = NULL, *out = NULL, *outdir = NULL, *init_noise = NULL, *save_tensor = NULL;
  const char *device = "cpu", *precision = NULL;
  SamplerFlags f;
  sampler_flags_default(&f);
  int n = ARG_UNSET, batch = 16, seed = 0;
  const char *class_list = NULL, *interpolate = NULL, *classifier = NULL;
  double classifier_scale = NAN;
  int frames = ARG_UNSET;
  ImageConditionFlags icf;
  image_condition_flags_default(&icf);
  bool no_ema = false, force = false;
  ArgSpec specs[] = {
      {"--ckpt", ARG_STRING, &ckpt},       {"--config", ARG_STRING, &config},   {"--n", ARG_INT, &n},
      {"--batch", ARG_INT, &batch},        {"--seed", ARG_INT, &seed},          {"--out", ARG_STRING, &out},
      {"--outdir", ARG_STRING, &outdir},   {"--force", ARG_FLAG, &force},       {"--no-ema", ARG_FLAG, &no_ema},
      {"--class", ARG_STRING, &class_list}, {"--init-noise", ARG_STRING, &init_noise},
      {"--save-tensor", ARG_STRING, &save_tensor}, {"--device", ARG_STRING, &device},
      {"--precision", ARG_STRING, &precision},
      {"--interpolate", ARG_STRING, &interpolate}, {"--frames", ARG_INT, &frames},
      {"--classifier", ARG_STRING, &classifier}, {"--classifier-scale", ARG_DOUBLE, &classifier_scale},
      IMAGE_CONDITION_FLAG_SPECS(icf),     SAMPLER_FLAG_SPECS(f),
  };
  const int parse_rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "sample");
  if (parse_rc) return parse_rc;
  if (!ckpt || (!out && !outdir && !save_tensor)) {
    fprintf(stderr, "diffuse sample: --ckpt and one of --out, --outdir, --save-tensor are required "
                    "(see diffuse sample --help)\n");
    return 2;
  }
  if ((n != ARG_UNSET && n < 1) || batch < 1 || seed < 0) {
    fprintf(stderr, "diffuse sample: --n and --batch must be >= 1, --seed >= 0\n");
    return 1;
  }
  if ((icf.image || icf.lowres) && init_noise) {
    fprintf(stderr, "diffuse sample: --%s and --init-noise both set the starting point: give one\n",
            icf.image ? "image" : "lowres");
    return 2;
  }
  if (interpolate && !init_noise) {
    fprintf(stderr, "diffuse sample: --interpolate B goes from the latent of --init-noise A (see diffuse encode) to B\n");
    return 2;
  }
  if ((frames != ARG_UNSET) != (interpolate != NULL) || (interpolate && n != ARG_UNSET)) {
    fprintf(stderr, "diffuse sample: %s\n", interpolate ? "--frames K sets the number of images of --interpolate; --n is "
                                                        "not used with it" : "--frames is for --interpolate");
    return 2;
  }
  if (interpolate && (frames < 2 || frames > SAMPLE_GRID_MAX)) {
    fprintf(stderr, "diffuse sample: --frames must be in [2, %d]\n", SAMPLE_GRID_MAX);
    return 1;
  }
  if (!classifier && !isnan(classifier_scale)) {
    fprintf(stderr, "diffuse sample: --classifier-scale is for --classifier (classifier guidance)\n");
    return 2;
  }
  if (isnan(classifier_scale)) classifier_scale = 1.0; /* ADM's default */
  if (classifier && !(classifier_scale >= 0.0)) {
    fprintf(stderr, "diffuse sample: --classifier-scale must be >= 0 (0: no guidance)\n");
    return 1;
  }
  SamplerOptions so;
  int rc = sampler_options_from_flags(&f, &so);
  if (rc || (rc = image_condition_flags_check(&icf, &so))) return rc;

  char err[1024];
  const Backend *backend = backend_open(device, err, sizeof err);
  if (!backend) {
    fprintf(stderr, "diffuse sample: --device: %s\n", err);
    return 1;
  }
  const Backend *model_backend = precision_backend(backend, precision, "sample", err, sizeof err);
  if (!model_backend) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    return 1;
  }
  RunConfig run;
  if (resolve_run_config(config, ckpt, &run, err, sizeof err) || require_denoiser(&run, ckpt, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    return 1;
  }
  const UNetConfig *mc = &run.model;
  Diffusion diffusion;
  GuidanceClassifier gc = {0};
  if (diffusion_init(&diffusion, &run.diffusion, err, sizeof err) || sampler_options_for_model(&f, &so, &diffusion, err, sizeof err) ||
      (classifier && guidance_classifier_open(&gc, classifier, mc, &diffusion, backend, err, sizeof err))) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    diffusion_free(&diffusion);
    return 1;
  }
  /* the classes asked for: of the model, or of the classifier guiding an unconditional one */
  const int class_count = mc->num_classes > 0 ? mc->num_classes : gc.open ? gc.run.model.num_classes : 0;
  ClassList classes;
  double guidance = 0.0;
  if (class_list_parse(&classes, class_list, class_count, err, sizeof err) ||
      guidance_for_model(&f, mc, &guidance, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    guidance_classifier_close(&gc);
    diffusion_free(&diffusion);
    return 1;
  }
  ImageCondition ic;
  if (image_condition_load(&icf, mc, &so, &ic, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    image_condition_free(&ic);
    guidance_classifier_close(&gc);
    diffusion_free(&diffusion);
    return 1;
  }
  const double start_tau = sampler_start_tau(&so, &diffusion);
  float *x_init = NULL; /* all of --init-noise, or NULL: the prior noise is drawn batch by batch */
  if (init_noise && !(x_init = load_init_noise(init_noise, mc, &n, err, sizeof err))) {
    fprintf(stderr, "diffuse sample: --init-noise %s\n", err);
    image_condition_free(&ic);
    guidance_classifier_close(&gc);
    diffusion_free(&diffusion);
    return 1;
  }
  if (interpolate) { /* the first latent of each file */
    int n_b = 0;
    float *b = load_init_noise(interpolate, mc, &n_b, err, sizeof err);
    if (!b) {
      fprintf(stderr, "diffuse sample: --interpolate %s\n", err);
      free(x_init);
      image_condition_free(&ic);
      guidance_classifier_close(&gc);
      diffusion_free(&diffusion);
      return 1;
    }
    float *x_frames = slerp_frames(x_init, b, (size_t)mc->in_channels * mc->resolution * mc->resolution, frames);
    free(b), free(x_init);
    x_init = x_frames, n = frames;
  }
  if (n == ARG_UNSET) n = 64;
  if (out && n + ic.n_lead > SAMPLE_GRID_MAX)
    rc = errorf(err, sizeof err, "--out: a grid holds at most %d images, not %d: use --outdir or --save-tensor for more",
                SAMPLE_GRID_MAX, n + ic.n_lead);
  if (batch > n) batch = n;
  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  const double batch_bytes = (double)(batch + sampler_work_floats(&so, (size_t)batch * per) / per) * per * sizeof(float);
  if (rc == 0 && memory_total_bytes() && batch_bytes > (double)memory_total_bytes()) {
    char need[32], have[32];
    rc = errorf(err, sizeof err, "--batch %d needs %s for the samples and the sampler's state alone, more than this "
                "machine's %s: lower --batch", batch, format_bytes(need, sizeof need, batch_bytes),
                format_bytes(have, sizeof have, (double)memory_total_bytes()));
  }
  const bool root = comm_is_root(); /* under mpirun rank 0 writes every output */
  if (rc == 0 && outdir && root) rc = prepare_outdir(outdir, n, force, err, sizeof err);
  UNet model;
  unet_init_inference(&model, mc, model_backend);
  const CheckpointLoadOptions lo = {.use_ema = !no_ema};
  if (rc == 0) rc = checkpoint_load(ckpt, &model, &lo, NULL, err, sizeof err);
  SampleSinks sinks = {0};
  if (rc == 0 && root) rc = sinks_open(&sinks, out, outdir, save_tensor, n, ic.lead, ic.n_lead, mc, err, sizeof err);
  if (comm_any(rc != 0)) {
    if (rc) fprintf(stderr, "diffuse sample: %s\n", err);
    else if (root) sinks_close(&sinks, 0, n, mc, err, sizeof err);
    free(x_init);
    image_condition_free(&ic);
    unet_free(&model);
    guidance_classifier_close(&gc);
    diffusion_free(&diffusion);
    return 1;
  }

  float *x = xmalloc((size_t)batch * per * sizeof(float));
  float *work = xmalloc(sampler_work_floats(&so, (size_t)batch * per) * sizeof(float));
  int *labels = class_count > 0 ? xmalloc((size_t)batch * sizeof(int)) : NULL;
  void *guided_scratch = guidance != 0.0 ? xmalloc(classifier_free_scratch_bytes(batch, per)) : NULL;
  Graph g;
  graph_init(&g, model_backend, 16u << 20);
  UNetDenoiser ctx = {.diffusion = &diffusion, .model = &model, .graph = &g, .labels = mc->num_classes > 0 ? labels : NULL,
                      .guidance = guidance, .guided_scratch = guided_scratch};
  Denoiser den = unet_denoiser(&ctx);
  float *classifier_grad = gc.open ? xmalloc((size_t)batch * per * sizeof(float)) : NULL;
  ClassifierGuided cg = {&den, &gc.grad, &diffusion, labels, classifier_scale, per, classifier_grad};
  Denoiser guided = classifier_guided_denoiser(&cg);
  Progress prog = {gc.open ? &guided : &den, isatty(STDERR_FILENO) && root, 0, n, now_seconds()};
  Denoiser shown = {progress_predict, 0, &prog, NULL, den.predict_eps_var ? progress_predict_var : NULL};
  long nfe_per_batch = 0;
  /* Under mpirun the batches go round the ranks: in each round of `ranks` batches, rank r samples
   * batch round * ranks + r and rank 0 writes them in order. Every image's noise is drawn by its
   * index, so the images are those of one process. */
  const int ranks = comm_size();
  for (int round_first = 0; round_first < n && rc == 0; round_first += ranks * batch) {
    const int first = round_first + comm_rank() * batch;
    if (first < n) {
      const int B = n - first < batch ? n - first : batch;
      for (int b = 0; b < B && labels; b++) /* --class: row r of the grid is class r mod the list's length */
        labels[b] = class_list_label(&classes, first + b, n);
      if (x_init) memcpy(x, x_init + (size_t)first * per, (size_t)B * per * sizeof(float));
      else if (ic.sdedit) sample_noised_image(x, ic.image, B, per, first, seed, &diffusion, start_tau);
      else sample_prior_noise(x, B, per, first, seed, &diffusion);
      NoiseSource noise = sample_step_noise(seed, first);
      shown.nfe = 0;
      nfe_per_batch = sampler_run_conditioned(&so, &diffusion, &shown, &noise, ic.conditioned ? &ic.cond : NULL, x, B,
                                              per, work);
      if (!root) comm_send(x, (size_t)B * per * sizeof(float), 0);
    }
    for (int r = 0; r < ranks && root && rc == 0; r++) { /* rank 0: its own batch, then the others' */
      const int f = round_first + r * batch;
      if (f >= n) break;
      const int B = n - f < batch ? n - f : batch;
      if (r > 0) comm_recv(x, (size_t)B * per * sizeof(float), r);
      prog.done = f + B;
      if (!prog.tty) fprintf(stderr, "diffuse sample: %d/%d images, NFE %ld\n", prog.done, n, nfe_per_batch);
      rc = sinks_add(&sinks, x, f, B, mc, err, sizeof err);
    }
    rc = comm_any(rc != 0); /* a failed write stops every rank */
  }
  const double secs = now_seconds() - prog.t0;
  if (prog.tty) fprintf(stderr, "\n");
  if (!root) { /* rank 0 alone has outputs to close and a summary to print */
  } else if (sinks_close(&sinks, rc == 0, n, mc, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    rc = 1;
  } else {
    char guided[80] = "";
    if (guidance != 0.0) snprintf(guided, sizeof guided, ", guidance %g (2 network rows per image)", guidance);
    if (gc.open)
      snprintf(guided, sizeof guided, ", classifier scale %g%s", classifier_scale,
               classifier_scale != 0.0 ? " (a classifier gradient per evaluation)" : " (unguided)");
    printf("sampler %s: %d images, NFE %ld%s%s, %.1fs (%.2f images/s)%s%s\n", f.sampler, n, nfe_per_batch,
           so.kind == SAMPLER_ODE && so.method == ODE_RK45 ? " (last batch)" : " per image", guided, secs, n / secs,
           out ? ", grid " : "", out ? out : "");
  }
  free(x_init), free(x), free(work), free(labels), free(guided_scratch), free(classifier_grad);
  image_condition_free(&ic);
  guidance_classifier_close(&gc);
  graph_free(&g);
  unet_free(&model);
  diffusion_free(&diffusion);
  return rc ? 1 : 0;
}
