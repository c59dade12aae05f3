/* cmd_sample.c - `diffuse sample`: generate images from a checkpoint.
 *
 * The prior noise of sample k is drawn from stream k of --seed, and samplers draw per-sample
 * noise the same way, so sample k is the same whatever --batch is. Writes a PNG grid (--out)
 * and/or one PNG per sample (--outdir, numbered, never overwriting without --force).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "core/rng.h"
#include "diffusion/denoiser.h"
#include "io/image.h"
#include "nn/checkpoint.h"
#include "run_config_source.h"
#include "samplers/ancestral.h"
#include "samplers/ddim.h"

#define NOISE_STREAM_BASE 0x5A3D000000000000ull
#define SAMPLER_STREAM_BASE 0x5A3E000000000000ull

static const char *const SAMPLERS_LATER[] = {"langevin", "pc", "ode", "dpmpp", NULL};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_sample(int argc, char **argv) {
  const char *ckpt = NULL, *config = NULL, *sampler = "ddim", *out = NULL, *outdir = NULL, *spacing_s = "uniform";
  const char *variance_s = "fixed_small";
  int steps = 50, n = 64, batch = 16, seed = 0, class_label = -1;
  bool no_ema = false, force = false, clip = false;
  const ArgSpec specs[] = {
      {"--ckpt", ARG_STRING, &ckpt},       {"--config", ARG_STRING, &config},    {"--sampler", ARG_STRING, &sampler},
      {"--steps", ARG_INT, &steps},        {"--n", ARG_INT, &n},                 {"--batch", ARG_INT, &batch},
      {"--seed", ARG_INT, &seed},          {"--out", ARG_STRING, &out},          {"--outdir", ARG_STRING, &outdir},
      {"--spacing", ARG_STRING, &spacing_s}, {"--variance", ARG_STRING, &variance_s}, {"--clip", ARG_FLAG, &clip},
      {"--no-ema", ARG_FLAG, &no_ema},     {"--force", ARG_FLAG, &force},        {"--class", ARG_INT, &class_label},
  };
  if (args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "sample")) return 2;
  if (!ckpt || (!out && !outdir)) {
    fprintf(stderr, "diffuse sample: --ckpt and --out (or --outdir) are required (see diffuse sample --help)\n");
    return 2;
  }
  if (n < 1 || batch < 1 || steps < 1 || seed < 0) {
    fprintf(stderr, "diffuse sample: --n, --batch and --steps must be >= 1, --seed >= 0\n");
    return 2;
  }
  const bool is_ddim = !strcmp(sampler, "ddim"), is_ancestral = !strcmp(sampler, "ancestral");
  if (!is_ddim && !is_ancestral) {
    for (int i = 0; SAMPLERS_LATER[i]; i++)
      if (!strcmp(sampler, SAMPLERS_LATER[i])) {
        fprintf(stderr, "diffuse sample: sampler '%s' is not implemented yet (available: ddim, ancestral)\n", sampler);
        return 2;
      }
    fprintf(stderr, "diffuse sample: unknown sampler '%s' (available: ddim, ancestral)\n", sampler);
    return 2;
  }
  DdimSpacing spacing;
  if (!strcmp(spacing_s, "uniform")) spacing = DDIM_UNIFORM;
  else if (!strcmp(spacing_s, "trailing")) spacing = DDIM_TRAILING;
  else {
    fprintf(stderr, "diffuse sample: --spacing must be uniform or trailing\n");
    return 2;
  }
  AncestralVariance variance;
  if (!strcmp(variance_s, "fixed_small")) variance = VARIANCE_FIXED_SMALL;
  else if (!strcmp(variance_s, "fixed_large")) variance = VARIANCE_FIXED_LARGE;
  else {
    fprintf(stderr, "diffuse sample: --variance must be fixed_small or fixed_large\n");
    return 2;
  }

  char err[1024];
  RunConfig run;
  if (resolve_run_config(config, ckpt, &run, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    return 1;
  }
  Diffusion diffusion;
  if (diffusion_init(&diffusion, &run.diffusion, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    return 1;
  }
  if (is_ancestral && diffusion.kind != DIFFUSION_DDPM) {
    fprintf(stderr, "diffuse sample: the ancestral sampler needs a discrete DDPM model (this one is %s); use ddim\n",
            run.diffusion.type);
    diffusion_free(&diffusion);
    return 1;
  }
  if (is_ddim && diffusion.discrete && steps > diffusion.n_levels) {
    fprintf(stderr, "diffuse sample: --steps %d exceeds the model's %d noise levels\n", steps, diffusion.n_levels);
    diffusion_free(&diffusion);
    return 1;
  }
  if (is_ddim && !diffusion.discrete && steps < 2) steps = 2;
  const UNetConfig *mc = &run.model;
  if (class_label >= 0 && class_label >= mc->num_classes) {
    fprintf(stderr, "diffuse sample: --class %d but the model has %d classes\n", class_label, mc->num_classes);
    diffusion_free(&diffusion);
    return 1;
  }
  UNet model;
  unet_init(&model, mc);
  const CheckpointLoadOptions lo = {.use_ema = !no_ema};
  if (checkpoint_load(ckpt, &model, &lo, NULL, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    unet_free(&model);
    diffusion_free(&diffusion);
    return 1;
  }
  if (outdir && mkdir(outdir, 0755) && errno != EEXIST) {
    fprintf(stderr, "diffuse sample: %s: cannot create: %s\n", outdir, strerror(errno));
    unet_free(&model);
    diffusion_free(&diffusion);
    return 1;
  }

  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  float *all = xmalloc((size_t)n * per * sizeof(float)), *work = xmalloc((size_t)batch * per * sizeof(float));
  int *labels = mc->num_classes > 0 ? xmalloc((size_t)batch * sizeof(int)) : NULL;
  Graph g;
  graph_init(&g, 16u << 20);
  UNetDenoiser ctx = {&diffusion, &model, &g, labels};
  Denoiser den = unet_denoiser(&ctx);
  const float prior = (float)diffusion_prior_std(&diffusion);
  const double t0 = now_seconds();
  int rc = 0;
  for (int first = 0; first < n && rc == 0; first += batch) {
    const int B = n - first < batch ? n - first : batch;
    float *x = all + (size_t)first * per;
    for (int b = 0; b < B; b++) {
      rng_fill_normal(x + (size_t)b * per, per, (uint64_t)seed, NOISE_STREAM_BASE + (uint64_t)(first + b), 0);
      if (labels) labels[b] = class_label >= 0 ? class_label : (first + b) % mc->num_classes;
    }
    for (size_t i = 0; i < (size_t)B * per; i++) x[i] *= prior;
    if (is_ddim) ddim_sample(&diffusion, &den, x, B, per, steps, spacing, work);
    else ancestral_sample(&diffusion, &den, x, B, per, variance, clip, (uint64_t)seed, SAMPLER_STREAM_BASE + (uint64_t)first, work);
    fprintf(stderr, "\rdiffuse sample: %d/%d images", first + B, n);
    for (int b = 0; b < B && outdir; b++) {
      char path[4200];
      snprintf(path, sizeof path, "%s/%06d.png", outdir, first + b);
      if (!force && access(path, F_OK) == 0) {
        fprintf(stderr, "\ndiffuse sample: %s exists (use --force to overwrite)\n", path);
        rc = 1;
        break;
      }
      if (image_write_png(path, x + (size_t)b * per, mc->in_channels, mc->resolution, mc->resolution, err, sizeof err)) {
        fprintf(stderr, "\ndiffuse sample: %s\n", err);
        rc = 1;
      }
    }
  }
  const double secs = now_seconds() - t0;
  fprintf(stderr, "\n");
  if (rc == 0 && out && image_write_grid_png(out, all, n, mc->in_channels, mc->resolution, mc->resolution, err, sizeof err)) {
    fprintf(stderr, "diffuse sample: %s\n", err);
    rc = 1;
  }
  if (rc == 0)
    printf("sampler %s: %d images, %ld network evaluations per image, %.1fs (%.2f images/s)%s%s\n", sampler, n,
           den.nfe / ((n + batch - 1) / batch), secs, n / secs, out ? ", grid " : "", out ? out : "");
  free(all), free(work), free(labels);
  graph_free(&g);
  unet_free(&model);
  diffusion_free(&diffusion);
  return rc;
}
