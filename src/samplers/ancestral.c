/* ancestral.c - DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) for discrete DDPM processes:
 *   x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(alpha_t) + s_t z,
 * s_t^2 = beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) ("fixed_small") or beta_t
 * ("fixed_large"), no noise at t = 0. Written as the posterior mean q(x_{t-1} | x_t, x0_hat)
 * (the same update); with clip_x0, x0_hat is clipped to [-1, 1] first. Visits all T levels. */
#include <math.h>

#include "algorithms.h"
#include "core/error.h"

void sample_ancestral(SamplerRun *r) {
  const Diffusion *d = r->d;
  CHECK(d->kind == DIFFUSION_DDPM);
  float *eps = r->work, *z = r->work + r->n;
  for (int t = d->n_levels - 1; t >= 0; t--) {
    const double beta = d->betas[t], ab = d->alphas_cumprod[t], ab_prev = t > 0 ? d->alphas_cumprod[t - 1] : 1.0;
    const double var_t = r->o->variance == VARIANCE_FIXED_LARGE ? beta : beta * (1.0 - ab_prev) / (1.0 - ab);
    const float s = t > 0 ? (float)sqrt(var_t) : 0.0f;
    /* posterior mean coefficients: mu = c0 * x0_hat + ct * x_t */
    const float c0 = (float)(sqrt(ab_prev) * beta / (1.0 - ab)), ct = (float)(sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab));
    const float inv_sqrt_ab = (float)(1.0 / sqrt(ab)), sqrt_1m_ab = (float)sqrt(1.0 - ab);
    r->den->predict_eps(r->den, eps, r->x, r->B, (double)t);
    if (t > 0) sampler_noise(r, z);
    const bool clip = r->o->clip_x0;
    float *x = r->x;
    for (size_t i = 0; i < r->n; i++) {
      float x0 = (x[i] - sqrt_1m_ab * eps[i]) * inv_sqrt_ab;
      if (clip) x0 = fminf(1.0f, fmaxf(-1.0f, x0));
      x[i] = c0 * x0 + ct * x[i] + (t > 0 ? s * z[i] : 0.0f);
    }
  }
}
