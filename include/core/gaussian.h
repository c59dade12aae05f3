/* gaussian.h - the Gaussian terms of the DDPM variational bound, as improved-diffusion's losses.py
 * writes them (Nichol & Dhariwal 2021): the KL between two Gaussians, the tanh approximation of the
 * standard normal CDF and the discretised Gaussian log-likelihood of the decoder over 255 bins of
 * [-1, 1], each with its partial derivatives (the learned-variance loss differentiates them).
 *
 * One definition for the CPU kernels (ops/loss.c), the CUDA kernels (src/backend/cuda.cu), which
 * cannot call host functions, and the bound of eval/nll.c. All in double; the derivative outputs
 * may be NULL.
 */
#ifndef DIFFUSE_CORE_GAUSSIAN_H
#define DIFFUSE_CORE_GAUSSIAN_H

#include <math.h>
#include <stdbool.h>

#ifdef __CUDACC__
#define GAUSSIAN_FN static inline __host__ __device__
#else
#define GAUSSIAN_FN static inline

#endif

/* KL(N(m1, e^lv1) || N(m2, e^lv2)) in nats, written in diff = m1 - m2; partials in diff and lv2. */
GAUSSIAN_FN double gaussian_kl(double diff, double lv1, double lv2, double *d_diff, double *d_lv2) {
  const double ratio = exp(lv1 - lv2), quad = diff * diff * exp(-lv2);
  if (d_diff) *d_diff = diff * exp(-lv2);
  if (d_lv2) *d_lv2 = 0.5 * (1.0 - ratio - quad);
  return 0.5 * (-1.0 + lv2 - lv1 + ratio + quad);
}

/* 0.5 (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3))) and its derivative in u. */
GAUSSIAN_FN double gaussian_approx_cdf(double u, double *d_u) {
  const double k = 0.79788456080286535588; /* sqrt(2 / pi) */
  const double th = tanh(k * (u + 0.044715 * u * u * u));
  if (d_u) *d_u = 0.5 * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * u * u);
  return 0.5 * (1.0 + th);
}

/* log of the mass of x's bin under N(mean, e^(2 log_scale)), with c = x - mean: the bins have width
 * 2/255 about x, the first (x < -0.999) and last (x > 0.999) open to -inf and +inf, and the mass is
 * floored at 1e-12 (where the floor applies, both partials are 0). Partials in c and log_scale. */
GAUSSIAN_FN double gaussian_discretized_log_likelihood(double x, double c, double log_scale, double *d_c,
                                                       double *d_log_scale) {
  const double inv = exp(-log_scale), u_plus = inv * (c + 1.0 / 255.0), u_minus = inv * (c - 1.0 / 255.0);
  double pdf_plus, pdf_minus;
  const double cdf_plus = gaussian_approx_cdf(u_plus, &pdf_plus), cdf_minus = gaussian_approx_cdf(u_minus, &pdf_minus);
  double mass, dm_plus = pdf_plus, dm_minus = -pdf_minus; /* d mass / d u_plus, d u_minus */
  if (x < -0.999) mass = cdf_plus, dm_minus = 0.0;
  else if (x > 0.999) mass = 1.0 - cdf_minus, dm_plus = 0.0;
  else mass = cdf_plus - cdf_minus;
  if (!(mass > 1e-12)) {
    if (d_c) *d_c = 0.0;
    if (d_log_scale) *d_log_scale = 0.0;
    return log(1e-12);
  }
  /* d u / d c = inv, d u / d log_scale = -u */
  if (d_c) *d_c = (dm_plus + dm_minus) * inv / mass;
  if (d_log_scale) *d_log_scale = -(dm_plus * u_plus + dm_minus * u_minus) / mass;
  return log(mass);
}

/* One dimension's term of the bound in nats, with the model's log variance lv2: the decoder's
 * -log p(x0 | x_1) (diff = x0 - model mean; lv1 unused) or KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t))
 * (diff = posterior mean - model mean, lv1 the posterior's log variance). Partials in diff and lv2. */
GAUSSIAN_FN double gaussian_vlb_term(bool decoder, double x0, double diff, double lv1, double lv2, double *d_diff,
                                     double *d_lv2) {
  if (!decoder) return gaussian_kl(diff, lv1, lv2, d_diff, d_lv2);
  double dc, dls;
  const double ll = gaussian_discretized_log_likelihood(x0, diff, 0.5 * lv2, &dc, &dls);
  if (d_diff) *d_diff = -dc;
  if (d_lv2) *d_lv2 = -0.5 * dls;
  return -ll;
}

/* The per-sample coefficients of the learned-variance bound kernels (backend op vlb_forward), with
 * F the network's mean output, v its variance output and eps_hat = c_x x_t + c_f F:
 *   diff = C0 x0 + DX x_t - MF F (the posterior mean minus the model's; decoder: x0 minus the model's),
 *   lv2 = MIN_LOG + (1 + v) / 2 (MAX_LOG - MIN_LOG), the true posterior's log variance LV1, DECODER
 *   1 for t = 0, and WEIGHT the sample's weight in the loss. */
enum { VLB_C0, VLB_DX, VLB_MF, VLB_LV1, VLB_MIN_LOG, VLB_MAX_LOG, VLB_DECODER, VLB_WEIGHT, VLB_COEFS };

/* One element's term (nats) of a sample with coefficients c, and its partials in F and v (may be NULL). */
GAUSSIAN_FN double gaussian_vlb_element(const float *c, float F, float v, float xt, float x0, double *dF, double *dv) {
  const double lv2 = c[VLB_MIN_LOG] + 0.5 * (1.0 + (double)v) * (c[VLB_MAX_LOG] - c[VLB_MIN_LOG]);
  const double diff = (double)c[VLB_C0] * x0 + (double)c[VLB_DX] * xt - (double)c[VLB_MF] * F;
  double d_diff, d_lv2;
  const double term = gaussian_vlb_term(c[VLB_DECODER] != 0.0f, x0, diff, c[VLB_LV1], lv2, &d_diff, &d_lv2);
  if (dF) *dF = -d_diff * c[VLB_MF];
  if (dv) *dv = d_lv2 * 0.5 * (c[VLB_MAX_LOG] - c[VLB_MIN_LOG]);
  return term;
}

#endif
