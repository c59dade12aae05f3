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

/* C (M, N) = A (M, K) x op(B) + beta C, row-major, op(B) = B (K, N) or B^T with B (N, K), for the
 * convolutions' products (Winograd: M, K <= a few hundred, N = 256 tiles; im2col: N <= 1024 columns
 * per image chunk; A untransposed in both). On a CPU with AVX-512 where OpenBLAS
 * runs AVX2 kernels (OPENBLAS_CORETYPE=Haswell, or a CPU it does not know) our own AVX-512 kernel
 * (gemm_avx512.c): CIFAR-10 U-Net sampling forward 454-472 -> 324-340 ms, training step
 * 1423-1617 -> 1164-1208 ms on this VM. Where OpenBLAS runs its own AVX-512 kernels they are used
 * (as fast, faster on small matrices). DIFFUSE_NO_AVX512=1 forces OpenBLAS. */
void gemm_packed(bool trans_b, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                 float *C, int ldc);
bool gemm_avx512_available(void);
void gemm_avx512(bool trans_b, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                 float *C, int ldc);

/* The kernel family OpenBLAS runs ("Haswell", "SkylakeX", "Cooperlake", ...): its own CPU detection
 * unless the environment sets OPENBLAS_CORETYPE. */
const char *gemm_kernel_name(void);

#endif
