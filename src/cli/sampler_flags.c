/* sampler_flags.c - the sampler flags and noise streams shared by `diffuse sample` and `diffuse eval fid`. */
#include "sampler_flags.h"

#include "core/error.h"
#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void sampler_flags_default(SamplerFlags *f) {
  *f = (SamplerFlags){"ddim", NULL, NULL, NULL, NULL, ARG_UNSET, ARG_UNSET, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, false, NAN};
}

#define DEFAULT_STEPS 50

bool sampler_flags_given(const SamplerFlags *f) {
  SamplerFlags d;
  sampler_flags_default(&d);
  return strcmp(f->sampler, d.sampler) || f->spacing || f->variance || f->predictor || f->method || f->clip ||
         f->steps != ARG_UNSET || f->corrector_steps != ARG_UNSET || !isnan(f->eta) || !isnan(f->snr) ||
         !isnan(f->step_size) || !isnan(f->rtol) || !isnan(f->atol) || !isnan(f->s_churn) || !isnan(f->s_tmin) ||
         !isnan(f->s_tmax) || !isnan(f->s_noise) || !isnan(f->guidance);
}

/* Index of value in names, or -1 after a message listing them. */
static int pick(const char *flag, const char *value, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(value, names[i])) return i;
  fprintf(stderr, "diffuse: %s must be", flag);
  for (int i = 0; i < n; i++) fprintf(stderr, "%s%s", i == 0 ? " " : i == n - 1 ? " or " : ", ", names[i]);
  fprintf(stderr, "\n");
  return -1;
}

/* A flag given for a sampler it means nothing to is refused rather than silently ignored. */
typedef struct {
  const char *flag;
  bool given, applies;
  const char *for_whom; /* where it does apply */
} FlagUse;

int sampler_options_from_flags(const SamplerFlags *f, SamplerOptions *o) {
  const int kind = sampler_kind_from_name(f->sampler);
  if (kind < 0) {
    fprintf(stderr, "diffuse: unknown sampler '%s' (", f->sampler);
    for (int k = 0; k < SAMPLER_N_KINDS; k++) fprintf(stderr, "%s%s", k ? ", " : "", sampler_kind_name((SamplerKind)k));
    fprintf(stderr, ")\n");
    return 2;
  }
  static const char *const spacings[] = {"uniform", "quadratic", "trailing", "logsnr", "karras"};
  static const char *const variances[] = {"fixed_small", "fixed_large", "learned"};
  static const char *const predictors[] = {"reverse_diffusion", "euler_maruyama"};
  static const char *const methods[] = {"euler", "heun", "rk45"};
  int method = ODE_RK45, v;
  if (f->method && (method = pick("--method", f->method, methods, 3)) < 0) return 2;
  const bool rk45 = kind == SAMPLER_ODE && method == ODE_RK45, grid = !rk45;
  const bool with_eta = kind == SAMPLER_DDIM || kind == SAMPLER_DPMPP_SDE || kind == SAMPLER_DPMPP_2S ||
                        kind == SAMPLER_DPMPP_3M || kind == SAMPLER_EULER_ANCESTRAL;
  const bool heun = kind == SAMPLER_HEUN;
  const FlagUse uses[] = {
      {"--steps", f->steps != ARG_UNSET, grid, "every sampler but ode rk45 (adaptive)"},
      {"--spacing", f->spacing != NULL, grid, "every sampler but ode rk45"},
      {"--eta", !isnan(f->eta), with_eta, "ddim, dpmpp_sde, dpmpp_2s, dpmpp_3m and euler_ancestral"},
      {"--variance", f->variance != NULL, kind == SAMPLER_ANCESTRAL, "ancestral"},
      {"--clip", f->clip, kind == SAMPLER_ANCESTRAL, "ancestral"},
      {"--step-size", !isnan(f->step_size), kind == SAMPLER_LANGEVIN, "langevin"},
      {"--corrector-steps", f->corrector_steps != ARG_UNSET, kind == SAMPLER_LANGEVIN || kind == SAMPLER_PC,
       "langevin and pc"},
      {"--snr", !isnan(f->snr), kind == SAMPLER_PC, "pc"},
      {"--predictor", f->predictor != NULL, kind == SAMPLER_PC, "pc"},
      {"--method", f->method != NULL, kind == SAMPLER_ODE, "ode"},
      {"--rtol", !isnan(f->rtol), rk45, "ode --method rk45"},
      {"--atol", !isnan(f->atol), rk45, "ode --method rk45"},
      {"--s-churn", !isnan(f->s_churn), heun, "heun"},
      {"--s-tmin", !isnan(f->s_tmin), heun, "heun"},
      {"--s-tmax", !isnan(f->s_tmax), heun, "heun"},
      {"--s-noise", !isnan(f->s_noise), heun, "heun"},
  };
  for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++)
    if (uses[i].given && !uses[i].applies) {
      fprintf(stderr, "diffuse: %s has no effect with --sampler %s%s; it is for %s\n", uses[i].flag, f->sampler,
              rk45 ? " (method rk45)" : "", uses[i].for_whom);
      return 2;
    }
  /* ancestral without --steps visits all T levels */
  const int steps = f->steps != ARG_UNSET ? f->steps : kind == SAMPLER_ANCESTRAL ? 0 : DEFAULT_STEPS;
  sampler_options_default(o, (SamplerKind)kind, steps);
  o->method = (OdeMethod)method;
  if (f->spacing) {
    if ((v = pick("--spacing", f->spacing, spacings, 5)) < 0) return 2;
    o->spacing = (Spacing)v;
  }
  if (f->variance) {
    if ((v = pick("--variance", f->variance, variances, 3)) < 0) return 2;
    o->variance = (AncestralVariance)v;
  }
  if (f->predictor) {
    if ((v = pick("--predictor", f->predictor, predictors, 2)) < 0) return 2;
    o->predictor = (Predictor)v;
  }
  o->clip_x0 = f->clip;
  /* the parser only gives finite values, so NAN means "not given" */
  if (!isnan(f->eta)) o->eta = f->eta;
  if (f->corrector_steps != ARG_UNSET) o->corrector_steps = f->corrector_steps;
  if (!isnan(f->snr)) o->snr = f->snr;
  if (!isnan(f->step_size)) o->step_size = f->step_size;
  if (!isnan(f->rtol)) o->rtol = f->rtol;
  if (!isnan(f->atol)) o->atol = f->atol;
  if (!isnan(f->s_churn)) o->s_churn = f->s_churn;
  if (!isnan(f->s_tmin)) o->s_tmin = f->s_tmin;
  if (!isnan(f->s_tmax)) o->s_tmax = f->s_tmax;
  if (!isnan(f->s_noise)) o->s_noise = f->s_noise;
  return 0;
}

int sampler_options_for_model(const SamplerFlags *f, SamplerOptions *o, const Diffusion *d, char *err, size_t errlen) {
  /* EDM's tau is sigma itself, whose uniform grid leaves a step of sigma_max / steps at the end: the
   * rho = 7 grid of the paper instead; DDIM's "uniform" grid starts below tau_max, which biases VE
   * models (prior std sigma_max) */
  if (!f->spacing && d->kind == DIFFUSION_EDM && o->kind != SAMPLER_ANCESTRAL) o->spacing = SPACING_KARRAS;
  else if (!f->spacing && o->kind == SAMPLER_DDIM && diffusion_prior_std(d) != 1.0) o->spacing = SPACING_TRAILING;
  /* a model that learned its variance samples with it unless told otherwise */
  if (!f->variance && d->cfg.learn_sigma && o->kind == SAMPLER_ANCESTRAL) o->variance = VARIANCE_LEARNED;
  return sampler_check(o, d, err, errlen);
}

int guidance_for_model(const SamplerFlags *f, const UNetConfig *mc, double *w, char *err, size_t errlen) {
  *w = 0.0;
  if (isnan(f->guidance)) return 0;
  if (mc->num_classes == 0)
    return errorf(err, errlen, "--guidance needs a class-conditional model (model.num_classes > 0); this one is unconditional");
  if (!mc->null_class)
    return errorf(err, errlen, "--guidance needs a model trained with train.p_uncond > 0 (classifier-free guidance "
                               "learns the unconditional model as a null class); this one was trained without it");
  if (!(f->guidance >= 0.0)) return errorf(err, errlen, "--guidance must be >= 0 (0: the conditional model alone)");
  *w = f->guidance;
  return 0;
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

void sample_noised_image(float *x, const float *x0, int B, size_t per_sample, long first, int seed, const Diffusion *d,
                         double tau) {
  double alpha, sigma;
  diffusion_marginal(d, tau, &alpha, &sigma);
  for (int b = 0; b < B; b++) {
    float *xb = x + (size_t)b * per_sample;
    rng_fill_normal(xb, per_sample, (uint64_t)seed, NOISE_STREAM_BASE + (uint64_t)(first + b), 0);
    for (size_t i = 0; i < per_sample; i++) xb[i] = (float)(alpha * x0[i] + sigma * xb[i]);
  }
}

NoiseSource sample_step_noise(int seed, long first) {
  return noise_source_rng((uint64_t)seed, SAMPLER_STREAM_BASE + (uint64_t)first);
}
