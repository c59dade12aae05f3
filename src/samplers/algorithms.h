/* algorithms.h - the individual samplers behind sampler_run (sampler.c), one file each, and the
 * helpers they share. Internal to src/samplers. */
#ifndef SAMPLERS_ALGORITHMS_H
#define SAMPLERS_ALGORITHMS_H

#include "samplers/sampler.h"

/* What every sampler gets: x (B, per_sample) in/out, n = B * per_sample, work per sampler_work_floats. */
typedef struct {
  const SamplerOptions *o;
  const Diffusion *d;
  Denoiser *den;
  NoiseSource *noise;
  float *x;
  int B;
  size_t per_sample, n;
  float *work;
  long noise_draws; /* draws handed out so far */
  const SamplerCondition *cond; /* NULL, or the known part to keep (condition.c) */
} SamplerRun;

/* taus: the visited timesteps, descending (all T, or a respaced subset). */
void sample_ancestral(SamplerRun *r, const double *taus, int steps);
void sample_ddim(SamplerRun *r, const double *taus);
void sample_langevin(SamplerRun *r, const double *taus);
void sample_pc(SamplerRun *r, const double *taus);
void sample_ode(SamplerRun *r, const double *taus);
/* One interval of a grid sampler: x at taus[i] to taus[i + 1], or to the final sample when i = steps - 1
 * (the conditioned driver, condition.c, calls these one at a time). */
void ancestral_step(SamplerRun *r, const double *taus, int i, int steps);
void ddim_step(SamplerRun *r, const double *taus, int i, int steps);
void pc_step(SamplerRun *r, const double *taus, int i, int steps);
/* Replace the known part of r->x with that of q(x_tau | reference); scratch: n floats. */
void sampler_condition_keep(SamplerRun *r, double tau, float *scratch);
/* The conditioned run over taus[0..steps-1] (condition.c). */
void sample_conditioned(SamplerRun *r, const double *taus, int steps);
/* The samplers written in k-diffusion's variables (sigma_space.c): DPM-Solver++ 2M / 2M SDE / 3M
 * (dpmpp.c), 2S (dpmpp_2s.c), UniPC (unipc.c), Euler ancestral (euler_ancestral.c), EDM's Heun (heun.c). */
void sample_dpmpp(SamplerRun *r, const double *taus);
void sample_dpmpp_2s(SamplerRun *r, const double *taus);
void sample_unipc(SamplerRun *r, const double *taus);
void sample_euler_ancestral(SamplerRun *r, const double *taus);
void sample_heun(SamplerRun *r, const double *taus);

/* The next noise draw z (n floats). */
void sampler_noise(SamplerRun *r, float *z);
/* r->x += scale * z for the next noise draw z (n floats of scratch); nothing is drawn when scale is 0. */
void sampler_add_noise(SamplerRun *r, float *z, double scale);
/* eps = eps_hat(x, tau); x <- x0_hat = (x - sigma eps) / alpha. */
void sampler_denoise(SamplerRun *r, double tau, float *eps);

/* The largest tau in [lo, hi] with log(alpha / sigma) >= target (lambda decreases in tau), by bisection. */
double sampler_tau_at_log_snr(const Diffusion *d, double target, double lo, double hi);

/* k-diffusion's view of any process (Karras et al. 2022, sec. 4): with s = sigma / alpha and
 * y = x / alpha, y = x0 + s eps, and the denoiser D(y; s) = x0_hat = y - s eps_hat(alpha y, tau(s)).
 * Samplers in this view keep y in r->x (sigma_space_enter) and end at s = 0, where y = x. */
double sigma_space_sigma(const Diffusion *d, double tau);
/* The tau of a given s, clamped to [tau_min, tau_max] (s outside the process's range). */
double sigma_space_tau(const Diffusion *d, double s);
/* k-diffusion's get_ancestral_step from s to s_next with eta: the level s_down a step aims at and
 * the noise s_up added after it, s_down^2 + s_up^2 = s_next^2 (dpmpp_2s.c). */
void sampler_ancestral_step(double s, double s_next, double eta, double *s_down, double *s_up);
/* r->x <- r->x / alpha(tau). */
void sigma_space_enter(SamplerRun *r, double tau);
/* x0 = D(y; s(tau)) at y = r->x; tmp: n floats of scratch (the network's input alpha y). */
void sigma_space_denoise(SamplerRun *r, const float *y, double tau, float *x0, float *tmp);

#endif
