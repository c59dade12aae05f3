/* cmd_encode.c - `diffuse encode`: an image to its probability-flow ODE latent x_T (Song et al. 2021,
 * sec. 4.3), the inverse of `diffuse sample --sampler ode --init-noise`.
 *
 * `sample --sampler ode` integrates the ODE from tau_max to tau_min with rk45 and ends with the
 * denoising step x0 = (x - sigma eps_hat(x)) / alpha. The encoder undoes both: it solves
 * x = alpha x0 + sigma eps_hat(x) at tau_min by fixed-point iteration, then integrates the ODE up to
 * tau_max with the same solver and tolerances. The latent is tensor x [1, C, H, W] of a safetensors
 * file, the format --init-noise reads, so decoding and slerp interpolation (sample --interpolate) need
 * nothing else. --verify decodes it again and reports the round trip's error in 8-bit levels.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "diffusion/unet_denoiser.h"
#include "input_image.h"
#include "io/safetensors.h"
#include "nn/checkpoint.h"
#include "run_config_source.h"
#include "sampler_flags.h"
#include "samplers/sampler.h"

#define FIXED_POINT_ITERATIONS 4

/* x <- the solution of x = alpha x0 + sigma eps_hat(x, tau) (starting from alpha x0); returns the
 * largest |x0 - (x - sigma eps_hat(x)) / alpha| left, what decoding's denoising step would miss. */
static double invert_denoise_step(Denoiser *den, const Diffusion *d, double tau, const float *x0, float *x,
                                  float *eps, size_t n) {
  double a, s;
  diffusion_marginal(d, tau, &a, &s);
  for (size_t j = 0; j < n; j++) x[j] = (float)a * x0[j];
  for (int it = 0; it < FIXED_POINT_ITERATIONS; it++) {
    den->predict_eps(den, eps, x, 1, tau);
    for (size_t j = 0; j < n; j++) x[j] = (float)(a * x0[j] + s * eps[j]);
  }
  den->predict_eps(den, eps, x, 1, tau);
  double worst = 0;
  for (size_t j = 0; j < n; j++) worst = fmax(worst, fabs(x0[j] - (x[j] - s * eps[j]) / a));
  return worst;
}

int cmd_encode(int argc, char **argv) {
  const char *ckpt = NULL, *config = NULL, *image = NULL, *out = NULL, *device = "cpu";
  int class_label = ARG_UNSET;
  double rtol = NAN, atol = NAN;
  bool no_ema = false, verify = false;
  ArgSpec specs[] = {
      {"--ckpt", ARG_STRING, &ckpt},   {"--config", ARG_STRING, &config}, {"--image", ARG_STRING, &image},
      {"--out", ARG_STRING, &out},     {"--class", ARG_INT, &class_label}, {"--rtol", ARG_DOUBLE, &rtol},
      {"--atol", ARG_DOUBLE, &atol},   {"--no-ema", ARG_FLAG, &no_ema},   {"--verify", ARG_FLAG, &verify},
      {"--device", ARG_STRING, &device},
  };
  const int parse_rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "encode");
  if (parse_rc) return parse_rc;
  if (!ckpt || !image || !out) {
    fprintf(stderr, "diffuse encode: --ckpt, --image and --out are required (see diffuse encode --help)\n");
    return 2;
  }
  char err[1024];
  const Backend *backend = backend_open(device, err, sizeof err);
  if (!backend) {
    fprintf(stderr, "diffuse encode: --device: %s\n", err);
    return 1;
  }
  RunConfig run;
  if (resolve_run_config(config, ckpt, &run, err, sizeof err) || require_denoiser(&run, ckpt, err, sizeof err)) {
    fprintf(stderr, "diffuse encode: %s\n", err);
    return 1;
  }
  const UNetConfig *mc = &run.model;
  int rc = 0;
  if (mc->num_classes > 0 && (class_label == ARG_UNSET || class_label < 0 || class_label >= mc->num_classes))
    rc = errorf(err, sizeof err, "this model is class-conditional: give --class C in [0, %d), and the same --class "
                "to decode", mc->num_classes);
  else if (mc->num_classes == 0 && class_label != ARG_UNSET)
    rc = errorf(err, sizeof err, "--class needs a class-conditional model (model.num_classes > 0)");
  SamplerOptions so;
  sampler_options_default(&so, SAMPLER_ODE, 0);
  if (!isnan(rtol)) so.rtol = rtol;
  if (!isnan(atol)) so.atol = atol;
  Diffusion diffusion = {0};
  if (rc == 0 && diffusion_init(&diffusion, &run.diffusion, err, sizeof err)) rc = -1;
  if (rc == 0 && sampler_check(&so, &diffusion, err, sizeof err)) rc = -1;
  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  float *x0 = xmalloc(per * sizeof(float)), *x = xmalloc(per * sizeof(float));
  float *work = xmalloc(sampler_work_floats(&so, per) * sizeof(float));
  char why[768];
  if (rc == 0 && input_image_load(image, mc->in_channels, mc->resolution, x0, why, sizeof why))
    rc = errorf(err, sizeof err, "--image (the model's size, %dx%d): %s", mc->resolution, mc->resolution, why);
  UNet model;
  unet_init_inference(&model, mc, backend);
  const CheckpointLoadOptions lo = {.use_ema = !no_ema};
  if (rc == 0) rc = checkpoint_load(ckpt, &model, &lo, NULL, err, sizeof err);
  if (rc) {
    fprintf(stderr, "diffuse encode: %s\n", err);
    free(x0), free(x), free(work);
    unet_free(&model);
    diffusion_free(&diffusion);
    return 1;
  }
  int label = class_label == ARG_UNSET ? 0 : class_label;
  Graph g;
  graph_init(&g, backend, 16u << 20);
  UNetDenoiser ctx = {.diffusion = &diffusion, .model = &model, .graph = &g, .labels = mc->num_classes ? &label : NULL};
  Denoiser den = unet_denoiser(&ctx);
  const double lo_tau = diffusion_tau_min(&diffusion), hi_tau = diffusion_tau_max(&diffusion);
  const double residual = invert_denoise_step(&den, &diffusion, lo_tau, x0, x, work, per);
  const long nfe = sampler_ode_solve(&so, &diffusion, &den, x, 1, per, lo_tau, hi_tau, work);
  StWriter w;
  st_writer_init(&w);
  const int64_t shape[4] = {1, mc->in_channels, mc->resolution, mc->resolution};
  st_writer_add_f32(&w, "x", 4, shape, x);
  st_writer_set_meta(&w, "diffuse.kind", "ode_latent");
  rc = st_writer_save(&w, out, err, sizeof err);
  st_writer_free(&w);
  if (rc == 0) {
    double ss = 0;
    for (size_t j = 0; j < per; j++) ss += (double)x[j] * x[j];
    printf("encoded %s: latent %s (rms %.4f, prior std %.4f), NFE %ld, denoising-step residual %.2e\n", image, out,
           sqrt(ss / per), diffusion_prior_std(&diffusion), nfe + FIXED_POINT_ITERATIONS + 1, residual);
  }
  if (rc == 0 && verify) { /* decode exactly as sample --sampler ode: the ODE down, then the denoising step */
    NoiseSource none = noise_source_rng(0, 0);
    sampler_run(&so, &diffusion, &den, &none, x, 1, per, work);
    double worst = 0;
    for (size_t j = 0; j < per; j++) worst = fmax(worst, fabs(x[j] - x0[j]));
    printf("round trip: decode(encode(image)) differs from the image by at most %.4f (%.2f of 255 levels)\n", worst,
           worst * 127.5);
  }
  if (rc) fprintf(stderr, "diffuse encode: %s\n", err);
  free(x0), free(x), free(work);
  graph_free(&g);
  unet_free(&model);
  diffusion_free(&diffusion);
  return rc ? 1 : 0;
}
