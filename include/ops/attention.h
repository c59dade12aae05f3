/* attention.h - single-head self-attention over the N = H*W positions of (B, C, H, W) tensors.
 *
 * S = Q^T K / sqrt(C) (N, N), P = softmax over keys, out = V P^T, all per image, channel-major,
 * which is exactly the DDPM / diffusers AttnBlock once q, k, v are projected.
 */
#ifndef DIFFUSE_OPS_ATTENTION_H
#define DIFFUSE_OPS_ATTENTION_H

#include <stddef.h>

void attention_forward(float *out,      // (B, C, N)
                       float *probs,    // (B, N, N)  saved for backward
                       const float *q,  // (B, C, N)
                       const float *k,  // (B, C, N)
                       const float *v,  // (B, C, N)
                       int B, int C, int N);

/* Floats of scratch memory attention_backward needs. */
size_t attention_backward_work_floats(int N);

/* Accumulates (+=) into dq, dk, dv; any may be NULL. */
void attention_backward(float *dq, float *dk, float *dv,  // (B, C, N) each
                        const float *dout,                // (B, C, N)
                        const float *probs,               // (B, N, N)
                        const float *q, const float *k, const float *v, int B, int C, int N, float *work);

#endif
