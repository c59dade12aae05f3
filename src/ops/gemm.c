/* gemm.c - row-major sgemm: our AVX-512 kernel or OpenBLAS's CBLAS interface. */
#include "ops/gemm.h"

#include <cblas.h>
#include <stdio.h>

/* Decided on the first call (atomics: image threads may make it at the same time). */
static bool use_own_kernel(void) {
  static int state = -1;
  int s = __atomic_load_n(&state, __ATOMIC_RELAXED);
  if (s < 0) {
    s = gemm_avx512_available();
    __atomic_store_n(&state, s, __ATOMIC_RELAXED);
  }
  return s == 1;
}

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
  if (M == 0 || N == 0) return;
  if (use_own_kernel()) gemm_avx512(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *gemm_kernel_name(void) {
  static char name[64];
  if (!name[0])
    snprintf(name, sizeof name, use_own_kernel() ? "diffuse AVX-512 (OpenBLAS %s)" : "OpenBLAS %s",
             openblas_get_corename());
  return name;
}

void gemm_set_threads(int threads) { openblas_set_num_threads(threads); }
