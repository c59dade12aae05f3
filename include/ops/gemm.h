/* gemm.h - the one place that calls BLAS (products, the kernel choice, OpenBLAS's thread count).
 *
 * Row-major C = alpha * op(A) * op(B) + beta * C with op(A) of shape (M, K) and op(B) (K, N).
 * On every CPU with AVX-512 our own AVX-512 kernel (gemm_avx512.c) runs every product, OpenBLAS on the
 * others (AVX2 and older). The rule is measured: on an AMD EPYC whose environment pins OpenBLAS to
 * Haswell, the CIFAR-10 U-Net sampling forward went 454-472 -> 324-340 ms, a training step 1423-1617 ->
 * 1164-1208 ms; on an Intel Xeon (Sapphire Rapids family, AVX-512 + AMX, OPENBLAS_CORETYPE unset, so
 * OpenBLAS runs its own AVX-512 kernels, SkylakeX or Cooperlake) the same forward at batch 8 takes
 * 323 ms with ours against 355 ms with OpenBLAS's, a training step 998 against 1054 ms, and the quickstart model is even (56.4 vs
 * 55.4 ms sampling, 135 vs 138 ms training at batch 16; 2 threads, diffuse bench, 2026-12-07). Ours also
 * computes each element of C in the same order whatever N, the thread count or the caller's batching,
 * which OpenBLAS's AVX-512 kernels do not: with them, FID statistics of 2 MPI ranks (1 thread each)
 * differed from those of 1 process with 2 threads. A calibration by timing at start-up was not chosen
 * for the same reason: a kernel picked by a stopwatch makes the results of a run depend on the
 * machine's load, and a resumed run would no longer be bit-identical. DIFFUSE_NO_AVX512=1 forces
 * OpenBLAS.
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

/* The kernels gemm runs: "diffuse AVX-512 (OpenBLAS Haswell)" for our own, else "OpenBLAS " and its
 family ("Haswell", "Zen", ...: its CPU detection unless OPENBLAS_CORETYPE is set). */
const char *gemm_kernel_name(void);

#endif
