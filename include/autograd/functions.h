/* functions.h - differentiable ops on Graph tensors (forward now, backward recorded on the tape).
 *
 * Shapes are checked once here, and that every input lives on the graph's backend; the backend's
 * kernels assume both. Ops marked "forward only" abort if
 * asked to record a gradient (they serve inference: Inception, embeddings of timesteps).
 */
#ifndef DIFFUSE_AUTOGRAD_FUNCTIONS_H
#define DIFFUSE_AUTOGRAD_FUNCTIONS_H

#include "autograd/graph.h"

/* x (B, Cin, H, W), w (Cout, Cin, kh, kw), b (Cout) or NULL; explicit per-side zero padding. */
Tensor *ag_conv2d(Graph *g, Tensor *x, Tensor *w, Tensor *b, int stride_h, int stride_w, int pad_top,
                  int pad_bottom, int pad_left, int pad_right);
/* x (N, in), w (out, in), b (out) or NULL. */
Tensor *ag_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b);
/* x (B, C, H, W), gamma/beta (C). */
Tensor *ag_group_norm(Graph *g, Tensor *x, Tensor *gamma, Tensor *beta, int groups, float eps);
/* silu(group_norm(x)) in one pass (the U-Net's norm-activation pair). */
Tensor *ag_group_norm_silu(Graph *g, Tensor *x, Tensor *gamma, Tensor *beta, int groups, float eps);
/* q, k, v (B, C, H, W) -> (B, C, H, W): single-head attention over the H*W positions. */
Tensor *ag_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v);
/* Forward only. t (B) -> (B, dim). */
Tensor *ag_timestep_embedding(Graph *g, Tensor *t, int dim);
/* table (num, dim), labels (B) each in [0, num) -> (B, dim). labels are copied. */
Tensor *ag_embedding_lookup(Graph *g, Tensor *table, const int *labels, int B);

Tensor *ag_silu(Graph *g, Tensor *x);
/* Softmax over the last dimension. */
Tensor *ag_softmax(Graph *g, Tensor *x);
Tensor *ag_add(Graph *g, Tensor *a, Tensor *b);
Tensor *ag_mul(Graph *g, Tensor *a, Tensor *b);
Tensor *ag_scale(Graph *g, Tensor *x, float alpha);
/* x (B, C, H, W) + v (B, C) broadcast over H, W. */
Tensor *ag_add_channel(Graph *g, Tensor *x, Tensor *v);
/* Inverted dropout with probability p; identity when !g->training or p == 0. Each call draws from
 * its own stream (g->dropout_seed, call index) at element offset g->first_sample * (numel / B), so
 * results are independent of threads and of how a batch is split into micro-batches. */
Tensor *ag_dropout(Graph *g, Tensor *x, float p);
/* Same data, new shape (numel must match); gradient flows through. */
Tensor *ag_reshape(Graph *g, Tensor *x, int ndim, const int *shape);

/* x (B, C, H, W) -> channels c0 .. c0 + n - 1, (B, n, H, W). */
Tensor *ag_channel_slice(Graph *g, Tensor *x, int c0, int n);
/* a (B, Ca, H, W), b (B, Cb, H, W) -> (B, Ca+Cb, H, W). */
Tensor *ag_concat_channels(Graph *g, Tensor *a, Tensor *b);
Tensor *ag_upsample_nearest2x(Graph *g, Tensor *x);
Tensor *ag_avg_pool2d(Graph *g, Tensor *x, int k, int stride, int pad, bool count_include_pad);
Tensor *ag_max_pool2d(Graph *g, Tensor *x, int k, int stride, int pad);
/* (B, C, H, W) -> (B, C, 1, 1). */
Tensor *ag_global_avg_pool(Graph *g, Tensor *x);
/* ADM's AttentionPool2d tokens: x (B, C, H, W) -> (B, C, 1, 1 + HW), token 0 the spatial mean, plus the
 * positional embedding pos (C, 1 + HW). */
Tensor *ag_pool_tokens(Graph *g, Tensor *x, Tensor *pos);
/* x (B, C, 1, N) -> its first token (B, C). */
Tensor *ag_first_token(Graph *g, Tensor *x);
/* Forward only. Bilinear, align_corners=False. */
Tensor *ag_bilinear_resize(Graph *g, Tensor *x, int out_h, int out_w);

/* Scalar losses (numel 1, in backend memory: download to read). w (B) holds per-sample weights and
 * gets no gradient. */
Tensor *ag_mse(Graph *g, Tensor *pred, Tensor *target);
Tensor *ag_weighted_mse(Graph *g, Tensor *pred, Tensor *target, Tensor *w);
/* The classifier's loss: (1/B) sum_b -log softmax(logits[b])[labels[b]]; logits (B, K), labels (host, copied). */
Tensor *ag_cross_entropy(Graph *g, Tensor *logits, const int *labels);
/* The learned-variance bound (Nichol & Dhariwal 2021) as a loss: (1/B) sum_b w_b L_b, with L_b the
 * bound's term of sample b in bits/dim and w_b its weight (backend op vlb_forward; coef (B, VLB_COEFS)
 * of core/gaussian.h). net (B, 2C, H, W): the mean output then the variance output; xt, x0
 * (B, C, H, W) and coef get no gradient, and the mean channels get one only when grad_mean. *terms (may
 * be NULL) receives the per-sample L_b (B), for the importance sampler of t. */
Tensor *ag_vlb_loss(Graph *g, Tensor *net, Tensor *xt, Tensor *x0, Tensor *coef, bool grad_mean, Tensor **terms);

#endif
