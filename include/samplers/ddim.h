/* ddim.h - deterministic DDIM sampling (Song, Meng & Ermon 2021, eta = 0) for any process in the
 * x = alpha x0 + sigma eps form: x0_hat = (x - sigma eps_hat)/alpha, x' = alpha' x0_hat + sigma' eps_hat.
 * For VE processes this is the Euler step of the probability-flow ODE in sigma. */
#ifndef SAMPLERS_DDIM_H
#define SAMPLERS_DDIM_H

#include "diffusion/denoiser.h"

typedef enum {
  DDIM_UNIFORM,  /* discrete: tau_i = i * n_levels / steps (ermongroup/ddim), i = 0..steps-1 */
  DDIM_TRAILING, /* discrete: tau_i = round((i + 1) * n_levels / steps) - 1, so the first step is at tau_max */
} DdimSpacing;

/* x: in, prior noise x_{tau_max} (B, C, H, W); out, the sample. `work` holds B*C*H*W floats.
 * Steps go from the largest grid time down; the last one goes to alpha = 1, sigma = 0 (x0_hat).
 * Continuous processes use a uniform grid from 1 down to t_eps (both spacings). Note that with
 * "uniform" the first step is below tau_max, which is harmless for VP processes but biases VE
 * ones (their prior std is sigma_max): use trailing there. */
void ddim_sample(const Diffusion *d, Denoiser *den, float *x, int B, size_t per_sample, int steps, DdimSpacing spacing,
                 float *work);

#endif
