/* dpmpp.c - DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a multistep second-order solver of the
 * probability-flow ODE in its data-prediction form, with lambda = log(alpha / sigma):
 *   h_i = lambda_{i+1} - lambda_i,  D_i = x0_i                                  (first step)
 *   D_i = (1 + 1/(2 r_i)) x0_i - 1/(2 r_i) x0_{i-1},  r_i = h_{i-1} / h_i        (later steps)
 *   x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} (e^{-h_i} - 1) D_i.
 * The last step goes to sigma = 0 (lambda = inf) with the first-order update, x = x0_hat: the
 * "lower order final" choice of the reference implementations, stable at few steps. */
#include <math.h>
#include <string.h>

#include "algorithms.h"

void sample_dpmpp(SamplerRun *r, const double *taus) {
  const int steps = r->o->steps;
  float *x0 = r->work, *x0_prev = r->work + r->n, *x = r->x;
  double h_prev = 0.0;
  for (int i = 0; i < steps; i++) {
    double a, s;
    diffusion_marginal(r->d, taus[i], &a, &s);
    r->den->predict_eps(r->den, x0, x, r->B, taus[i]);
    for (size_t j = 0; j < r->n; j++) x0[j] = (float)((x[j] - s * x0[j]) / a);
    if (i + 1 == steps) {
      memcpy(x, x0, r->n * sizeof(float));
      break;
    }
    double an, sn;
    diffusion_marginal(r->d, taus[i + 1], &an, &sn);
    const double h = log(an / sn) - log(a / s);
    const float cx = (float)(sn / s), cd = (float)(-an * expm1(-h));
    if (i == 0) {
      for (size_t j = 0; j < r->n; j++) x[j] = cx * x[j] + cd * x0[j];
    } else {
      const double half_inv_r = 0.5 * h / h_prev;
      const float w0 = (float)(1.0 + half_inv_r), w1 = (float)(-half_inv_r);
      for (size_t j = 0; j < r->n; j++) x[j] = cx * x[j] + cd * (w0 * x0[j] + w1 * x0_prev[j]);
    }
    memcpy(x0_prev, x0, r->n * sizeof(float));
    h_prev = h;
  }
}
