/* dpmpp.c - the multistep DPM-Solver++ family (Lu et al. 2022) in k-diffusion's variables
 * (sigma_space.c: y = x0 + s eps, lambda = -log s, h = lambda_{i+1} - lambda_i, D_i = D(y_i; s_i)),
 * written as k-diffusion's sample_dpmpp_2m_sde (midpoint) and sample_dpmpp_3m_sde, with eta >= 0:
 *   y' = (s_{i+1} / s_i) e^{-eta h} y + (1 - e^{-(1 + eta) h}) D_i + corr + s_{i+1} sqrt(1 - e^{-2 eta h}) z.
 *   2M:  corr = (1 - e^{-(1 + eta) h}) / (2 r) (D_i - D_{i-1}),  r = h_{i-1} / h
 *        (eta = 0: Algorithm 2 of the paper, (1 + 1/(2r)) D_i - 1/(2r) D_{i-1});
 *   3M:  corr = phi_2 d1 - phi_3 d2 from the divided differences of D_i, D_{i-1}, D_{i-2}
 *        (phi_2 d1 alone on the second step), phi_2 = (e^{-h'} - 1) / h' + 1, phi_3 = phi_2 / h' - 1/2,
 *        h' = (1 + eta) h.
 * The first step is first order; the last goes to s = 0, where y = D ("lower order final"). In x
 * this equals the paper's update x' = (sigma'/sigma) x - alpha' (e^{-h} - 1) D for every process. */
#include <math.h>
#include <string.h>

#include "algorithms.h"

void sample_dpmpp(SamplerRun *r, const double *taus) {
  const int steps = r->o->steps;
  const bool third = r->o->kind == SAMPLER_DPMPP_3M;
  const double eta = r->o->eta;
  float *y = r->x, *D = r->work, *D1 = r->work + r->n, *D2 = r->work + 2 * r->n, *tmp = r->work + 3 * r->n;
  double h1 = 0.0, h2 = 0.0; /* the previous two steps' h (0: none yet) */
  sigma_space_enter(r, taus[0]);
  for (int i = 0; i < steps; i++) {
    sigma_space_denoise(r, y, taus[i], D, tmp);
    if (i + 1 == steps) {
      memcpy(y, D, r->n * sizeof(float));
      break;
    }
    const double s = sigma_space_sigma(r->d, taus[i]), sn = sigma_space_sigma(r->d, taus[i + 1]);
    const double h = log(s / sn), he = (1.0 + eta) * h;
    const float cy = (float)(sn / s * exp(-eta * h)), cd = (float)(-expm1(-he));
    if (h1 == 0.0) {
      for (size_t j = 0; j < r->n; j++) y[j] = cy * y[j] + cd * D[j];
    } else if (!third) {
      const float c1 = (float)(-expm1(-he) * 0.5 * h / h1);
      for (size_t j = 0; j < r->n; j++) y[j] = cy * y[j] + cd * D[j] + c1 * (D[j] - D1[j]);
    } else {
      const double phi2 = expm1(-he) / he + 1.0, phi3 = phi2 / he - 0.5;
      if (h2 == 0.0) {
        const float c1 = (float)(phi2 * h / h1);
        for (size_t j = 0; j < r->n; j++) y[j] = cy * y[j] + cd * D[j] + c1 * (D[j] - D1[j]);
      } else {
        const double r0 = h1 / h, r1 = h2 / h;
        const float a0 = (float)(1.0 / r0), a1 = (float)(1.0 / r1), w = (float)(r0 / (r0 + r1)),
                    inv = (float)(1.0 / (r0 + r1)), p2 = (float)phi2, p3 = (float)phi3;
        for (size_t j = 0; j < r->n; j++) {
          const float d10 = (D[j] - D1[j]) * a0, d11 = (D1[j] - D2[j]) * a1;
          const float d1 = d10 + (d10 - d11) * w, d2 = (d10 - d11) * inv;
          y[j] = cy * y[j] + cd * D[j] + p2 * d1 - p3 * d2;
        }
      }
    }
    sampler_add_noise(r, tmp, sn * sqrt(-expm1(-2.0 * eta * h)));
    float *oldest = D2;
    D2 = D1, D1 = D, D = oldest; /* rotate the history: D_{i-1} <- D_i */
    h2 = h1, h1 = h;
  }
}
