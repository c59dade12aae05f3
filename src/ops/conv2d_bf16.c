/* conv2d_bf16.c - the bf16 convolution (AMX, AVX512-BF16); see conv2d_bf16.h.
 *
 * GEMM view: Y (Cout, N) = W (Cout, K) col (K, N), N = B Ho Wo columns (image b, output pixel p),
 * K = Cin kh kw rows (channel c, kernel position q). M and K are padded to multiples of 32 with zeros.
 *   A tiles (weights, packed once): [Mp/16][Kp/32] tiles of 16 rows x 32 bf16, 64 bytes a row.
 *   B tiles (columns, packed per call): per block of 16 columns, Kp/2 rows, row p holding for each
 *   column the bf16 pair (row 2p of col, row 2p + 1), so that tile kc (rows 16 kc .. 16 kc + 15) is
 *   1 KiB of contiguous memory.
 * Each thread takes two column blocks at a time, packs them straight from the input (no fp32 im2col:
 * a masked load per kernel position where the 16 columns are one output row at horizontal stride 1,
 * two masked 8-wide loads for two rows of 8 at stride 1, a gather otherwise) and runs every pair of 16-row weight blocks over them: with AMX 4 accumulator tiles
 * (32 x 32), 2 A and 2 B tiles per 32-wide step of K, TDPBF16PS accumulating in fp32; without AMX the
 * same products by VDPBF16PS (AVX512-BF16) on the same packed layout. The 32 x 32 result goes
 * through a small buffer to the output, with the bias added.
 */
#include "ops/conv2d_bf16.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"

uint16_t bf16_from_float(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);                                          /* to nearest, ties to even */
  return (uint16_t)(u >> 16);
}

float bf16_to_float(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

static int round32(int n) { return (n + 31) / 32 * 32; }

bool conv2d_bf16_supports(const Conv2dGeom *g) {
  return g->kh * g->kw <= 64 && (double)g->B * g->Cin * g->H * g->W < 2147483648.0; /* int offsets */
}

size_t conv2d_bf16_packed_bytes(const Conv2dGeom *g) {
  return (size_t)round32(g->Cout) * round32(g->Cin * g->kh * g->kw) * sizeof(uint16_t);
}

void conv2d_bf16_pack_weights(uint16_t *packed, const float *w, const Conv2dGeom *g) {
  const int K = g->Cin * g->kh * g->kw, Mp = round32(g->Cout), Kp = round32(K), KC = Kp / 32;
  for (int m = 0; m < Mp; m++)
    for (int k = 0; k < Kp; k++) {
      const float v = m < g->Cout && k < K ? w[(size_t)m * K + k] : 0.0f;
      packed[(((size_t)(m / 16) * KC + k / 32) * 16 + m % 16) * 32 + k % 32] = bf16_from_float(v);
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define MAX_KERNEL_POSITIONS 64 /* conv2d_bf16_supports */

/* cpuid leaf 7: AVX512-BF16 (subleaf 1, EAX bit 5), AMX-BF16 and AMX-TILE (subleaf 0, EDX bits 22
 * and 24), read directly (clang 14's __builtin_cpu_supports knows neither AMX name). */
static bool cpuid_bit(unsigned subleaf, int reg, int bit) {
  unsigned r[4] = {0, 0, 0, 0}; /* eax, ebx, ecx, edx */
  if (!__get_cpuid_count(7, subleaf, &r[0], &r[1], &r[2], &r[3])) return false;
  return r[reg] >> bit & 1u;
}

/* The kernel this process runs, chosen once: AMX where cpuid and the OS allow it, else AVX512-BF16;
 * DIFFUSE_BF16_KERNEL=avx512bf16 forces the latter (tests run both on an AMX machine). The AVX-512
 * state itself the OS must save: __builtin_cpu_supports checks that for avx512f. */
static Bf16Kernel choose_kernel(const char **why) {
  const bool vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && cpuid_bit(1, 0, 5);
  const char *forced = getenv("DIFFUSE_BF16_KERNEL");
  if (!vnni) {
    *why = "this CPU has neither AVX512-BF16 nor AMX-BF16 (AMD Zen 4, Intel Cooper Lake and later have them)";
    return BF16_NONE;
  }
  if (forced && !strcmp(forced, "avx512bf16")) return BF16_AVX512;
  if (!cpuid_bit(0, 3, 24) || !cpuid_bit(0, 3, 22)) return BF16_AVX512;
  if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
    fprintf(stderr, "diffuse: the kernel refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM, Linux 5.16 and "
                    "later grant it): bf16 convolutions run on AVX512-BF16 instead\n");
    return BF16_AVX512;
  }
  return BF16_AMX;
}

/* Decided at the first call, which the host thread makes (backend_cpu_bf16, before any convolution). */
Bf16Kernel conv2d_bf16_kernel(char *why, size_t whylen) {
  static int kernel = -1;
  static const char *reason;
  if (kernel < 0) kernel = choose_kernel(&reason);
  if (kernel == BF16_NONE) errorf(why, whylen, "%s", reason);
  return (Bf16Kernel)kernel;
}

typedef struct {
  uint8_t palette_id, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} TileConfig;

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,amx-tile,amx-bf16")))

/* Where the 16 columns of a block come from: 16 pixels of one output row at horizontal stride 1 (one
 * masked load per row of col), two whole output rows of 8 at stride 1 (two masked 8-wide loads), or
 * anything else (a gather). Masked-off lanes may point outside the input: AVX-512 masked loads and
 * gathers do not touch them. */
typedef enum { ROW_ONE, ROW_TWO_OF_8, ROW_GATHER } RowKind;
typedef struct {
  RowKind kind;
  int count;                          /* columns inside N (the rest are zero) */
  __mmask16 mask[MAX_KERNEL_POSITIONS]; /* ROW_TWO_OF_8: the first row's lanes low, the second's high */
  int offset[MAX_KERNEL_POSITIONS];   /* loads: of column 0 in channel 0 */
  int second_row;                     /* ROW_TWO_OF_8: the second output row's distance in the input */
  __m512i index[MAX_KERNEL_POSITIONS];
  int image, p0; /* the image and the first column's pixel */
} BlockSource;

/* The lanes [lo, hi) of 16 (empty if hi <= lo). */
static __mmask16 lane_range(int lo, int hi) {
  lo = lo < 0 ? 0 : lo, hi = hi > 16 ? 16 : hi;
  return hi <= lo ? 0 : (__mmask16)(((1u << (hi - lo)) - 1) << lo);
}

BF16_TARGET static void block_source(BlockSource *s, const Conv2dGeom *g, long col0, long N) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo;
  const long image = (long)g->Cin * g->H * g->W;
  const int khw = g->kh * g->kw;
  s->image = (int)(col0 / P), s->p0 = (int)(col0 % P), s->second_row = g->W;
  s->count = N - col0 < 16 ? (int)(N - col0) : 16;
  const int ow0 = s->p0 % Wo;
  const bool stride1 = g->sh == 1 && g->sw == 1;
  s->kind = s->count == 16 && g->sw == 1 && ow0 + 16 <= Wo              ? ROW_ONE
            : s->count == 16 && stride1 && Wo == 8 && ow0 == 0 && s->p0 + 16 <= P ? ROW_TWO_OF_8
                                                                                  : ROW_GATHER;
  if (s->kind != ROW_GATHER) { /* lanes n of a row: input row ih0 + ki, columns iw0 + kj + n */
    const int ih0 = (s->p0 / Wo) * g->sh - g->pad_top, iw0 = ow0 - g->pad_left;
    const int base = (int)(s->image * image) + ih0 * g->W + iw0, width = s->kind == ROW_ONE ? 16 : 8;
    for (int q = 0; q < khw; q++) {
      const int ki = q / g->kw, kj = q % g->kw, ih = ih0 + ki;
      const __mmask16 cols = lane_range(-(iw0 + kj), g->W - (iw0 + kj)) & lane_range(0, width);
      s->mask[q] = ih >= 0 && ih < g->H ? cols : 0;
      if (s->kind == ROW_TWO_OF_8 && ih + 1 >= 0 && ih + 1 < g->H) s->mask[q] |= (__mmask16)(cols << 8);
      s->offset[q] = base + ki * g->W + kj;
    }
    return;
  }
  int ih0[16], iw0[16], base[16];
  bool valid[16];
  for (int n = 0; n < 16; n++) {
    const long col = col0 + n;
    valid[n] = col < N;
    const long b = valid[n] ? col / P : 0, p = valid[n] ? col % P : 0;
    ih0[n] = (int)(p / Wo) * g->sh - g->pad_top;
    iw0[n] = (int)(p % Wo) * g->sw - g->pad_left;
    base[n] = (int)(b * image) + ih0[n] * g->W + iw0[n];
  }
  for (int q = 0; q < khw; q++) {
    const int ki = q / g->kw, kj = q % g->kw;
    __mmask16 m = 0;
    int idx[16];
    for (int n = 0; n < 16; n++) {
      const int ih = ih0[n] + ki, iw = iw0[n] + kj;
      if (valid[n] && ih >= 0 && ih < g->H && iw >= 0 && iw < g->W) m |= (__mmask16)(1u << n);
      idx[n] = m >> n & 1 ? base[n] + ki * g->W + kj : 0;
    }
    s->mask[q] = m;
    s->index[q] = _mm512_loadu_si512(idx);
  }
}

/* Rows k and k + 1 of col, converted and interleaved into one B row (16 columns x a pair). */
BF16_TARGET static inline __m512i pair_row(__m512 v0, __m512 v1) {
  static const uint16_t order[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                     8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(v1, v0); /* v0 the low half, v1 the high */
  return _mm512_permutexvar_epi16(_mm512_loadu_si512(order), both);
}

/* Row k = (c, q) of col for the block: channel c at kernel position q. */
BF16_TARGET __attribute__((always_inline)) static inline __m512 load_row(const BlockSource *s, RowKind kind,
                                                                         const float *plane, int q) {
  switch (kind) {
  case ROW_ONE: return _mm512_maskz_loadu_ps(s->mask[q], plane + s->offset[q]);
  case ROW_TWO_OF_8: {
    const __m256 lo = _mm256_maskz_loadu_ps((__mmask8)s->mask[q], plane + s->offset[q]);
    const __m256 hi = _mm256_maskz_loadu_ps((__mmask8)(s->mask[q] >> 8), plane + s->offset[q] + s->second_row);
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
  }
  default: return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), s->mask[q], s->index[q], plane, 4);
  }
}

/* dst <- rows [0, Kp) of the block's col, rows k and k + 1 interleaved; inlined once per row kind. */
BF16_TARGET __attribute__((always_inline)) static inline void pack_rows(uint16_t *dst, const float *in,
                                                                        const Conv2dGeom *g, const BlockSource *s,
                                                                        RowKind kind) {
  const int khw = g->kh * g->kw, K = g->Cin * khw, Kp = round32(K);
  const size_t HW = (size_t)g->H * g->W;
  int c = 0, q = 0;
  if (khw == 9) { /* 3x3: two channels are 18 rows, 9 pairs, no bookkeeping */
    for (; c + 1 < g->Cin; c += 2) {
      const float *p0 = in + (size_t)c * HW, *p1 = p0 + HW;
      __m512 r[18];
      for (int j = 0; j < 9; j++) r[j] = load_row(s, kind, p0, j), r[9 + j] = load_row(s, kind, p1, j);
      uint16_t *d = dst + (size_t)c * 9 * 16;
      for (int j = 0; j < 9; j++) _mm512_store_si512(d + (size_t)j * 32, pair_row(r[2 * j], r[2 * j + 1]));
    }
  }
  __m512 v[2];
  for (int k = c * khw; k < Kp; k += 2) { /* c * khw is even here */
    for (int i = 0; i < 2; i++) {
      v[i] = k + i < K ? load_row(s, kind, in + (size_t)c * HW, q) : _mm512_setzero_ps();
      if (++q == khw) q = 0, c++;
    }
    _mm512_store_si512(dst + (size_t)k * 16, pair_row(v[0], v[1]));
  }
}

/* dst (Kp/2 rows of 32 bf16) <- the block's columns. */
BF16_TARGET static void pack_block(uint16_t *dst, const float *in, const Conv2dGeom *g, long col0, long N) {
  if (col0 >= N) {
    memset(dst, 0, (size_t)round32(g->Cin * g->kh * g->kw) * 16 * sizeof(uint16_t));
    return;
  }
  BlockSource s;
  block_source(&s, g, col0, N);
  switch (s.kind) {
  case ROW_ONE: pack_rows(dst, in, g, &s, ROW_ONE); break;
  case ROW_TWO_OF_8: pack_rows(dst, in, g, &s, ROW_TWO_OF_8); break;
  default: pack_rows(dst, in, g, &s, ROW_GATHER); break;
  }
}

/* out rows m0 .. of the block's columns <- acc (32 rows x 32 floats; this block's are [half*16, +16)). */
static void store_block(float *out, const float *acc, int half, const float *bias, const Conv2dGeom *g, int m0,
                        long col0, long N) {
  const int P = conv2d_out_h(g) * conv2d_out_w(g), rows = g->Cout - m0 < 32 ? g->Cout - m0 : 32;
  const long image = (long)g->Cout * P;
  const long b0 = col0 / P, p0 = col0 % P;
  const bool one_image = col0 + 15 < N && p0 + 15 < P;
  for (int r = 0; r < rows; r++) {
    const float bc = bias ? bias[m0 + r] : 0.0f;
    const float *a = acc + (size_t)r * 32 + half * 16;
    if (one_image) {
      float *dst = out + b0 * image + (long)(m0 + r) * P + p0;
      for (int n = 0; n < 16; n++) dst[n] = a[n] + bc;
      continue;
    }
    for (int n = 0; n < 16 && col0 + n < N; n++) {
      const long col = col0 + n;
      out[(col / P) * image + (long)(m0 + r) * P + col % P] = a[n] + bc;
    }
  }
}

/* This thread's B panels (two blocks), grown to the largest K seen, then reused. */
static uint16_t *thread_panels(int Kp) {
  static _Thread_local uint16_t *panels;
  static _Thread_local int capacity;
  if (Kp > capacity) {
    free(panels);
    panels = xmalloc_aligned(64, 2 * (size_t)Kp * 16 * sizeof(uint16_t));
    capacity = Kp;
  }
  return panels;
}

/* Tiles 0-7 all 16 rows x 64 bytes. A constant in memory: GCC 12 treats _tile_loadconfig's operand
 * as not read, and dropped the stores that filled a local config (ldtilecfg then faulted). */
static const TileConfig TILE_CONFIG __attribute__((aligned(64))) = {
    .palette_id = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

AMX_TARGET static void load_tile_config(void) { _tile_loadconfig(&TILE_CONFIG); }

/* acc (32 x 32) = rows [m0, m0 + 32) of the weights times the two packed blocks, on AMX tiles:
 * 4 accumulators, 2 A and 2 B tiles per 32-wide step of K. */
AMX_TARGET static void tile_product_amx(float *acc, const uint16_t *a0, const uint16_t *b0, const uint16_t *b1, int KC) {
  const uint16_t *a1 = a0 + (size_t)KC * 512;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int kc = 0; kc < KC; kc++) {
    _tile_loadd(4, a0 + (size_t)kc * 512, 64);
    _tile_loadd(5, a1 + (size_t)kc * 512, 64);
    _tile_loadd(6, b0 + (size_t)kc * 512, 64);
    _tile_loadd(7, b1 + (size_t)kc * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, acc, 128);
  _tile_stored(1, acc + 16, 128);
  _tile_stored(2, acc + 16 * 32, 128);
  _tile_stored(3, acc + 16 * 32 + 16, 128);
}

/* The same with VDPBF16PS (AVX512-BF16 without AMX): for each 16-row half and each block, 16 zmm
 * accumulators, one B row (16 columns x a pair of K) per step against 16 broadcast pairs of A. */
BF16_TARGET static void tile_product_avx512(float *acc, const uint16_t *a0, const uint16_t *b0, const uint16_t *b1,
                                            int KC) {
  for (int half = 0; half < 2; half++)
    for (int blk = 0; blk < 2; blk++) {
      const uint16_t *a = a0 + (size_t)half * KC * 512, *b = blk ? b1 : b0;
      __m512 c[16];
      for (int r = 0; r < 16; r++) c[r] = _mm512_setzero_ps();
      for (int kc = 0; kc < KC; kc++)
        for (int p = 0; p < 16; p++) {
          const __m512bh row = (__m512bh)_mm512_load_si512(b + ((size_t)kc * 16 + p) * 32);
          const uint16_t *pairs = a + (size_t)kc * 512 + 2 * p;
          for (int r = 0; r < 16; r++) {
            int32_t pair;
            memcpy(&pair, pairs + (size_t)r * 32, sizeof pair);
            c[r] = _mm512_dpbf16_ps(c[r], (__m512bh)_mm512_set1_epi32(pair), row);
          }
        }
      for (int r = 0; r < 16; r++) _mm512_store_ps(acc + (size_t)(half * 16 + r) * 32 + blk * 16, c[r]);
    }
}

/* Two column blocks [col0, col0 + 32) against every pair of weight blocks. */
BF16_TARGET static void column_pair(float *out, const float *in, const uint16_t *packed, const float *bias,
                                    const Conv2dGeom *g, long col0, long N, uint16_t *panels, Bf16Kernel kernel) {
  const int Kp = round32(g->Cin * g->kh * g->kw), KC = Kp / 32, Mp = round32(g->Cout);
  uint16_t *b0 = panels, *b1 = panels + (size_t)Kp * 16;
  pack_block(b0, in, g, col0, N);
  pack_block(b1, in, g, col0 + 16, N);
  float acc[32 * 32] __attribute__((aligned(64)));
  for (int m0 = 0; m0 < Mp; m0 += 32) {
    const uint16_t *a0 = packed + (size_t)(m0 / 16) * KC * 512;
    if (kernel == BF16_AMX) tile_product_amx(acc, a0, b0, b1, KC);
    else tile_product_avx512(acc, a0, b0, b1, KC);
    store_block(out, acc, 0, bias, g, m0, col0, N);
    if (col0 + 16 < N) store_block(out, acc, 1, bias, g, m0, col0 + 16, N);
  }
}

AMX_TARGET static void release_tiles(void) { _tile_release(); }

/* (No target attribute: clang outlines the parallel region without it, so every intrinsic in it sits
 * in a function of its own.) */
void conv2d_bf16_forward(float *out, const float *in, const uint16_t *packed, const float *bias,
                         const Conv2dGeom *g) {
  char why[200];
  const Bf16Kernel kernel = conv2d_bf16_kernel(why, sizeof why);
  CHECK(kernel != BF16_NONE && conv2d_bf16_supports(g));
  const long N = (long)g->B * conv2d_out_h(g) * conv2d_out_w(g), pairs = (N + 31) / 32;
  const int Kp = round32(g->Cin * g->kh * g->kw);
#pragma omp parallel
  {
    if (kernel == BF16_AMX) load_tile_config();
    uint16_t *panels = thread_panels(Kp);
#pragma omp for schedule(static)
    for (long pair = 0; pair < pairs; pair++) column_pair(out, in, packed, bias, g, pair * 32, N, panels, kernel);
    if (kernel == BF16_AMX) release_tiles();
  }
}

#else
Bf16Kernel conv2d_bf16_kernel(char *why, size_t whylen) {
  errorf(why, whylen, "this build has no bf16 kernels (x86-64 Linux with GCC or Clang only)");
  return BF16_NONE;
}
void conv2d_bf16_forward(float *out, const float *in, const uint16_t *packed, const float *bias, const Conv2dGeom *g) {
  (void)out, (void)in, (void)packed, (void)bias, (void)g;
  CHECK(!"conv2d_bf16_forward without bf16 kernels");
}
#endif
