/* unipc.c - UniPC (Zhao et al. 2023) of order 2 with the B(h) = e^{h} - 1 ("bh2") variant, on data
 * predictions, as diffusers' UniPCMultistepScheduler (solver_order 2, lower_order_final), in the
 * variables of sigma_space.c (lambda = -log s, h = lambda_t - lambda_s0, B = e^{-h} - 1 = -phi):
 *   predictor UniP to t:   y_t = (s_t / s_0) y_0 + phi M_0 - B rho_p D1,  rho_p = 1/2, D1 = (M_1 - M_0) / r_1
 *   corrector UniC at t, with the network's M_t at the predicted y_t (no extra evaluation):
 *     order 1: y_t = (s_t / s_0) y_0 + phi M_0 - B (M_t - M_0) / 2
 *     order 2: y_t = (s_t / s_0) y_0 + phi M_0 - B (rho_0 D1 + rho_1 (M_t - M_0)),  [1 1; r_1 1] rho = b,
 * M_k the data predictions at the previous points, r_1 = (lambda_{-1} - lambda_0) / h, and b_1, b_2
 * from h phi_k as in the reference. The first step is first order, as is the last, which goes to
 * s = 0 where y = M; the corrector uses the order of the predictor it corrects. One network
 * evaluation per step. */
#include <math.h>
#include <string.h>

#include "algorithms.h"

/* b_1, b_2 of UniC order 2 (diffusers' loop over h_phi_k with hh = -h). */
static void unic_b(double h, double *b1, double *b2) {
  const double hh = -h, B = expm1(hh), phi_1 = expm1(hh) / hh - 1.0;
  *b1 = phi_1 / B;
  *b2 = (phi_1 / hh - 0.5) * 2.0 / B;
}

void sample_unipc(SamplerRun *r, const double *taus) {
  const int steps = r->o->steps;
  const size_t n = r->n;
  float *y = r->x, *M = r->work, *M1 = r->work + n, *M2 = r->work + 2 * n, *last = r->work + 3 * n,
        *tmp = r->work + 4 * n;
  double lam[3] = {0}; /* lambda at the current, previous and earlier point */
  int order_prev = 0;
  sigma_space_enter(r, taus[0]);
  for (int i = 0; i < steps; i++) {
    const double s = sigma_space_sigma(r->d, taus[i]);
    lam[0] = -log(s);
    sigma_space_denoise(r, y, taus[i], M, tmp);
    if (i + 1 == steps) { /* to s = 0 (the correction of this point would be multiplied by 0) */
      memcpy(y, M, n * sizeof(float));
      break;
    }
    if (i > 0) { /* UniC: correct y_i from the previous point with M_i */
      const double h = lam[0] - lam[1], B = expm1(-h);
      const float cl = (float)exp(-h), cm = (float)(-B);
      if (order_prev == 1) {
        const float c = (float)(0.5 * B);
        for (size_t j = 0; j < n; j++) y[j] = cl * last[j] + cm * M1[j] - c * (M[j] - M1[j]);
      } else {
        double b1, b2;
        unic_b(h, &b1, &b2);
        const double r1 = (lam[2] - lam[1]) / h, rho0 = (b1 - b2) / (1.0 - r1), rho1 = b1 - rho0;
        const float c0 = (float)(B * rho0 / r1), c1 = (float)(B * rho1);
        for (size_t j = 0; j < n; j++) y[j] = cl * last[j] + cm * M1[j] - c0 * (M2[j] - M1[j]) - c1 * (M[j] - M1[j]);
      }
    }
    memcpy(last, y, n * sizeof(float));
    const double sn = sigma_space_sigma(r->d, taus[i + 1]), h = log(s / sn), B = expm1(-h);
    const int order = i == 0 ? 1 : 2;
    const float cy = (float)(sn / s), cm = (float)(-B);
    if (order == 1) {
      for (size_t j = 0; j < n; j++) y[j] = cy * y[j] + cm * M[j];
    } else { /* rho_p = 1/2, D1 = (M_{i-1} - M_i) / r_1 */
      const double r1 = (lam[1] - lam[0]) / h;
      const float c = (float)(0.5 * B / r1);
      for (size_t j = 0; j < n; j++) y[j] = cy * y[j] + cm * M[j] - c * (M1[j] - M[j]);
    }
    float *oldest = M2;
    M2 = M1, M1 = M, M = oldest;
    lam[2] = lam[1], lam[1] = lam[0];
    order_prev = order;
  }
}
