/* loss.h - mean-squared error and per-sample weighted MSE (scalar outputs). */
#ifndef DIFFUSE_OPS_LOSS_H
#define DIFFUSE_OPS_LOSS_H

#include <stddef.h>

/* mean((a - b)^2) over n elements, accumulated in double. */
float mse_forward(const float *a, const float *b, size_t n);
/* da += dy * 2 (a - b) / n, db -= the same; either may be NULL. */
void mse_backward(float *da, float *db, float dy, const float *a, const float *b, size_t n);

/* (1/B) sum_b w[b] * mean_i (a[b,i] - b[b,i])^2, M elements per sample. */
float weighted_mse_forward(const float *a, const float *b, const float *w, int B, size_t M);
void weighted_mse_backward(float *da, float *db, float dy, const float *a, const float *b, const float *w, int B,
                           size_t M);

#endif
