/* sampler.h - every sampler behind one entry point.
 *
 * A sampler turns prior noise x (B, C, H, W), drawn by the caller as N(0, prior_std^2), into
 * samples, talking to the model only through a Denoiser (eps_hat at (x, tau)), so tests plug in
 * exact scores of Gaussians and mixtures. Times are the process's native tau (diffusion.h); the
 * SDE/ODE samplers use the continuous view every process has (fractional tau for DDPM and NCSN).
 * Every sampler ends with the "denoise" step x0_hat = (x - sigma eps_hat) / alpha from its last
 * time (Song et al. 2021's noise removal; DDIM's last step to alpha_bar = 1). Per-step noise comes
 * from a NoiseSource: by default counter-based draws keyed by the sample index, so sample k is the
 * same whatever the batch size (except rk45, whose step sizes are chosen per batch, and the pc
 * corrector, whose step size uses batch-mean norms as the reference implementation does).
 */
#ifndef SAMPLERS_SAMPLER_H
#define SAMPLERS_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diffusion/denoiser.h"
#include "diffusion/diffusion.h"

typedef enum {
  SAMPLER_ANCESTRAL,
  SAMPLER_DDIM,
  SAMPLER_LANGEVIN,
  SAMPLER_PC,
  SAMPLER_ODE,
  SAMPLER_DPMPP,           /* DPM-Solver++(2M) */
  SAMPLER_DPMPP_SDE,       /* DPM-Solver++(2M) SDE, midpoint form (eta 1 by default) */
  SAMPLER_DPMPP_2S,        /* DPM-Solver++(2S); ancestral with eta > 0 */
  SAMPLER_DPMPP_3M,        /* DPM-Solver++(3M); the 3M SDE with eta > 0 */
  SAMPLER_UNIPC,           /* UniPC-2 (bh2) with the UniC corrector */
  SAMPLER_EULER_ANCESTRAL, /* k-diffusion's Euler ancestral */
  SAMPLER_HEUN,            /* EDM's second-order sampler (Karras et al. 2022, Algorithm 2) */
} SamplerKind;

typedef enum {
  SPACING_UNIFORM,   /* discrete: tau_i = i * levels / steps (ermongroup/ddim) */
  SPACING_QUADRATIC, /* discrete: tau_i = floor((i * sqrt(0.8 levels) / (steps - 1))^2) (ermongroup/ddim) */
  SPACING_TRAILING,  /* discrete: tau_i = round((i + 1) * levels / steps) - 1, the first step at tau_max */
  SPACING_LOGSNR,    /* any process: uniform in lambda = log(alpha / sigma) from tau_max to tau_min
                        (DPM-Solver's "logSNR" grid; fractional tau for discrete models) */
  SPACING_KARRAS,    /* any process: s_i = (s_max^(1/rho) + i / (steps - 1) (s_min^(1/rho) - s_max^(1/rho)))^rho
                        in s = sigma / alpha, rho = 7 (Karras et al. 2022, eq. 5) */
} Spacing;           /* continuous processes: uniform/trailing are tau uniform on [tau_min, tau_max], quadratic
                        in (i / (steps - 1))^2 */

/* The reverse step's variance: beta_tilde_t, beta_t, or the model's own interpolation between them in log space
 * (diffusion.learn_sigma, Nichol & Dhariwal 2021; the denoiser's predict_eps_var). */
typedef enum { VARIANCE_FIXED_SMALL, VARIANCE_FIXED_LARGE, VARIANCE_LEARNED } AncestralVariance;
typedef enum { PREDICTOR_REVERSE_DIFFUSION, PREDICTOR_EULER_MARUYAMA } Predictor;
typedef enum { ODE_EULER, ODE_HEUN, ODE_RK45 } OdeMethod;

typedef struct {
  SamplerKind kind;
  int steps;                   /* time-grid points (ancestral: all levels; rk45: unused) */
  Spacing spacing;
  double eta;                  /* ddim: 0 deterministic .. 1 DDPM-like */
  AncestralVariance variance;  /* ancestral */
  bool clip_x0;                /* ancestral: clip x0_hat to [-1, 1] */
  double step_size;            /* langevin: eps, step eps * sigma_i^2 / sigma_last^2 */
  int corrector_steps;         /* langevin, pc: K Langevin steps per level */
  double snr;                  /* pc: corrector target signal-to-noise ratio */
  Predictor predictor;         /* pc */
  OdeMethod method;            /* ode */
  double rtol, atol;           /* ode rk45 */
  double s_churn, s_tmin, s_tmax, s_noise; /* heun: EDM's stochasticity (S_churn 0: deterministic) */
  int resample, jump;          /* conditioned runs: RePaint's jump_n_sample R (1: no resampling) and jump_length J */
  double strength;             /* SDEdit (Meng et al. 2022): run the last floor(strength * steps) points of
                                  the grid, from x at sampler_start_tau (diffusers' img2img rule); 1: all */
} SamplerOptions;

#define SAMPLER_MAX_STEPS 100000
#define SAMPLER_MAX_CORRECTOR_STEPS 1000

/* Defaults per kind: ddim uniform spacing (use trailing for VE models), eta 0; dpmpp, dpmpp_sde, dpmpp_2s,
 * dpmpp_3m and unipc logsnr; euler_ancestral and heun karras; the others trailing; eta 1 for dpmpp_sde and
 * euler_ancestral, 0 otherwise; langevin eps 6.2e-6, K 5 (NCSNv2 CIFAR-10); pc reverse_diffusion, snr 0.16,
 * K 1 (Song et al. 2021); ode rk45 with rtol = atol = 1e-5 (Song et al. 2021); heun S_churn 0, S_tmin 0,
 * S_tmax inf, S_noise 1; resample 1, jump 10 (RePaint's). Ancestral with steps 0 visits all T levels, otherwise a respaced subset. */
void sampler_options_default(SamplerOptions *o, SamplerKind kind, int steps);
/* Name -> enum for the CLI; -1 for an unknown name. */
int sampler_kind_from_name(const char *name);
const char *sampler_kind_name(SamplerKind kind);
#define SAMPLER_N_KINDS 12

/* Per-step noise z (B, per_sample) for the draw-th noise draw of a sampler run. */
typedef struct NoiseSource NoiseSource;
struct NoiseSource {
  void (*fill)(NoiseSource *self, float *z, int B, size_t per_sample, long draw);
  uint64_t seed, stream_base; /* the default source: sample b uses stream stream_base + b */
  void *ctx;
};
NoiseSource noise_source_rng(uint64_t seed, uint64_t stream_base);

/* Is this sampler meaningful for this process, are the options in range? 0, or -1 + message. */
int sampler_check(const SamplerOptions *o, const Diffusion *d, char *err, size_t errlen);
/* Floats of work memory sampler_run needs for B * per_sample = n values. */
size_t sampler_work_floats(const SamplerOptions *o, size_t n);
/* x: in, prior noise; out, samples. Options must have passed sampler_check. Returns the number of
 * network evaluations (each on the whole batch). */
long sampler_run(const SamplerOptions *o, const Diffusion *d, Denoiser *den, NoiseSource *noise, float *x, int B,
                 size_t per_sample, float *work);

/* A known linear part of the sample (Song et al. 2021's inverse problems): the samples keep P x = P reference,
 * P the orthogonal projection onto
 *   inpaint:  the pixels where keep is 1 (every channel);
 *   colorize: the per-pixel channel mean, the first channel of score_sde's decorrelated colour space
 *             (its orthonormal M has first column (1, 1, 1) / sqrt(3), so its grayscale channel masks to
 *             this P); the samples keep the reference's grayscale image;
 *   lowres:   the factor x factor block means of each channel (ILVR's low-pass phi_N, Choi et al. 2021,
 *             with box down- and nearest up-sampling, whose composite is an orthogonal projection).
 * After every reverse step to time tau (and every pc corrector step) the known part is replaced by that of
 * q(x_tau | reference): x <- x + P(alpha reference + sigma z - x), z fresh noise; at the end x <- x + P(reference
 * - x), so the known part comes out as the reference's (inpaint: the very values). With o->resample R > 1,
 * RePaint's schedule (Lugmayr et al. 2022) goes back o->jump grid points by the forward process R - 1 times at
 * every jump-th point. Runs on ancestral (RePaint), ddim and pc (score_sde's inpainter and colorizer). */
typedef enum { CONDITION_INPAINT, CONDITION_COLORIZE, CONDITION_LOWRES } ConditionKind;
typedef struct {
  ConditionKind kind;
  const float *reference;          /* per_sample floats (C, H, W) in data space, the same for the whole batch */
  const float *keep;               /* inpaint: per_sample floats, 1 keep / 0 generate (the same for all channels) */
  int channels, height, width;     /* the sample's layout */
  int factor;                      /* lowres */
} SamplerCondition;

/* Is the condition meaningful with these options (sampler kind, strength, R, J) and this layout? 0, or -1 +
 * message. */
int sampler_check_condition(const SamplerOptions *o, const SamplerCondition *c, size_t per_sample, char *err,
                            size_t errlen);
/* v (B, per_sample) <- P v. */
void sampler_condition_project(const SamplerCondition *c, float *v, int B);
/* sampler_run with a condition (NULL: none), checked by sampler_check_condition. */
long sampler_run_conditioned(const SamplerOptions *o, const Diffusion *d, Denoiser *den, NoiseSource *noise,
                             const SamplerCondition *cond, float *x, int B, size_t per_sample, float *work);

/* Integrate the probability-flow ODE from tau0 to tau1 (either direction) with o->method (euler and
 * heun on o->steps uniform points), without the denoising step: encode with tau0 < tau1, decode back.
 * work: sampler_work_floats floats. Returns the network evaluations. */
long sampler_ode_solve(const SamplerOptions *o, const Diffusion *d, Denoiser *den, float *x, int B, size_t per_sample,
                       double tau0, double tau1, float *work);

/* The time the run starts at: the grid's first point, or with strength < 1 the first one it keeps
 * (x must then hold alpha x0 + sigma z there). Options must have passed sampler_check. */
double sampler_start_tau(const SamplerOptions *o, const Diffusion *d);

/* The descending native times tau_0 > ... > tau_{steps-1} of a sampler's grid; 0 or -1 + message
 * (e.g. quadratic spacing with too many steps repeats a timestep). */
int sampler_time_grid(const Diffusion *d, int steps, Spacing spacing, double *taus, char *err, size_t errlen);

#endif
