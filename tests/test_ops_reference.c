/* test_ops_reference.c - the CPU kernels' building blocks that no op case isolates: the
 * vectorised exp, the GEMM kernels (diffuse's AVX-512 one and OpenBLAS) against a double product,
 * and the dropout mask's independence of how a batch is split. The op cases themselves (every op
 * forward and backward against PyTorch) run on every backend in test_backend_ops.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops/simd_exp.h"
#include "core/rng.h"
#include "ops/elementwise.h"
#include "ops/gemm.h"
#include "test_util.h"

/* The vectorisable exp behind SiLU and softmax, against the double-precision exp. */
static void test_simd_exp(void) {
  double worst = 0.0, worst_x = 0.0;
  for (int i = 0; i <= 1753000; i++) {
    const float x = -87.0f + 1e-4f * (float)i;
    const double rel = fabs(simd_expf(x) / exp((double)x) - 1.0);
    if (rel > worst) worst = rel, worst_x = x;
  }
  EXPECT(worst < 2e-7, "simd_expf relative error %.3g at x = %g", worst, worst_x);
  EXPECT(simd_expf(-1000.0f) >= 0.0f && simd_expf(-1000.0f) < 1e-37f && isfinite(simd_expf(1000.0f)),
         "simd_expf out of range: %g %g", simd_expf(-1000.0f), simd_expf(1000.0f));
  /* defined for every input (UBSan checks the NaN path has no undefined conversion or shift) */
  EXPECT(isnan(simd_expf(NAN)) && isnan(simd_silu(NAN)), "simd_expf(NaN) = %g, silu(NaN) = %g", simd_expf(NAN),
         simd_silu(NAN));
  EXPECT(simd_expf(-INFINITY) < 1e-37f && isfinite(simd_expf(INFINITY)), "simd_expf(+-inf): %g %g",
         simd_expf(-INFINITY), simd_expf(INFINITY));
  printf("ops_reference: simd_expf max relative error %.3g\n", worst);
}

/* Dropout: keep rate, scaling, and the same mask when the elements are split between calls at an
 * offset that is not a multiple of the four elements one Philox call serves. */
static void test_dropout_mask(void) {
  enum { N = 20001, SPLIT = 7 };
  const float p = 0.3f;
  static float x[N], y[N], y_split[N];
  static uint8_t mask[N], mask_split[N];
  for (int i = 0; i < N; i++) x[i] = 1.0f + (float)(i % 13);
  dropout_forward(y, mask, x, N, p, 11, 3, 5);
  dropout_forward(y_split, mask_split, x, SPLIT, p, 11, 3, 5);
  dropout_forward(y_split + SPLIT, mask_split + SPLIT, x + SPLIT, N - SPLIT, p, 11, 3, 5 + SPLIT);
  int kept = 0, bad = 0, uniform_quads = 0; /* quads: the four elements of one Philox call */
  for (int i = 0; i < N; i++) {
    kept += mask[i];
    bad += y[i] != (mask[i] ? x[i] * (1.0f / (1.0f - p)) : 0.0f);
  }
  for (int i = 3; i + 4 <= N; i += 4) uniform_quads += mask[i] == mask[i + 1] && mask[i] == mask[i + 2] && mask[i] == mask[i + 3];
  const double rate = (double)kept / N, se = sqrt(0.7 * 0.3 / N);
  EXPECT(fabs(rate - 0.7) < 4 * se, "dropout keep rate %.4f, expected 0.7 +- %.4f", rate, 4 * se);
  EXPECT(bad == 0, "%d dropout outputs neither dropped nor scaled by 1/(1-p)", bad);
  EXPECT(uniform_quads < 0.4 * N / 4, "%d of %d quads share one mask value (expected 25%%)", uniform_quads, N / 4);
  EXPECT(!memcmp(mask, mask_split, N) && !memcmp(y, y_split, sizeof y), "dropout mask depends on the split");
}

typedef void (*GemmFn)(bool, bool, int, int, int, float, const float *, int, const float *, int, float, float *,
                       int);

/* A GEMM against a double-precision product, on shapes with edges in every dimension, A and B plain
 * and transposed, alpha 1 and 0.5, beta 0 and 1. */
static void check_gemm(const char *name, GemmFn fn) {
  static const int shapes[][3] = {{8, 32, 16}, {13, 45, 7}, {1, 1, 1}, {32, 256, 32}, {70, 33, 129}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int form = 0; form < 8; form++) {
      const bool trans_a = form & 1, trans_b = form & 2;
      const float alpha = form & 4 ? 0.5f : 1.0f, beta = (float)((form + (int)s) % 2);
      const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      const int lda = (trans_a ? M : K) + 3, ldb = (trans_b ? K : N) + 5, ldc = N + 2;
      const int rows_a = trans_a ? K : M, rows_b = trans_b ? N : K;
      float *A = malloc(sizeof(float) * rows_a * lda), *B = malloc(sizeof(float) * rows_b * ldb);
      float *C = malloc(sizeof(float) * M * ldc), *want = malloc(sizeof(float) * M * ldc);
      rng_fill_normal(A, (size_t)rows_a * lda, 5, s, 0);
      rng_fill_normal(B, (size_t)rows_b * ldb, 6, s, 0);
      rng_fill_normal(C, (size_t)M * ldc, 7, s, 0);
      memcpy(want, C, sizeof(float) * M * ldc);
      fn(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      double worst = 0.0;
      for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
          double ref = want[(size_t)i * ldc + j]; /* columns past N must stay untouched */
          if (j < N) {
            double dot = 0.0;
            for (int k = 0; k < K; k++)
              dot += (double)(trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            ref = alpha * dot + beta * ref;
          }
          worst = fmax(worst, fabs(C[(size_t)i * ldc + j] - ref) / (1.0 + fabs(ref)));
        }
      EXPECT(worst < 1e-5, "%s %dx%dx%d trans_a %d trans_b %d alpha %g beta %g: error %.3g", name, M, N, K, trans_a,
             trans_b, alpha, beta, worst);
      free(A), free(B), free(C), free(want);
    }
}

/* gemm (whichever kernel it picks here), and our AVX-512 kernel itself wherever the CPU has AVX-512. */
static void test_gemm(void) {
  check_gemm("gemm", gemm);
  if (gemm_avx512_available()) check_gemm("gemm_avx512", gemm_avx512);
  printf("ops_reference: gemm%s checked\n", gemm_avx512_available() ? " and the AVX-512 kernel" : "");
}

int main(void) {
  test_simd_exp();
  test_gemm();
  test_dropout_mask();
  return test_report("ops_reference");
}
