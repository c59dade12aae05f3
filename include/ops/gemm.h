/* gemm.h - the one place that calls BLAS.
 *
 * Row-major C = alpha * op(A) * op(B) + beta * C with op(A) of shape (M, K) and op(B) (K, N).
 * OpenBLAS (OpenMP build) threads each call over the OpenMP threads; called inside an OpenMP
 * parallel region it runs on the calling thread alone (conv2d's image threads rely on this).
 */
#ifndef DIFFUSE_OPS_GEMM_H
#define DIFFUSE_OPS_GEMM_H

#include <stdbool.h>

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* The kernel family OpenBLAS runs ("Haswell", "SkylakeX", "Cooperlake", ...): its own CPU detection
 * unless the environment sets OPENBLAS_CORETYPE. */
const char *gemm_kernel_name(void);

#endif
