/* attention.c - self-attention as three GEMMs per image plus a row softmax.
 *
 * Backward (per image, P = softmax(S), S = s * Q^T K with s = 1/sqrt(C)):
 *   dV = dO P,  dP = dO^T V,  dS = P o (dP - rowsum(P o dP)),  dQ = s K dS^T,  dK = s Q dS.
 */
#include "ops/attention.h"

#include <math.h>

#include "ops/activation.h"
#include "ops/gemm.h"

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int B, int C,
                       int N) {
  const float scale = 1.0f / sqrtf((float)C);
  for (int b = 0; b < B; b++) {
    const size_t off = (size_t)b * C * N;
    float *P = probs + (size_t)b * N * N;
    gemm(true, false, N, N, C, scale, q + off, N, k + off, N, 0.0f, P, N);
    softmax_forward(P, P, N, N);
    gemm(false, true, C, N, N, 1.0f, v + off, N, P, N, 0.0f, out + off, N);
  }
}

size_t attention_backward_work_floats(int N) { return (size_t)N * N; }

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                        const float *k, const float *v, int B, int C, int N, float *work) {
  const float scale = 1.0f / sqrtf((float)C);
  for (int b = 0; b < B; b++) {
    const size_t off = (size_t)b * C * N;
    const float *P = probs + (size_t)b * N * N;
    const float *dO = dout + off;
    if (dv) gemm(false, false, C, N, N, 1.0f, dO, N, P, N, 1.0f, dv + off, N);
    if (!dq && !dk) continue;
    float *dS = work;
    gemm(true, false, N, N, C, 1.0f, dO, N, v + off, N, 0.0f, dS, N); /* dP */
#pragma omp parallel for schedule(static) if ((size_t)N * N > 16384)
    for (int i = 0; i < N; i++) {
      const float *pr = P + (size_t)i * N;
      float *dr = dS + (size_t)i * N;
      float dot = 0.0f;
      for (int j = 0; j < N; j++) dot += pr[j] * dr[j];
      for (int j = 0; j < N; j++) dr[j] = scale * pr[j] * (dr[j] - dot);
    }
    if (dq) gemm(false, true, C, N, N, 1.0f, k + off, N, dS, N, 1.0f, dq + off, N);
    if (dk) gemm(false, false, C, N, N, 1.0f, q + off, N, dS, N, 1.0f, dk + off, N);
  }
}
