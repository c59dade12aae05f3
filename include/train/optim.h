/* optim.h - AdamW (Loshchilov & Hutter 2019), global gradient-norm clipping and parameter EMA,
 * each a single loop over flat buffers (see nn/params.h). Semantics match torch.optim.AdamW,
 * torch.nn.utils.clip_grad_norm_ and the usual EMA `ema = decay * ema + (1 - decay) * p`. */
#ifndef DIFFUSE_TRAIN_OPTIM_H
#define DIFFUSE_TRAIN_OPTIM_H

#include <stddef.h>

typedef struct {
  double lr, beta1, beta2, eps, weight_decay; /* double, as PyTorch's Python floats */
} AdamWConfig;

/* One AdamW step; `step` counts from 1 (bias correction uses it). Padding between parameters in
 * the flat buffers is zero and stays zero. */
void adamw_step(float *p, const float *g, float *m, float *v, size_t n, const AdamWConfig *cfg, long step);

/* Global L2 norm of g (accumulated in double). */
double grad_norm(const float *g, size_t n);
/* Scale g so its norm is at most max_norm (torch: coef = max_norm / (norm + 1e-6), applied if < 1).
 * Returns the norm before clipping. */
double grad_clip(float *g, size_t n, double max_norm);

void ema_update(float *ema, const float *p, size_t n, double decay);

#endif
