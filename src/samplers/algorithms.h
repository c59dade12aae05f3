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
} SamplerRun;

void sample_ancestral(SamplerRun *r);
void sample_ddim(SamplerRun *r, const double *taus);
void sample_langevin(SamplerRun *r, const double *taus);
void sample_pc(SamplerRun *r, const double *taus);
void sample_ode(SamplerRun *r, const double *taus);
void sample_dpmpp(SamplerRun *r, const double *taus);

/* The next noise draw z (n floats). */
void sampler_noise(SamplerRun *r, float *z);
/* eps = eps_hat(x, tau); x <- x0_hat = (x - sigma eps) / alpha. */
void sampler_denoise(SamplerRun *r, double tau, float *eps);

#endif
