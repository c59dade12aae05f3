/* dpmpp_2s.c - DPM-Solver++(2S) (Lu et al. 2022), k-diffusion's sample_dpmpp_2s_ancestral, in the
 * variables of sigma_space.c. With eta > 0 each step aims at s_down and adds s_up z afterwards
 * (s_up = min(s', eta sqrt(s'^2 (s^2 - s'^2) / s^2)), s_down = sqrt(s'^2 - s_up^2)); eta = 0 is the
 * deterministic solver. A step from s to s_down (lambda = -log s, h = lambda_down - lambda):
 *   u = (s_mid / s) y - (e^{-h/2} - 1) D(y; s),  s_mid = sqrt(s s_down),
 *   y' = (s_down / s) y - (e^{-h} - 1) D(u; s_mid),
 * two network evaluations per step; the last step goes to s = 0 with y' = D(y; s). */
#include <math.h>
#include <string.h>

#include "algorithms.h"

/* k-diffusion's get_ancestral_step: the noise level to step down to and the noise to add. */
void sampler_ancestral_step(double s, double s_next, double eta, double *s_down, double *s_up) {
  *s_up = eta > 0.0 ? fmin(s_next, eta * sqrt(s_next * s_next * (s * s - s_next * s_next) / (s * s))) : 0.0;
  *s_down = sqrt(s_next * s_next - *s_up * *s_up);
}

void sample_dpmpp_2s(SamplerRun *r, const double *taus) {
  const int steps = r->o->steps;
  float *y = r->x, *D = r->work, *u = r->work + r->n, *tmp = r->work + 2 * r->n;
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
    if (s_down == 0.0) { /* eta so large that the step aims at s = 0: Euler, y' = D */
      memcpy(y, D, r->n * sizeof(float));
    } else {
      const double h = log(s / s_down), s_mid = sqrt(s * s_down);
      const float cu = (float)(s_mid / s), cd = (float)(-expm1(-0.5 * h));
      for (size_t j = 0; j < r->n; j++) u[j] = cu * y[j] + cd * D[j];
      sigma_space_denoise(r, u, sigma_space_tau(r->d, s_mid), D, tmp);
      const float cy = (float)(s_down / s), c2 = (float)(-expm1(-h));
      for (size_t j = 0; j < r->n; j++) y[j] = cy * y[j] + c2 * D[j];
    }
    sampler_add_noise(r, tmp, s_up);
  }
}
