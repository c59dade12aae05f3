/* optim.c - AdamW, clipping and EMA on flat buffers.
 *
 * AdamW, in the order torch.optim.AdamW (single-tensor path) applies it:
 *   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 */
#include "train/optim.h"

#include <math.h>

void adamw_step(float *p, const float *g, float *m, float *v, size_t n, const AdamWConfig *cfg, long step) {
  const double bc1 = 1.0 - pow(cfg->beta1, (double)step), bc2 = 1.0 - pow(cfg->beta2, (double)step);
  const float step_size = (float)(cfg->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
  const float decay = (float)(1.0 - cfg->lr * cfg->weight_decay);
  const float b1 = (float)cfg->beta1, b2 = (float)cfg->beta2, eps = (float)cfg->eps;
  const float one_minus_b1 = (float)(1.0 - cfg->beta1), one_minus_b2 = (float)(1.0 - cfg->beta2);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i];
    p[i] *= decay;
    m[i] = b1 * m[i] + one_minus_b1 * gi;
    v[i] = b2 * v[i] + one_minus_b2 * gi * gi;
    p[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
  }
}

double grad_norm(const float *g, size_t n) {
  double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
  return sqrt(s);
}

double grad_clip(float *g, size_t n, double max_norm) {
  const double norm = grad_norm(g, n);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    const float c = (float)coef;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) g[i] *= c;
  }
  return norm;
}

void ema_update(float *ema, const float *p, size_t n, double decay) {
  const float d = (float)decay, one_minus = (float)(1.0 - decay);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) ema[i] = d * ema[i] + one_minus * p[i];
}
