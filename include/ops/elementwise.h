/* elementwise.h - add, mul, scale, axpby, per-channel add, channel concat and slice, dropout, and the forward
 * process of diffusion (x_t and the regression target in one pass).
 * Backward kernels accumulate (+=) and accept NULL for gradients that are not needed. */
#ifndef DIFFUSE_OPS_ELEMENTWISE_H
#define DIFFUSE_OPS_ELEMENTWISE_H

#include <stddef.h>
#include <stdint.h>

void add_forward(float *y, const float *a, const float *b, size_t n);
void mul_forward(float *y, const float *a, const float *b, size_t n);
void mul_backward(float *da, float *db, const float *dy, const float *a, const float *b, size_t n);
void scale_forward(float *y, const float *x, float alpha, size_t n);
/* y = alpha x + beta (scalar shift). */
void scale_shift(float *y, const float *x, float alpha, float beta, size_t n);
/* y = a x + b z; y may alias x or z. */
void axpby(float *y, float a, const float *x, float b, const float *z, size_t n);
/* Per sample b of B (M elements each), coef (B, 4) = (alpha, sigma, tx, tn):
 * xt = alpha x0 + sigma noise, target = tx x0 + tn noise. */
void forward_mix(float *xt, float *target, const float *x0, const float *noise, const float *coef, int B, size_t M);
/* dx += alpha * dy; with alpha = 1 this is the backward of add (and of identity-like ops). */
void axpy_accumulate(float *dx, const float *dy, float alpha, size_t n);

/* y (B, C, HW) = x + v[b, c] broadcast over HW. */
void add_channel_forward(float *y, const float *x, const float *v /* (B, C) */, int BC, int HW);
void add_channel_backward(float *dv /* (B, C) */, const float *dy, int BC, int HW);

/* x[0..n) = 0, threaded for large n (a single thread's memset leaves the other cores idle). */
void zero_floats(float *x, size_t n);

/* y (B, Ca+Cb, HW) = [a (B, Ca, HW) ; b (B, Cb, HW)]. */
void concat_channels_forward(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW);
void concat_channels_backward(float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW);
/* y (B, n, HW) = channels c0 .. c0 + n - 1 of x (B, C, HW); the backward adds dy into those channels of dx. */
void channel_slice_forward(float *y, const float *x, int B, int C, int c0, int n, int HW);
void channel_slice_backward(float *dx, const float *dy, int B, int C, int c0, int n, int HW);
/* ADM's AttentionPool2d tokens: x (B, C, HW) -> y (B, C, 1 + HW), token 0 the spatial mean, plus the
 * positional embedding pos (C, 1 + HW). */
void pool_tokens_forward(float *y, const float *x, const float *pos, int B, int C, int HW);
void pool_tokens_backward(float *dx, float *dpos, const float *dy, int B, int C, int HW);
/* The first token: x (B, C, N) -> y (B, C). */
void first_token_forward(float *y, const float *x, int B, int C, int N);
void first_token_backward(float *dx, const float *dy, int B, int C, int N);

/* Inverted dropout: element i (global index j = offset + i) is kept when u >= p, with u built from
 * rng_unit of word j % 4 of rng_bits(seed, stream, j / 4): one Philox call per four
 * elements, and still the same mask however the batch is split. Kept elements are scaled by
 * 1/(1-p); mask (n bytes) records them for the backward pass. */
void dropout_forward(float *y, uint8_t *mask, const float *x, size_t n, float p, uint64_t seed, uint64_t stream,
                     uint64_t offset);
void dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p);

#endif
