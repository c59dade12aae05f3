/* sampler_flags.c - the sampler flags and noise streams shared by `diffuse sample` and `diffuse eval fid`. */
#include "sampler_flags.h"

#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void sampler_flags_default(SamplerFlags *f) {
  *f = (SamplerFlags){"ddim", NULL, "fixed_small", "reverse_diffusion", "rk45", 50, ARG_UNSET, 0.0, NAN, NAN, NAN, NAN,
                      false};
}

/* Parse a name from a list; -1 when absent. */
static int pick(const char *value, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(value, names[i])) return i;
  return -1;
}

int sampler_options_from_flags(const SamplerFlags *f, SamplerOptions *o) {
  const int kind = sampler_kind_from_name(f->sampler);
  if (kind < 0) {
    fprintf(stderr, "diffuse: unknown sampler '%s' (ancestral, ddim, langevin, pc, ode, dpmpp)\n", f->sampler);
    return 2;
  }
  sampler_options_default(o, (SamplerKind)kind, f->steps);
  static const char *const spacings[] = {"uniform", "quadratic", "trailing", "logsnr"};
  static const char *const variances[] = {"fixed_small", "fixed_large"};
  static const char *const predictors[] = {"reverse_diffusion", "euler_maruyama"};
  static const char *const methods[] = {"euler", "heun", "rk45"};
  int v;
  if (f->spacing) {
    if ((v = pick(f->spacing, spacings, 4)) < 0) goto bad_spacing;
    o->spacing = (Spacing)v;
  }
  if ((v = pick(f->variance, variances, 2)) < 0) {
    fprintf(stderr, "diffuse: --variance must be fixed_small or fixed_large\n");
    return 2;
  }
  o->variance = (AncestralVariance)v;
  if ((v = pick(f->predictor, predictors, 2)) < 0) {
    fprintf(stderr, "diffuse: --predictor must be reverse_diffusion or euler_maruyama\n");
    return 2;
  }
  o->predictor = (Predictor)v;
  if ((v = pick(f->method, methods, 3)) < 0) {
    fprintf(stderr, "diffuse: --method must be euler, heun or rk45\n");
    return 2;
  }
  o->method = (OdeMethod)v;
  o->clip_x0 = f->clip;
  o->eta = f->eta;
  if (f->corrector_steps != ARG_UNSET) o->corrector_steps = f->corrector_steps;
  if (!isnan(f->snr)) o->snr = f->snr; /* the parser only gives finite values: NAN is "not given" */
  if (!isnan(f->step_size)) o->step_size = f->step_size;
  if (!isnan(f->rtol)) o->rtol = f->rtol;
  if (!isnan(f->atol)) o->atol = f->atol;
  return 0;
bad_spacing:
  fprintf(stderr, "diffuse: --spacing must be uniform, quadratic, trailing or logsnr\n");
  return 2;
}

int sampler_options_for_model(const SamplerFlags *f, SamplerOptions *o, const Diffusion *d, char *err, size_t errlen) {
  /* DDIM's "uniform" grid starts below tau_max, which biases VE models (prior std sigma_max) */
  if (!f->spacing && o->kind == SAMPLER_DDIM && diffusion_prior_std(d) != 1.0) o->spacing = SPACING_TRAILING;
  return sampler_check(o, d, err, errlen);
}

#define NOISE_STREAM_BASE 0x5A3D000000000000ull
#define SAMPLER_STREAM_BASE 0x5A3E000000000000ull

void sample_prior_noise(float *x, int B, size_t per_sample, long first, int seed, const Diffusion *d) {
  const float prior = (float)diffusion_prior_std(d);
  for (int b = 0; b < B; b++) {
    float *xb = x + (size_t)b * per_sample;
    rng_fill_normal(xb, per_sample, (uint64_t)seed, NOISE_STREAM_BASE + (uint64_t)(first + b), 0);
    for (size_t i = 0; i < per_sample; i++) xb[i] *= prior;
  }
}

NoiseSource sample_step_noise(int seed, long first) {
  return noise_source_rng((uint64_t)seed, SAMPLER_STREAM_BASE + (uint64_t)first);
}
