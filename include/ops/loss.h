/* loss.h - mean-squared error, per-sample weighted MSE, the learned-variance bound and the classifier's
 * cross-entropy (scalar outputs). */
#ifndef DIFFUSE_OPS_LOSS_H
#define DIFFUSE_OPS_LOSS_H

#include <stdbool.h>
#include <stddef.h>

/* mean((a - b)^2) over n elements, accumulated in double. */
float mse_forward(const float *a, const float *b, size_t n);
/* da += dy * 2 (a - b) / n, db -= the same; either may be NULL. */
void mse_backward(float *da, float *db, float dy, const float *a, const float *b, size_t n);

/* (1/B) sum_b w[b] * mean_i (a[b,i] - b[b,i])^2, M elements per sample. */
float weighted_mse_forward(const float *a, const float *b, const float *w, int B, size_t M);
void weighted_mse_backward(float *da, float *db, float dy, const float *a, const float *b, const float *w, int B,
                           size_t M);

/* The learned-variance bound (Nichol & Dhariwal 2021) of B samples in bits/dim: net (B, 2C, HW) holds
 * the mean output F (channels 0..C-1) and the variance output v (C..2C-1); xt, x0 (B, C, HW); coef
 * (B, VLB_COEFS) as core/gaussian.h. terms[b] = mean over the C HW dimensions of gaussian_vlb_term / ln 2;
 * returns (1/B) sum_b coef[b, VLB_WEIGHT] terms[b]. */
float vlb_forward(float *terms, const float *net, const float *xt, const float *x0, const float *coef, int B, int C,
                  int HW);
/* dnet += dy d loss / d net: the variance channels always, the mean channels only when grad_mean (the
 * hybrid loss stops the bound's gradient to the mean). */
void vlb_backward(float *dnet, float dy, const float *net, const float *xt, const float *x0, const float *coef, int B,
                  int C, int HW, bool grad_mean);

/* The classifier's loss: (1/B) sum_b -log softmax(logits[b])[labels[b]], logits (B, K), in double. */
float cross_entropy_forward(const float *logits, const int *labels, int B, int K);
/* dlogits += dy (softmax(logits[b]) - onehot(labels[b])) / B. */
void cross_entropy_backward(float *dlogits, float dy, const float *logits, const int *labels, int B, int K);

#endif
