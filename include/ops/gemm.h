/* gemm.h - the one place that calls BLAS (products, the kernel choice, OpenBLAS's thread count).
 *
 * Row-major C = alpha * op(A) * op(B) + beta * C with op(A) of shape (M, K) and op(B) (K, N).
 * On a CPU with AVX-512 where OpenBLAS runs AVX2 kernels (OPENBLAS_CORETYPE=Haswell, or a CPU it does
 * not know) our own AVX-512 kernel (gemm_avx512.c) runs every product: CIFAR-10 U-Net sampling
 * forward 454-472 -> 324-340 ms, training step 1423-1617 -> 1164-1208 ms on the development VM when
 * it took the convolutions; attention and linear layers followed. Where OpenBLAS runs its own
 * AVX-512 kernels they are used. DIFFUSE_NO_AVX512=1 forces OpenBLAS.
 * Both thread each call over the OpenMP threads; called inside an OpenMP parallel region they run on
 * the calling thread alone (conv2d's image threads rely on this).
 */
#ifndef DIFFUSE_OPS_GEMM_H
#define DIFFUSE_OPS_GEMM_H

#include <stdbool.h>

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

bool gemm_avx512_available(void);
/* OpenBLAS's thread count (diffuse's own kernel threads over OpenMP, set with omp_set_num_threads). */
void gemm_set_threads(int threads);
void gemm_avx512(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);

/* The kernels gemm runs: "diffuse AVX-512 (OpenBLAS Haswell)" for our own, else OpenBLAS's family
 ("Haswell", "SkylakeX", "Cooperlake", ...: its CPU detection unless OPENBLAS_CORETYPE is set). */
const char *gemm_kernel_name(void);

#endif
