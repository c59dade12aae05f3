/* heun.c - EDM's stochastic second-order sampler (Karras et al. 2022, Algorithm 2; k-diffusion's
 * sample_heun) in the variables of sigma_space.c. Step i from s_i to s_{i+1} (s_steps = 0):
 *   gamma = min(S_churn / steps, sqrt(2) - 1) where S_tmin <= s_i <= S_tmax, else 0;
 *   s^ = s_i (1 + gamma) (at most the process's largest s), y^ = y + S_noise sqrt(s^^2 - s_i^2) z;
 *   d = (y^ - D(y^; s^)) / s^,  y' = y^ + (s_{i+1} - s^) d            (Euler)
 *   d' = (y' - D(y'; s_{i+1})) / s_{i+1},  y' = y^ + (s_{i+1} - s^) (d + d') / 2  (Heun, unless s_{i+1} = 0).
 * S_churn = 0 is the deterministic Algorithm 1: 2 steps - 1 network evaluations (18 points: 35). */
#include <math.h>

#include "algorithms.h"

void sample_heun(SamplerRun *r, const double *taus) {
  const SamplerOptions *o = r->o;
  const int steps = o->steps;
  float *y = r->x, *d = r->work, *y2 = r->work + r->n, *D2 = r->work + 2 * r->n, *tmp = r->work + 3 * r->n;
  const double s_top = sigma_space_sigma(r->d, diffusion_tau_max(r->d));
  sigma_space_enter(r, taus[0]);
  for (int i = 0; i < steps; i++) {
    const double s = sigma_space_sigma(r->d, taus[i]), sn = i + 1 < steps ? sigma_space_sigma(r->d, taus[i + 1]) : 0.0;
    const double gamma = s >= o->s_tmin && s <= o->s_tmax ? fmin(o->s_churn / steps, sqrt(2.0) - 1.0) : 0.0;
    double s_hat = s, tau_hat = taus[i];
    if (gamma > 0.0 && s < s_top) {
      s_hat = fmin(s * (1.0 + gamma), s_top);
      tau_hat = sigma_space_tau(r->d, s_hat);
      sampler_add_noise(r, tmp, o->s_noise * sqrt(s_hat * s_hat - s * s));
    }
    sigma_space_denoise(r, y, tau_hat, d, tmp);
    const float inv = (float)(1.0 / s_hat), dt = (float)(sn - s_hat);
    for (size_t j = 0; j < r->n; j++) d[j] = (y[j] - d[j]) * inv;
    if (i + 1 == steps) { /* Euler to s = 0: y^ - s^ d = D */
      for (size_t j = 0; j < r->n; j++) y[j] += dt * d[j];
      break;
    }
    for (size_t j = 0; j < r->n; j++) y2[j] = y[j] + dt * d[j];
    sigma_space_denoise(r, y2, taus[i + 1], D2, tmp);
    const float inv_n = (float)(1.0 / sn), half_dt = 0.5f * dt;
    for (size_t j = 0; j < r->n; j++) y[j] += half_dt * (d[j] + (y2[j] - D2[j]) * inv_n);
  }
}
