/* optim.c - the fused AdamW + EMA step and the gradient reductions; see optim.h. */
#include "ops/optim.h"

#include <math.h>

void adamw_ema_step(float *p, const float *g, float *m, float *v, float *ema, size_t n, double lr, double beta1,
                    double beta2, double eps, double weight_decay, long step, float grad_scale, double ema_decay) {
  const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
  const float decay = (float)(1.0 - lr * weight_decay);
  const float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps;
  const float one_minus_b1 = (float)(1.0 - beta1), one_minus_b2 = (float)(1.0 - beta2);
  const float d = (float)ema_decay, one_minus_d = (float)(1.0 - ema_decay);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i] * grad_scale; /* exact when grad_scale is 1 */
    p[i] *= decay;
    m[i] = b1 * m[i] + one_minus_b1 * gi;
    v[i] = b2 * v[i] + one_minus_b2 * gi * gi;
    p[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + e);
    if (ema) ema[i] = d * ema[i] + one_minus_d * p[i];
  }
}

double sum_squares(const float *x, size_t n) {
  double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

size_t find_nonfinite(const float *x, size_t n) {
  size_t first = n;
#pragma omp parallel for reduction(min : first) schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]) && i < first) first = i;
  return first;
}
