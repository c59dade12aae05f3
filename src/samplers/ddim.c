/* ddim.c - DDIM (Song, Meng & Ermon 2021, eq. 12) for any process x = alpha x0 + sigma eps:
 *   x0_hat = (x - sigma eps_hat) / alpha,
 *   x' = alpha' x0_hat + sqrt(sigma'^2 - c^2) eps_hat + c z,
 *   c = eta * sigma' / sigma * sqrt(sigma^2 - (alpha / alpha')^2 sigma'^2)
 * (for VP processes c = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar'), the paper's
 * sigma_t(eta)). eta = 0 is deterministic (for VE processes the Euler step of the
 * probability-flow ODE in sigma); the last step goes to alpha' = 1, sigma' = 0. */
#include <math.h>

#include "algorithms.h"

void ddim_step(SamplerRun *r, const double *taus, int i, int steps) {
  float *eps = r->work, *z = r->work + r->n, *x = r->x;
  double a, s, a_next = 1.0, s_next = 0.0;
  diffusion_marginal(r->d, taus[i], &a, &s);
  if (i + 1 < steps) diffusion_marginal(r->d, taus[i + 1], &a_next, &s_next);
  const double ratio = a / a_next, tail = s * s - ratio * ratio * s_next * s_next;
  const double c = r->o->eta * s_next / s * sqrt(tail > 0.0 ? tail : 0.0);
  r->den->predict_eps(r->den, eps, x, r->B, taus[i]);
  const float cx = (float)(a_next / a), ce = (float)(sqrt(s_next * s_next - c * c) - a_next * s / a), cz = (float)c;
  if (cz > 0.0f) {
    sampler_noise(r, z);
    for (size_t k = 0; k < r->n; k++) x[k] = cx * x[k] + ce * eps[k] + cz * z[k];
  } else {
    for (size_t k = 0; k < r->n; k++) x[k] = cx * x[k] + ce * eps[k];
  }
}

void sample_ddim(SamplerRun *r, const double *taus) {
  for (int i = 0; i < r->o->steps; i++) ddim_step(r, taus, i, r->o->steps);
}
