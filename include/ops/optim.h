/* optim.h - the optimizer kernels on flat parameter buffers: the fused gradient scaling (clipping)
 * + AdamW + EMA step, and the reductions the trainer checks gradients with.
 *
 * AdamW (Loshchilov & Hutter 2019) in the order torch.optim.AdamW (single-tensor path) applies it,
 * with g' = grad_scale g (torch.nn.utils.clip_grad_norm_ scales by max_norm / (norm + 1e-6) when
 * that is below 1):
 *   p *= 1 - lr wd;  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;
 *   p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps);
 * then the parameter EMA, ema = d ema + (1 - d) p (skipped when ema is NULL). t = step, from 1.
 */
#ifndef DIFFUSE_OPS_OPTIM_H
#define DIFFUSE_OPS_OPTIM_H

#include <stddef.h>

void adamw_ema_step(float *p, const float *g, float *m, float *v, float *ema /* or NULL */, size_t n, double lr,
                    double beta1, double beta2, double eps, double weight_decay, long step, float grad_scale,
                    double ema_decay);

/* sum of x^2, accumulated in double. */
double sum_squares(const float *x, size_t n);
/* The index of the first NaN or infinity in x, or n. */
size_t find_nonfinite(const float *x, size_t n);

#endif
