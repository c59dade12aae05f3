/* sigma_space.c - k-diffusion's variables for any process; see algorithms.h. */
#include <math.h>

#include "algorithms.h"

double sigma_space_sigma(const Diffusion *d, double tau) {
  double a, s;
  diffusion_marginal(d, tau, &a, &s);
  return s / a;
}

double sigma_space_tau(const Diffusion *d, double s) {
  const double lo = diffusion_tau_min(d), hi = diffusion_tau_max(d);
  if (s >= sigma_space_sigma(d, hi)) return hi;
  if (s <= sigma_space_sigma(d, lo)) return lo;
  return sampler_tau_at_log_snr(d, -log(s), lo, hi);
}

void sigma_space_enter(SamplerRun *r, double tau) {
  double a, s;
  diffusion_marginal(r->d, tau, &a, &s);
  if (a == 1.0) return;
  const float inv = (float)(1.0 / a);
  for (size_t j = 0; j < r->n; j++) r->x[j] *= inv;
}

void sigma_space_denoise(SamplerRun *r, const float *y, double tau, float *x0, float *tmp) {
  double a, s;
  diffusion_marginal(r->d, tau, &a, &s);
  const float *in = y;
  if (a != 1.0) {
    const float fa = (float)a;
    for (size_t j = 0; j < r->n; j++) tmp[j] = fa * y[j];
    in = tmp;
  }
  r->den->predict_eps(r->den, x0, in, r->B, tau);
  const float sk = (float)(s / a);
  for (size_t j = 0; j < r->n; j++) x0[j] = y[j] - sk * x0[j];
}
