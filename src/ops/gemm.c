/* gemm.c - row-major sgemm through OpenBLAS's CBLAS interface. */
#include "ops/gemm.h"

#include <cblas.h>

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *gemm_kernel_name(void) { return openblas_get_corename(); }
