/* gemm_avx512.c - an AVX-512 sgemm kernel; see gemm in gemm.h.
 *
 * For each block of NR = 32 columns, B's K x 32 panel is packed contiguously (zero-padded past N)
 * and every MR = 8 rows of A meet it in an 8 x 32 register tile (16 zmm accumulators): per k, two
 * loads of the panel, eight broadcasts of op(A) and sixteen FMAs. Column blocks are spread over the
 * OpenMP threads unless the caller already runs in a parallel region (conv2d's image threads).
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_in_parallel(void) { return 0; }
#endif

#include "core/error.h"
#include "ops/gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define MR 8
#define NR 32

/* r[i] := column i of the 16 x 16 block whose rows are r[0..16) */
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; g++) { /* u[4g + c]: column 4l + c of rows 4g..4g+3, in 128-bit lane l */
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    const __m512 xa = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), xb = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 ya = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    const __m512 yb = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_f32x4(xa, ya, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(xa, ya, 0xDD);
    r[8 + c] = _mm512_shuffle_f32x4(xb, yb, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(xb, yb, 0xDD);
  }
}

/* panel (K, NR) = columns [n0, n0 + nr) of op(B), zero beyond nr. With trans_b the columns are rows
 * of B, moved in 16 x 16 transposed blocks. */
__attribute__((target("avx512f"))) static void pack_panel(float *panel, bool trans_b, const float *B, int ldb,
                                                           int K, int n0, int nr) {
  if (!trans_b) {
    for (int k = 0; k < K; k++) {
      const float *src = B + (size_t)k * ldb + n0;
      float *dst = panel + (size_t)k * NR;
      if (nr == NR) {
        memcpy(dst, src, sizeof(float) * NR);
        continue;
      }
      memcpy(dst, src, sizeof(float) * nr);
      for (int j = nr; j < NR; j++) dst[j] = 0.0f;
    }
    return;
  }
  for (int j0 = 0; j0 < NR; j0 += 16)
    for (int k0 = 0; k0 < K; k0 += 16) {
      const int kn = K - k0 < 16 ? K - k0 : 16;
      const __mmask16 mask = (__mmask16)((1u << kn) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; i++)
        r[i] = j0 + i < nr ? _mm512_maskz_loadu_ps(mask, B + (size_t)(n0 + j0 + i) * ldb + k0) : _mm512_setzero_ps();
      transpose16(r);
      for (int i = 0; i < kn; i++) _mm512_storeu_ps(panel + (size_t)(k0 + i) * NR + j0, r[i]);
    }
}

/* C rows [0, mr) x panel columns [0, nr) = alpha * op(A) panel + beta * C; element (i, k) of op(A)
 * at A[i * rs + k * cs] (rs = lda, cs = 1 untransposed; rs = 1, cs = lda transposed). Inlined with
 * constant strides for each form. */
__attribute__((target("avx512f"), always_inline)) static inline void tile_impl(int mr, int nr, int K,
                                                                                const float *A, size_t rs, size_t cs,
                                                                                const float *panel, float alpha,
                                                                                float beta, float *C, int ldc) {
  __m512 acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const float *a[MR];
  for (int i = 0; i < MR; i++) a[i] = A + (size_t)(i < mr ? i : 0) * rs;
  for (int k = 0; k < K; k++) {
    const __m512 b0 = _mm512_loadu_ps(panel + (size_t)k * NR), b1 = _mm512_loadu_ps(panel + (size_t)k * NR + 16);
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(a[i][k * cs]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < mr; i++) {
    float *c = C + (size_t)i * ldc;
    __m512 r0 = acc[i][0], r1 = acc[i][1];
    if (alpha != 1.0f) r0 = _mm512_mul_ps(va, r0), r1 = _mm512_mul_ps(va, r1);
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), r1);
    }
    _mm512_mask_storeu_ps(c, m0, r0);
    _mm512_mask_storeu_ps(c + 16, m1, r1);
  }
}

__attribute__((target("avx512f"))) static void tile(int mr, int nr, int K, const float *A, int lda,
                                                     const float *panel, float alpha, float beta, float *C, int ldc) {
  tile_impl(mr, nr, K, A, (size_t)lda, 1, panel, alpha, beta, C, ldc);
}

__attribute__((target("avx512f"))) static void tile_trans_a(int mr, int nr, int K, const float *A, int lda,
                                                             const float *panel, float alpha, float beta, float *C,
                                                             int ldc) {
  tile_impl(mr, nr, K, A, 1, (size_t)lda, panel, alpha, beta, C, ldc);
}

static void column_block(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc, int n0, float *panel) {
  const int nr = N - n0 < NR ? N - n0 : NR;
  pack_panel(panel, trans_b, B, ldb, K, n0, nr);
  for (int m0 = 0; m0 < M; m0 += MR) {
    const int mr = M - m0 < MR ? M - m0 : MR;
    if (trans_a) tile_trans_a(mr, nr, K, A + m0, lda, panel, alpha, beta, C + (size_t)m0 * ldc + n0, ldc);
    else tile(mr, nr, K, A + (size_t)m0 * lda, lda, panel, alpha, beta, C + (size_t)m0 * ldc + n0, ldc);
  }
}

bool gemm_avx512_available(void) { /* libgcc also checks that the OS saves the AVX-512 state */
  return !getenv("DIFFUSE_NO_AVX512") && __builtin_cpu_supports("avx512f");
}

/* This thread's panel buffer, grown to the largest K seen and then reused (one per thread for the
 * life of the program: nothing is allocated per call once it has grown). */
static float *thread_panel(int K) {
  static _Thread_local float *panel;
  static _Thread_local int capacity;
  if (K > capacity) {
    free(panel);
    panel = xmalloc_aligned(64, sizeof(float) * NR * (size_t)K);
    capacity = K;
  }
  return panel;
}

void gemm_avx512(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
  const int blocks = (N + NR - 1) / NR;
  if (omp_in_parallel() || blocks == 1) {
    float *panel = thread_panel(K > 0 ? K : 1);
    for (int nb = 0; nb < blocks; nb++)
      column_block(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nb * NR, panel);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int nb = 0; nb < blocks; nb++)
    column_block(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nb * NR, thread_panel(K > 0 ? K : 1));
}

#else
bool gemm_avx512_available(void) { return false; }
void gemm_avx512(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
  (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb;
  (void)beta, (void)C, (void)ldc;
}
#endif
