/* ancestral.h - DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) for discrete DDPM processes:
 *   x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(alpha_t) + s_t z,
 * s_t^2 = beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) ("fixed_small") or beta_t
 * ("fixed_large"), no noise at t = 0. With clip_x0, x0_hat is clipped to [-1, 1] and the
 * posterior mean q(x_{t-1} | x_t, x0_hat) is used instead (the same update when unclipped). */
#ifndef SAMPLERS_ANCESTRAL_H
#define SAMPLERS_ANCESTRAL_H

#include <stdbool.h>
#include <stdint.h>

#include "diffusion/denoiser.h"

typedef enum { VARIANCE_FIXED_SMALL, VARIANCE_FIXED_LARGE } AncestralVariance;

/* x: in, x_{T-1} ~ N(0, I); out, the sample. Noise z of step t for sample b comes from
 * rng (seed, stream_base + b, t) so a sample does not depend on its batch. work: B*per_sample floats. */
void ancestral_sample(const Diffusion *d, Denoiser *den, float *x, int B, size_t per_sample, AncestralVariance var,
                      bool clip_x0, uint64_t seed, uint64_t stream_base, float *work);

#endif
