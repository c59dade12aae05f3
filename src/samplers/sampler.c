/* sampler.c - options, validation and dispatch for all samplers; see sampler.h. */
#include "samplers/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms.h"
#include "core/error.h"
#include "core/rng.h"
#include "samplers/rk45.h"

static const char *const KIND_NAMES[SAMPLER_N_KINDS] = {
    "ancestral", "ddim", "langevin", "pc", "ode", "dpmpp", "dpmpp_sde", "dpmpp_2s", "dpmpp_3m", "unipc",
    "euler_ancestral", "heun"};

int sampler_kind_from_name(const char *name) {
  for (int k = 0; k < SAMPLER_N_KINDS; k++)
    if (!strcmp(name, KIND_NAMES[k])) return k;
  return -1;
}

const char *sampler_kind_name(SamplerKind kind) { return KIND_NAMES[kind]; }

/* The samplers written in k-diffusion's variables (sigma_space.c), which all end at s = 0. */
static bool in_sigma_space(SamplerKind k) { return k >= SAMPLER_DPMPP; }

void sampler_options_default(SamplerOptions *o, SamplerKind kind, int steps) {
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->steps = steps;
  o->spacing = kind == SAMPLER_DDIM                                 ? SPACING_UNIFORM
               : kind == SAMPLER_EULER_ANCESTRAL || kind == SAMPLER_HEUN ? SPACING_KARRAS
               : in_sigma_space(kind)                                 ? SPACING_LOGSNR
                                                                      : SPACING_TRAILING;
  o->eta = kind == SAMPLER_DPMPP_SDE || kind == SAMPLER_EULER_ANCESTRAL ? 1.0 : 0.0;
  o->s_tmax = INFINITY;
  o->s_noise = 1.0;
  o->variance = VARIANCE_FIXED_SMALL;
  o->step_size = 6.2e-6;
  o->corrector_steps = kind == SAMPLER_LANGEVIN ? 5 : 1;
  o->snr = 0.16;
  o->predictor = PREDICTOR_REVERSE_DIFFUSION;
  o->method = ODE_RK45;
  o->rtol = o->atol = 1e-5;
  o->strength = 1.0;
  o->resample = 1;
  o->jump = 10;
}

static void rng_fill(NoiseSource *self, float *z, int B, size_t per_sample, long draw) {
  const uint64_t offset = (uint64_t)draw * per_sample;
#pragma omp parallel for schedule(static) if ((size_t)B * per_sample > 4096)
  for (int b = 0; b < B; b++)
    for (size_t j = 0; j < per_sample; j++)
      z[(size_t)b * per_sample + j] = rng_normal(self->seed, self->stream_base + (uint64_t)b, offset + j);
}

NoiseSource noise_source_rng(uint64_t seed, uint64_t stream_base) {
  NoiseSource s = {rng_fill, seed, stream_base, NULL};
  return s;
}

void sampler_noise(SamplerRun *r, float *z) { r->noise->fill(r->noise, z, r->B, r->per_sample, r->noise_draws++); }

void sampler_add_noise(SamplerRun *r, float *z, double scale) {
  if (!(scale > 0.0)) return;
  sampler_noise(r, z);
  const float c = (float)scale;
  for (size_t j = 0; j < r->n; j++) r->x[j] += c * z[j];
}

void sampler_denoise(SamplerRun *r, double tau, float *eps) {
  double a, s;
  diffusion_marginal(r->d, tau, &a, &s);
  r->den->predict_eps(r->den, eps, r->x, r->B, tau);
  const float ca = (float)(1.0 / a), cs = (float)(s / a);
  for (size_t j = 0; j < r->n; j++) r->x[j] = ca * r->x[j] - cs * eps[j];
}

/* The grid a run visits: ancestral with steps 0 is all T levels (trailing spacing with T steps). */
static int grid_steps(const SamplerOptions *o, const Diffusion *d) {
  return o->kind == SAMPLER_ANCESTRAL && o->steps == 0 ? d->n_levels : o->steps;
}

/* The grid points a run keeps: all, or floor(strength * points) (SDEdit). */
static int kept_points(const SamplerOptions *o, const Diffusion *d) {
  const int all = grid_steps(o, d);
  return o->strength == 1.0 ? all : (int)(o->strength * all);
}

int sampler_check(const SamplerOptions *o, const Diffusion *d, char *err, size_t errlen) {
  const char *name = KIND_NAMES[o->kind], *type = d->cfg.type;
  if (o->strength != 1.0) {
    if (!(o->strength > 0.0 && o->strength < 1.0)) return errorf(err, errlen, "--strength must be in (0, 1]");
    if (o->kind == SAMPLER_ODE && o->method == ODE_RK45)
      return errorf(err, errlen, "--strength needs a fixed grid: use ode --method euler or heun, or another sampler");
    const int kept = kept_points(o, d), least = o->kind == SAMPLER_ODE || in_sigma_space(o->kind) ? 2 : 1;
    if (kept < least)
      return errorf(err, errlen, "--strength %g keeps %d of the %d grid points, and %s needs at least %d: raise "
                    "--strength or --steps", o->strength, kept, grid_steps(o, d), name, least);
  }
  switch (o->kind) {
    case SAMPLER_ANCESTRAL:
      if (d->kind != DIFFUSION_DDPM)
        return errorf(err, errlen,
                      "the ancestral sampler needs a discrete DDPM model (this one is %s); use euler_ancestral, pc or ode",
                      type);
      if (o->variance == VARIANCE_LEARNED && !d->cfg.learn_sigma)
        return errorf(err, errlen, "--variance learned needs a model trained with diffusion.learn_sigma (this one "
                                   "predicts no variance): use fixed_small or fixed_large");
      if (o->steps == 0) return 0; /* all T levels */
      if (o->spacing == SPACING_LOGSNR || o->spacing == SPACING_KARRAS)
        return errorf(err, errlen, "the ancestral sampler steps on integer timesteps: use --spacing uniform, quadratic "
                                   "or trailing");
      break;
    case SAMPLER_DDIM:
      if (!(o->eta >= 0.0 && o->eta <= 1.0)) return errorf(err, errlen, "--eta must be in [0, 1]");
      break;
    case SAMPLER_LANGEVIN:
      if (d->kind != DIFFUSION_NCSN && d->kind != DIFFUSION_VESDE)
        return errorf(err, errlen,
                      "annealed Langevin dynamics needs a variance-exploding model (ncsn or vesde; this one is %s); "
                      "use pc, whose corrector is Langevin with a step size set per level",
                      type);
      if (!(o->step_size > 0.0)) return errorf(err, errlen, "--step-size must be > 0");
      if (o->corrector_steps < 1 || o->corrector_steps > SAMPLER_MAX_CORRECTOR_STEPS)
        return errorf(err, errlen, "--corrector-steps must be in [1, %d] for langevin", SAMPLER_MAX_CORRECTOR_STEPS);
      break;
    case SAMPLER_PC:
      if (!(o->snr > 0.0)) return errorf(err, errlen, "--snr must be > 0");
      if (o->corrector_steps < 0 || o->corrector_steps > SAMPLER_MAX_CORRECTOR_STEPS)
        return errorf(err, errlen, "--corrector-steps must be in [0, %d]", SAMPLER_MAX_CORRECTOR_STEPS);
      break;
    case SAMPLER_ODE:
      if (o->method == ODE_RK45) {
        return rk45_check_tolerances(o->rtol, o->atol, err, errlen);
      }
      if (o->steps < 2) return errorf(err, errlen, "--steps must be >= 2 for the %s ODE solver", name);
      break;
    case SAMPLER_DPMPP: break;
    case SAMPLER_DPMPP_SDE:
    case SAMPLER_DPMPP_2S:
    case SAMPLER_DPMPP_3M:
    case SAMPLER_EULER_ANCESTRAL:
      if (!(o->eta >= 0.0 && o->eta <= 10.0)) return errorf(err, errlen, "--eta must be in [0, 10] for %s", name);
      break;
    case SAMPLER_UNIPC: break;
    case SAMPLER_HEUN:
      if (!(o->s_churn >= 0.0)) return errorf(err, errlen, "--s-churn must be >= 0");
      if (!(o->s_noise >= 0.0)) return errorf(err, errlen, "--s-noise must be >= 0");
      if (!(o->s_tmin >= 0.0 && o->s_tmin <= o->s_tmax)) return errorf(err, errlen, "need 0 <= --s-tmin <= --s-tmax");
      break;
  }
  if (in_sigma_space(o->kind) && o->steps < 2)
    return errorf(err, errlen, "--steps must be >= 2 for %s", name);
  if (o->steps > SAMPLER_MAX_STEPS)
    return errorf(err, errlen, "--steps %d: at most %d time steps (far more than any sampler needs)", o->steps,
                  SAMPLER_MAX_STEPS);
  double *taus = xmalloc((size_t)(o->steps > 0 ? o->steps : 1) * sizeof(double));
  const int rc = sampler_time_grid(d, o->steps, o->spacing, taus, err, errlen);
  free(taus);
  return rc;
}

size_t sampler_work_floats(const SamplerOptions *o, size_t n) {
  if (o->kind == SAMPLER_ODE) return o->method == ODE_RK45 ? rk45_work_floats(n) : 3 * n;
  if (o->kind == SAMPLER_UNIPC) return 5 * n;
  if (in_sigma_space(o->kind)) return 4 * n;
  if (o->kind == SAMPLER_ANCESTRAL && o->variance == VARIANCE_LEARNED) return 3 * n;
  return 2 * n;
}

/* The whole grid of a run (ancestral without --steps: all T levels, trailing). */
static double *full_grid(const SamplerOptions *o, const Diffusion *d) {
  char err[256];
  const int steps = grid_steps(o, d);
  const Spacing spacing = o->kind == SAMPLER_ANCESTRAL && o->steps == 0 ? SPACING_TRAILING : o->spacing;
  double *taus = xmalloc((size_t)steps * sizeof(double));
  CHECK(sampler_time_grid(d, steps, spacing, taus, err, sizeof err) == 0);
  return taus;
}

long sampler_run(const SamplerOptions *o, const Diffusion *d, Denoiser *den, NoiseSource *noise, float *x, int B,
                 size_t per_sample, float *work) {
  return sampler_run_conditioned(o, d, den, noise, NULL, x, B, per_sample, work);
}

long sampler_run_conditioned(const SamplerOptions *o, const Diffusion *d, Denoiser *den, NoiseSource *noise,
                             const SamplerCondition *cond, float *x, int B, size_t per_sample, float *work) {
  char err[256];
  CHECK(sampler_check(o, d, err, sizeof err) == 0);
  CHECK(!cond || sampler_check_condition(o, cond, per_sample, err, sizeof err) == 0);
  CHECK(o->kind != SAMPLER_ANCESTRAL || o->variance != VARIANCE_LEARNED || den->predict_eps_var);
  const long nfe0 = den->nfe;
  const bool uses_grid = !(o->kind == SAMPLER_ODE && o->method == ODE_RK45);
  const int steps = grid_steps(o, d), kept = kept_points(o, d);
  double *grid = uses_grid ? full_grid(o, d) : NULL, *taus = grid ? grid + (steps - kept) : NULL;
  /* the algorithms read the number of points from the options: those of the kept part of the grid */
  SamplerOptions run_o = *o;
  if (o->kind != SAMPLER_ANCESTRAL || o->steps) run_o.steps = kept;
  SamplerRun r = {&run_o, d, den, noise, x, B, per_sample, (size_t)B * per_sample, work, 0, cond};
  if (cond) {
    sample_conditioned(&r, taus, kept);
  } else {
    switch (o->kind) {
      case SAMPLER_ANCESTRAL: sample_ancestral(&r, taus, kept); break;
      case SAMPLER_DDIM: sample_ddim(&r, taus); break;
      case SAMPLER_LANGEVIN: sample_langevin(&r, taus); break;
      case SAMPLER_PC: sample_pc(&r, taus); break;
      case SAMPLER_ODE: sample_ode(&r, taus); break;
      case SAMPLER_DPMPP:
      case SAMPLER_DPMPP_SDE:
      case SAMPLER_DPMPP_3M: sample_dpmpp(&r, taus); break;
      case SAMPLER_DPMPP_2S: sample_dpmpp_2s(&r, taus); break;
      case SAMPLER_UNIPC: sample_unipc(&r, taus); break;
      case SAMPLER_EULER_ANCESTRAL: sample_euler_ancestral(&r, taus); break;
      case SAMPLER_HEUN: sample_heun(&r, taus); break;
    }
  }
  free(grid);
  return den->nfe - nfe0;
}

double sampler_start_tau(const SamplerOptions *o, const Diffusion *d) {
  if (o->kind == SAMPLER_ODE && o->method == ODE_RK45) return diffusion_tau_max(d);
  double *grid = full_grid(o, d);
  const double tau = grid[grid_steps(o, d) - kept_points(o, d)];
  free(grid);
  return tau;
}
