/* euler_ancestral.c - k-diffusion's sample_euler_ancestral in the variables of sigma_space.c: an
 * Euler step of the probability-flow ODE dy/ds = (y - D(y; s)) / s from s_i down to s_down, then
 * fresh noise s_up z (sampler_ancestral_step with eta; eta = 0 is the Euler ODE solver). The last
 * step goes to s = 0: y = D. */
#include <string.h>

#include "algorithms.h"

void sample_euler_ancestral(SamplerRun *r, const double *taus) {
  const int steps = r->o->steps;
  float *y = r->x, *D = r->work, *tmp = r->work + r->n;
  sigma_space_enter(r, taus[0]);
  for (int i = 0; i < steps; i++) {
    sigma_space_denoise(r, y, taus[i], D, tmp);
    if (i + 1 == steps) {
      memcpy(y, D, r->n * sizeof(float));
      break;
    }
    const double s = sigma_space_sigma(r->d, taus[i]), sn = sigma_space_sigma(r->d, taus[i + 1]);
    double s_down, s_up;
    sampler_ancestral_step(s, sn, r->o->eta, &s_down, &s_up);
    const float c = (float)((s_down - s) / s); /* y + (y - D) / s * (s_down - s) */
    for (size_t j = 0; j < r->n; j++) y[j] += c * (y[j] - D[j]);
    sampler_add_noise(r, tmp, s_up);
  }
}
