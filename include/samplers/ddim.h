/* ddim.h - deterministic DDIM sampling (Song, Meng & Ermon 2021, eta = 0) for any process in the
 * x = alpha x0 + sigma eps form: x0_hat = (x - sigma eps_hat)/alpha, x' = alpha' x0_hat + sigma' eps_hat.
 * For VE processes this is the Euler step of the probability-flow ODE in sigma. */
#ifndef SAMPLERS_DDIM_H
#define SAMPLERS_DDIM_H

#include "diffusion/denoiser.h"

/* x: in, prior noise x_{tau_max} (B, C, H, W); out, the sample. `work` holds B*C*H*W floats.
 * Discrete processes use the timesteps i * n_levels / steps (ermongroup/ddim "uniform"), the final
 * step going to alpha = 1, sigma = 0; continuous ones a uniform grid from 1 to t_eps followed by
 * x0_hat at t_eps. */
void ddim_sample(const Diffusion *d, Denoiser *den, float *x, int B, size_t per_sample, int steps, float *work);

#endif
