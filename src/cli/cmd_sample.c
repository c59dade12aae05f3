/* cmd_sample.c - `diffuse sample`: generate images from a checkpoint with any sampler.
 *
 * The prior noise of sample k is drawn from stream k of --seed (or read from --init-noise), and
 * samplers draw per-sample noise the same way, so sample k is the same whatever --batch is.
 * Writes a PNG grid (--out), one PNG per sample (--outdir, numbered, never overwriting without
 * --force) and/or the raw float samples (--save-tensor, tensor "x" of shape [N, C, H, W]).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "clock.h"
#include "commands.h"
#include "core/error.h"
#include "diffusion/denoiser.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "nn/checkpoint.h"
#include "run_config_source.h"
#include "sampler_flags.h"
#include "samplers/sampler.h"


/* A denoiser that forwards to another and reports progress on a terminal. */
typedef struct {
  Denoiser *inner;
  bool tty;
  int done, n;
  double t0;
} Progress;

static void progress_predict(Denoiser *self, float *eps, const float *x, int B, double tau) {
  Progress *p = self->ctx;
  p->inner->predict_eps(p->inner, eps, x, B, tau);
  self->nfe++;
  if (p->tty)
    fprintf(stderr, "\rdiffuse sample: %d/%d images, batch NFE %ld, %.0fs   ", p->done, p->n, self->nfe,
            now_seconds() - p->t0);
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

/* --outdir: create it and refuse, before any sampling, to overwrite numbered PNGs without --force. */
static int prepare_outdir(const char *outdir, int n, bool force, char *err, size_t errlen) {
  if (mkdir(outdir, 0755) && errno != EEXIST) return errorf(err, errlen, "%s: cannot create: %s", outdir, strerror(errno));
  for (int k = 0; k < n && !force; k++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%06d.png", outdir, k);
    if (access(path, F_OK) == 0) return errorf(err, errlen, "%s exists (use --force to overwrite)", path);
  }
  return 0;
}

static int save_outputs(const char *out, const char *outdir, const char *save_tensor, const float *all, int n,
                        const UNetConfig *mc, char *err, size_t errlen) {
  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  for (int k = 0; outdir && k < n; k++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%06d.png", outdir, k);
    if (image_write_png(path, all + (size_t)k * per, mc->in_channels, mc->resolution, mc->resolution, err, errlen))
      return -1;
  }
  if (out && image_write_grid_png(out, all, n, mc->in_channels, mc->resolution, mc->resolution, err, errlen)) return -1;
  if (save_tensor) {
    StWriter w;
    st_writer_init(&w);
    const int64_t shape[4] = {n, mc->in_channels, mc->resolution, mc->resolution};
    st_writer_add_f32(&w, "x", 4, shape, all);
    const int rc = st_writer_save(&w, save_tensor, err, errlen);
    st_writer_free(&w);
    if (rc) return -1;
  }
  return 0;
}

int cmd_sample(int argc, char **argv) {
  const char *ckpt = NULL, *config = NULL, *out = NULL, *outdir = NULL, *init_noise = NULL, *save_tensor = NULL;
  SamplerFlags f;
  sampler_flags_default(&f);
  int n = -1, batch = 16, seed = 0, class_label = -1;
  bool no_ema = false, force = false;
  ArgSpec specs[32] = {
      {"--ckpt", ARG_STRING, &ckpt},       {"--config", ARG_STRING, &config},   {"--n", ARG_INT, &n},
      {"--batch", ARG_INT, &batch},        {"--seed", ARG_INT, &seed},          {"--out", ARG_STRING, &out},
      {"--outdir", ARG_STRING, &outdir},   {"--force", ARG_FLAG, &force},       {"--no-ema", ARG_FLAG, &no_ema},
      {"--class", ARG_INT, &class_label},  {"--init-noise", ARG_STRING, &init_noise},
      {"--save-tensor", ARG_STRING, &save_tensor},
  };
  const int n_specs = 12 + sampler_flag_specs(&f, specs + 12);
  const int parse_rc = args_parse(argc, argv, specs, n_specs, "sample");
  if (parse_rc) return parse_rc;
  if (!ckpt || (!out && !outdir && !save_tensor)) {
    fprintf(stderr, "diffuse sample: --ckpt and one of --out, --outdir, --save-tensor are required "
                    "(see diffuse sample --help)\n");
    return 2;
  }
  if ((n != -1 && n < 1) || batch < 1 || seed < 0) {
    fprintf(stderr, "diffuse sample: --n and --batch must be >= 1, --seed >= 0\n");
    return 2;
  }
  SamplerOptions so;
  int rc = sampler_options_from_flags(&f, &so);
  if (rc) return rc;

  char err[1024];
  RunConfig run;
  if (resolve_run_config(config, ckpt, &run, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    return 1;
  }
  const UNetConfig *mc = &run.model;
  if (class_label >= 0 && class_label >= mc->num_classes) {
    fprintf(stderr, "diffuse sample: --class %d but the model has %d classes\n", class_label, mc->num_classes);
    return 1;
  }
  Diffusion diffusion;
  if (diffusion_init(&diffusion, &run.diffusion, err, sizeof err) || sampler_options_for_model(&f, &so, &diffusion, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    diffusion_free(&diffusion);
    return 1;
  }
  float *all = NULL;
  if (init_noise && !(all = load_init_noise(init_noise, mc, &n, err, sizeof err))) {
    fprintf(stderr, "diffuse sample: --init-noise %s\n", err);
    diffusion_free(&diffusion);
    return 1;
  }
  if (n < 0) n = 64;
  if (outdir && prepare_outdir(outdir, n, force, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    free(all);
    diffusion_free(&diffusion);
    return 1;
  }
  UNet model;
  unet_init(&model, mc);
  const CheckpointLoadOptions lo = {.use_ema = !no_ema};
  if (checkpoint_load(ckpt, &model, &lo, NULL, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    free(all);
    unet_free(&model);
    diffusion_free(&diffusion);
    return 1;
  }

  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  if (!all) {
    all = xmalloc((size_t)n * per * sizeof(float));
    sample_prior_noise(all, n, per, 0, seed, &diffusion);
  }
  if (batch > n) batch = n;
  float *work = xmalloc(sampler_work_floats(&so, (size_t)batch * per) * sizeof(float));
  int *labels = mc->num_classes > 0 ? xmalloc((size_t)batch * sizeof(int)) : NULL;
  Graph g;
  graph_init(&g, 16u << 20);
  UNetDenoiser ctx = {&diffusion, &model, &g, labels};
  Denoiser den = unet_denoiser(&ctx);
  Progress prog = {&den, isatty(STDERR_FILENO), 0, n, now_seconds()};
  Denoiser shown = {progress_predict, 0, &prog, NULL};
  long nfe_per_batch = 0;
  for (int first = 0; first < n; first += batch) {
    const int B = n - first < batch ? n - first : batch;
    for (int b = 0; b < B && labels; b++) labels[b] = class_label >= 0 ? class_label : (first + b) % mc->num_classes;
    NoiseSource noise = sample_step_noise(seed, first);
    shown.nfe = 0;
    nfe_per_batch = sampler_run(&so, &diffusion, &shown, &noise, all + (size_t)first * per, B, per, work);
    prog.done = first + B;
    if (!prog.tty) fprintf(stderr, "diffuse sample: %d/%d images, NFE %ld\n", prog.done, n, nfe_per_batch);
  }
  const double secs = now_seconds() - prog.t0;
  if (prog.tty) fprintf(stderr, "\n");
  rc = 0;
  if (save_outputs(out, outdir, save_tensor, all, n, mc, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    rc = 1;
  } else {
    printf("sampler %s: %d images, NFE %ld%s, %.1fs (%.2f images/s)%s%s\n", f.sampler, n, nfe_per_batch,
           so.kind == SAMPLER_ODE && so.method == ODE_RK45 ? " (last batch)" : " per image", secs, n / secs,
           out ? ", grid " : "", out ? out : "");
  }
  free(all), free(work), free(labels);
  graph_free(&g);
  unet_free(&model);
  diffusion_free(&diffusion);
  return rc;
}
