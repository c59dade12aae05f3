/* loss.c - MSE losses; the weighted form carries the per-noise-level weights of score matching
 * (lambda(sigma) = sigma^2, Song & Ermon 2019) and of continuous-time DSM. */
#include "ops/loss.h"

#include <math.h>

#include "core/gaussian.h"

float weighted_mse_forward(const float *a, const float *b, const float *w, int B, size_t M) {
  double total = 0.0;
  for (int s = 0; s < B; s++) {
    double acc = 0.0;
    const float *as = a + (size_t)s * M, *bs = b + (size_t)s * M;
    for (size_t i = 0; i < M; i++) {
      const double d = (double)as[i] - bs[i];
      acc += d * d;
    }
    total += (w ? w[s] : 1.0) * acc / (double)M;
  }
  return (float)(total / B);
}

void weighted_mse_backward(float *da, float *db, float dy, const float *a, const float *b, const float *w, int B,
                           size_t M) {
  for (int s = 0; s < B; s++) {
    const float coef = dy * 2.0f * (w ? w[s] : 1.0f) / ((float)B * (float)M);
    const size_t off = (size_t)s * M;
#pragma omp parallel for schedule(static) if (M > 16384)
    for (size_t i = 0; i < M; i++) {
      const float g = coef * (a[off + i] - b[off + i]);
      if (da) da[off + i] += g;
      if (db) db[off + i] -= g;
    }
  }
}

float mse_forward(const float *a, const float *b, size_t n) { return weighted_mse_forward(a, b, NULL, 1, n); }

void mse_backward(float *da, float *db, float dy, const float *a, const float *b, size_t n) {
  weighted_mse_backward(da, db, dy, a, b, NULL, 1, n);
}


float vlb_forward(float *terms, const float *net, const float *xt, const float *x0, const float *coef, int B, int C,
                  int HW) {
  const size_t M = (size_t)C * HW;
  double total = 0.0;
  for (int b = 0; b < B; b++) {
    const float *c = coef + (size_t)b * VLB_COEFS, *F = net + (size_t)b * 2 * M, *v = F + M;
    const float *xb = xt + (size_t)b * M, *x0b = x0 + (size_t)b * M;
    double acc = 0.0; /* serial: the same bits for any thread count */
    for (size_t i = 0; i < M; i++) acc += gaussian_vlb_element(c, F[i], v[i], xb[i], x0b[i], NULL, NULL);
    terms[b] = (float)(acc / (double)M / M_LN2);
    total += c[VLB_WEIGHT] * (acc / (double)M / M_LN2);
  }
  return (float)(total / B);
}

void vlb_backward(float *dnet, float dy, const float *net, const float *xt, const float *x0, const float *coef, int B,
                  int C, int HW, bool grad_mean) {
  const size_t M = (size_t)C * HW;
  for (int b = 0; b < B; b++) {
    const float *c = coef + (size_t)b * VLB_COEFS, *F = net + (size_t)b * 2 * M, *v = F + M;
    const float *xb = xt + (size_t)b * M, *x0b = x0 + (size_t)b * M;
    float *dF = dnet + (size_t)b * 2 * M, *dv = dF + M;
    const double scale = (double)dy * c[VLB_WEIGHT] / ((double)B * (double)M * M_LN2);
#pragma omp parallel for schedule(static) if (M > 16384)
    for (size_t i = 0; i < M; i++) {
      double gF, gv;
      gaussian_vlb_element(c, F[i], v[i], xb[i], x0b[i], &gF, &gv);
      if (grad_mean) dF[i] += (float)(scale * gF);
      dv[i] += (float)(scale * gv);
    }
  }
}

/* log sum_k exp(l_k), shifted by the row's maximum. */
static double log_sum_exp(const float *l, int K) {
  float mx = l[0];
  for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
  double s = 0.0;
  for (int k = 0; k < K; k++) s += exp((double)l[k] - mx);
  return mx + log(s);
}

float cross_entropy_forward(const float *logits, const int *labels, int B, int K) {
  double total = 0.0;
  for (int b = 0; b < B; b++) total += log_sum_exp(logits + (size_t)b * K, K) - logits[(size_t)b * K + labels[b]];
  return (float)(total / B);
}

void cross_entropy_backward(float *dlogits, float dy, const float *logits, const int *labels, int B, int K) {
  for (int b = 0; b < B; b++) {
    const float *l = logits + (size_t)b * K;
    const double lse = log_sum_exp(l, K);
    for (int k = 0; k < K; k++)
      dlogits[(size_t)b * K + k] += (float)(dy * (exp((double)l[k] - lse) - (k == labels[b])) / B);
  }
}

