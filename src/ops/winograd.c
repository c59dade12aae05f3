/* winograd.c - Winograd convolutions F(4x4, 3x3) and F(2x2, 3x3); see winograd.h.
 *
 * F(2x2, 3x3) (rows of B^T, G, A^T):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   input patch d (4x4) -> V = B^T d B
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]  kernel g (3x3)     -> U = G g G^T
 *   A^T = [1 1 1 0; 0 1 -1 -1]                       product m (4x4)    -> Y = A^T m A
 * F(4x4, 3x3) (Lavin & Gray's matrices):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * Layouts: V (a^2, Cin, T), M (a^2, Cout, T) for a = m + 2, with tiles t = (b, ty, tx) of
 * ceil(H/m) x ceil(W/m) per image; output tiles past an edge are computed and not stored.
 */
#include "ops/winograd.h"

#include <string.h>

#include "ops/gemm.h"

#define OUTPUTS_PER_CHUNK 1024 /* V and M of a chunk stay near L2 size (measured best of 512..8192) */

bool winograd_applies(const Conv2dGeom *g) {
  return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pad_top == 1 && g->pad_bottom == 1 &&
         g->pad_left == 1 && g->pad_right == 1;
}

/* Output tile size m: F(4x4, 3x3) (4x fewer multiplications than the direct convolution instead of
 * 2.25x, and 2.25 transformed floats per input float instead of 4) once an image has enough tiles for
 * wide GEMMs; below that the edge waste and narrow GEMMs favour F(2x2, 3x3) (measured: a threshold
 * of 8 or 32 instead of 16 was not faster on either shipped U-Net). The weight gradient uses the same m. */
static int tile_size(const Conv2dGeom *g) { return g->H >= 16 && g->W >= 16 ? 4 : 2; }

static int tiles_per_image(const Conv2dGeom *g, int m) { return ((g->H + m - 1) / m) * ((g->W + m - 1) / m); }

static size_t planes(int m) { return (size_t)(m + 2) * (m + 2); }

size_t winograd_kernel_floats(const Conv2dGeom *g) { return planes(tile_size(g)) * g->Cout * g->Cin; }

size_t winograd_weight_grad_floats(const Conv2dGeom *g) { return planes(tile_size(g)) * g->Cout * g->Cin; }

static int images_per_chunk(const Conv2dGeom *g, int m) {
  const int n = OUTPUTS_PER_CHUNK / (m * m) / tiles_per_image(g, m);
  return n < 1 ? 1 : (n > g->B ? g->B : n);
}

int winograd_images_per_chunk(const Conv2dGeom *g) { return images_per_chunk(g, tile_size(g)); }

int winograd_weight_grad_images_per_chunk(const Conv2dGeom *g) { return images_per_chunk(g, tile_size(g)); }

static size_t chunk_floats(const Conv2dGeom *g, int m) {
  const size_t T = (size_t)images_per_chunk(g, m) * tiles_per_image(g, m);
  return planes(m) * ((size_t)g->Cin + g->Cout) * T;
}

/* The forward, input-gradient and weight-gradient chunks hold the same transformed planes: the
 * (m+2)^2 planes of Cin input patches and Cout output (or dY) tiles, with the same m and tiles. */
size_t winograd_chunk_floats(const Conv2dGeom *g) { return chunk_floats(g, tile_size(g)); }

/* r[i][p] = (G (k0[p], k1[p], k2[p]))_i for the KERNEL_BLOCK channel pairs of a block. */
#define KERNEL_BLOCK 64
static void apply_G(int m, const float *k0, const float *k1, const float *k2, float r[6][KERNEL_BLOCK]) {
  if (m == 2) {
#pragma omp simd
    for (int p = 0; p < KERNEL_BLOCK; p++) {
      r[0][p] = k0[p];
      r[1][p] = 0.5f * (k0[p] + k1[p] + k2[p]);
      r[2][p] = 0.5f * (k0[p] - k1[p] + k2[p]);
      r[3][p] = k2[p];
    }
    return;
  }
  const float sixth = 1.0f / 6.0f, twelfth = 1.0f / 12.0f, twentyfourth = 1.0f / 24.0f;
#pragma omp simd
  for (int p = 0; p < KERNEL_BLOCK; p++) {
    r[0][p] = 0.25f * k0[p];
    r[1][p] = -sixth * (k0[p] + k1[p] + k2[p]);
    r[2][p] = -sixth * (k0[p] - k1[p] + k2[p]);
    r[3][p] = twentyfourth * k0[p] + twelfth * k1[p] + sixth * k2[p];
    r[4][p] = twentyfourth * k0[p] - twelfth * k1[p] + sixth * k2[p];
    r[5][p] = k2[p];
  }
}

/* Blocks of KERNEL_BLOCK channel pairs: the block's kernels are transposed into k[9][pair], so every
 * step below runs over the pairs in SIMD, and U is written in a^2 contiguous runs. With flipped, the
 * pairs are those of W' (Cin, Cout, 3, 3), W'[c][o] = W[o][c] turned by 180 degrees, read from w. */
static void transform_kernel(float *U, const float *w, const Conv2dGeom *g, bool flipped) {
  const int m = tile_size(g), a = m + 2;
  const size_t plane = (size_t)g->Cout * g->Cin;
#pragma omp parallel for schedule(static)
  for (size_t oc0 = 0; oc0 < plane; oc0 += KERNEL_BLOCK) {
    const int n = plane - oc0 < KERNEL_BLOCK ? (int)(plane - oc0) : KERNEL_BLOCK;
    float k[9][KERNEL_BLOCK], t[3][6][KERNEL_BLOCK], u[6][KERNEL_BLOCK];
    for (int p = 0; p < KERNEL_BLOCK; p++) {
      const size_t pair = oc0 + p;
      if (p >= n)
        for (int q = 0; q < 9; q++) k[q][p] = 0.0f;
      else if (!flipped)
        for (int q = 0; q < 9; q++) k[q][p] = w[pair * 9 + q];
      else {
        const float *src = w + ((pair % g->Cout) * g->Cin + pair / g->Cout) * 9;
        for (int q = 0; q < 9; q++) k[q][p] = src[8 - q];
      }
    }
    for (int j = 0; j < 3; j++) apply_G(m, k[j], k[3 + j], k[6 + j], t[j]); /* t[j] = G (column j of g) */
    for (int i = 0; i < a; i++) {                                           /* row i of (G g) G^T */
      apply_G(m, t[0][i], t[1][i], t[2][i], u);
      for (int j = 0; j < a; j++) memcpy(U + (size_t)(i * a + j) * plane + oc0, u[j], sizeof(float) * n);
    }
  }
}

void winograd_transform_kernel(float *U, const float *w, const Conv2dGeom *g) { transform_kernel(U, w, g, false); }

void winograd_transform_kernel_flipped(float *U, const float *w, const Conv2dGeom *g) {
  transform_kernel(U, w, g, true);
}

/* The transforms below work on one channel image at a time, in bands of tile rows (about
 * BAND_TILES tiles, so that a band's buffers stay in L1), and run their two 1-D transforms over
 * arrays that hold one patch position for all of the band's tiles (SIMD over tiles, unit stride). */
#define BAND_TILES 256

static int band_rows(int TH, int TW) {
  const int r = BAND_TILES / TW;
  return r < 1 ? 1 : (r > TH ? TH : r);
}

/* d_q[k] = row[m k + q] for q < a, k < TW: one pass over a padded row splits it by phase (the
 * compiler vectorises these as interleaved loads). */
static inline void split_row_4x6(float *const *d, const float *restrict row, int TW) {
  float *restrict d0 = d[0], *restrict d1 = d[1], *restrict d2 = d[2], *restrict d3 = d[3], *restrict d4 = d[4],
                  *restrict d5 = d[5];
  for (int k = 0; k < TW; k++) {
    d0[k] = row[4 * k], d1[k] = row[4 * k + 1], d2[k] = row[4 * k + 2];
    d3[k] = row[4 * k + 3], d4[k] = row[4 * k + 4], d5[k] = row[4 * k + 5];
  }
}

static inline void split_row_2x4(float *const *d, const float *restrict row, int TW) {
  float *restrict d0 = d[0], *restrict d1 = d[1], *restrict d2 = d[2], *restrict d3 = d[3];
  for (int k = 0; k < TW; k++)
    d0[k] = row[2 * k], d1[k] = row[2 * k + 1], d2[k] = row[2 * k + 2], d3[k] = row[2 * k + 3];
}

static inline void split_row_4x4(float *const *d, const float *restrict row, int TW) {
  float *restrict d0 = d[0], *restrict d1 = d[1], *restrict d2 = d[2], *restrict d3 = d[3];
  for (int k = 0; k < TW; k++)
    d0[k] = row[4 * k], d1[k] = row[4 * k + 1], d2[k] = row[4 * k + 2], d3[k] = row[4 * k + 3];
}

static inline void split_row_2x2(float *const *d, const float *restrict row, int TW) {
  float *restrict d0 = d[0], *restrict d1 = d[1];
  for (int k = 0; k < TW; k++) d0[k] = row[2 * k], d1[k] = row[2 * k + 1];
}

/* Space-to-depth of a band, for a x a patches at stride m whose corner is (m ty - shift, m tx - shift)
 * in the channel image x (H, W): S[((ip a + q) Yn + Y) TW + tx] = x(m (ty0 + Y) + ip - shift,
 * m tx + q - shift), zero outside the image, for ip < m, q < a, Y < Yn. Patch position (i, q) of the
 * band's tiles is then the contiguous array at patch_array(S, i, q), over t = (ty - ty0) TW + tx.
 * `row` holds one zero-padded image row (m TW + a floats). Inlined, so m and a are constants. */
static inline void split_phases(float *restrict S, const float *restrict x, int H, int W, int m, int a, int shift,
                                int ty0, int Yn, int TW, float *restrict row) {
  const int PW = m * TW + a;
  for (int Y = 0; Y < Yn; Y++)
    for (int ip = 0; ip < m; ip++) {
      const int yy = m * (ty0 + Y) + ip - shift;
      memset(row, 0, sizeof(float) * PW);
      if (yy >= 0 && yy < H) memcpy(row + shift, x + (size_t)yy * W, sizeof(float) * W);
      float *d[6];
      for (int q = 0; q < a; q++) d[q] = S + ((size_t)(ip * a + q) * Yn + Y) * TW;
      if (m == 4 && a == 6) split_row_4x6(d, row, TW);
      else if (m == 4) split_row_4x4(d, row, TW);
      else if (a == 4) split_row_2x4(d, row, TW);
      else split_row_2x2(d, row, TW);
    }
}

static inline const float *patch_array(const float *S, int m, int a, int Yn, int TW, int i, int q) {
  return S + ((size_t)((i % m) * a + q) * Yn + i / m) * TW;
}

/* p[i] = base + i stride for i < count */
static inline void strided(const float **p, const float *base, size_t stride, int count) {
  for (int i = 0; i < count; i++) p[i] = base + i * stride;
}

/* 1-D transforms along one axis: out[r][t] = (X in[.][t])_r for t < n. */
static inline void input_axis_2(float *const *out, const float *const *in, int n) {
  float *restrict o0 = out[0], *restrict o1 = out[1], *restrict o2 = out[2], *restrict o3 = out[3];
  const float *restrict i0 = in[0], *restrict i1 = in[1], *restrict i2 = in[2], *restrict i3 = in[3];
#pragma omp simd
  for (int t = 0; t < n; t++) { /* B^T d */
    o0[t] = i0[t] - i2[t];
    o1[t] = i1[t] + i2[t];
    o2[t] = i2[t] - i1[t];
    o3[t] = i1[t] - i3[t];
  }
}

static inline void input_axis_4(float *const *out, const float *const *in, int n) {
  float *restrict o0 = out[0], *restrict o1 = out[1], *restrict o2 = out[2], *restrict o3 = out[3];
  float *restrict o4 = out[4], *restrict o5 = out[5];
  const float *restrict i0 = in[0], *restrict i1 = in[1], *restrict i2 = in[2], *restrict i3 = in[3];
  const float *restrict i4 = in[4], *restrict i5 = in[5];
#pragma omp simd
  for (int t = 0; t < n; t++) { /* B^T d */
    const float d0 = i0[t], d1 = i1[t], d2 = i2[t], d3 = i3[t], d4 = i4[t], d5 = i5[t];
    const float p = d4 - 4.0f * d2, q = d3 - 4.0f * d1, r = d4 - d2, s = 2.0f * (d3 - d1);
    o0[t] = 4.0f * d0 - 5.0f * d2 + d4;
    o1[t] = p + q;
    o2[t] = p - q;
    o3[t] = r + s;
    o4[t] = r - s;
    o5[t] = 4.0f * d1 - 5.0f * d3 + d5;
  }
}

static inline void output_axis_2(float *const *out, const float *const *in, int n) {
  float *restrict o0 = out[0], *restrict o1 = out[1];
  const float *restrict i0 = in[0], *restrict i1 = in[1], *restrict i2 = in[2], *restrict i3 = in[3];
#pragma omp simd
  for (int t = 0; t < n; t++) { /* A^T m */
    o0[t] = i0[t] + i1[t] + i2[t];
    o1[t] = i1[t] - i2[t] - i3[t];
  }
}

static inline void output_axis_4(float *const *out, const float *const *in, int n) {
  float *restrict o0 = out[0], *restrict o1 = out[1], *restrict o2 = out[2], *restrict o3 = out[3];
  const float *restrict i0 = in[0], *restrict i1 = in[1], *restrict i2 = in[2], *restrict i3 = in[3];
  const float *restrict i4 = in[4], *restrict i5 = in[5];
#pragma omp simd
  for (int t = 0; t < n; t++) { /* A^T m */
    const float s12 = i1[t] + i2[t], d12 = i1[t] - i2[t], s34 = i3[t] + i4[t], d34 = i3[t] - i4[t];
    o0[t] = i0[t] + s12 + s34;
    o1[t] = d12 + 2.0f * d34;
    o2[t] = s12 + 4.0f * s34;
    o3[t] = d12 + 8.0f * d34 + i5[t];
  }
}

/* F(3x3, 2x2)'s transform of a 2x2 block of dY by G' = [1 0; 1/2 1/2; 1/2 -1/2; 0 1], with the sign
 * s = (1, 1, 1, -1) per axis that turns transform_patches's V (m = 2) into that algorithm's input
 * transform. */
static inline void grad_axis(float *const *out, const float *const *in, int n) {
  float *restrict o0 = out[0], *restrict o1 = out[1], *restrict o2 = out[2], *restrict o3 = out[3];
  const float *restrict i0 = in[0], *restrict i1 = in[1];
#pragma omp simd
  for (int t = 0; t < n; t++) {
    const float p = i0[t], q = i1[t];
    o0[t] = p;
    o1[t] = 0.5f * (p + q);
    o2[t] = 0.5f * (p - q);
    o3[t] = -q;
  }
}

/* F(3x3, 4x4)'s transform of a 4x4 block e of dY: A e, with A (6x4) the transpose of F(4x4, 3x3)'s A^T. */
static inline void grad_axis_4(float *const *out, const float *const *in, int n) {
  float *restrict o0 = out[0], *restrict o1 = out[1], *restrict o2 = out[2], *restrict o3 = out[3];
  float *restrict o4 = out[4], *restrict o5 = out[5];
  const float *restrict i0 = in[0], *restrict i1 = in[1], *restrict i2 = in[2], *restrict i3 = in[3];
#pragma omp simd
  for (int t = 0; t < n; t++) {
    const float e0 = i0[t], e1 = i1[t], e2 = i2[t], e3 = i3[t];
    const float s02 = e0 + e2, s13 = e1 + e3, q02 = e0 + 4.0f * e2, q13 = 2.0f * e1 + 8.0f * e3;
    o0[t] = e0;
    o1[t] = s02 + s13;
    o2[t] = s02 - s13;
    o3[t] = q02 + q13;
    o4[t] = q02 - q13;
    o5[t] = e3;
  }
}

/* One channel image's band: the a x a patches at stride m (corner shift rows/columns before the
 * tile) through axis (a values in, b out) along both axes, into planes out + k stride, k = r b + j.
 * Inlined with constants. */
static inline void transform_band(float *out, size_t stride, const float *x, int H, int W, int m, int a, int b,
                                  int shift, int ty0, int rows, int TW, float *S, float *bt, float *row,
                                  void (*axis)(float *const *, const float *const *, int)) {
  const int Yn = rows + (a - 1) / m, n = rows * TW;
  split_phases(S, x, H, W, m, a, shift, ty0, Yn, TW, row);
  const float *in[6];
  float *o[6];
  for (int q = 0; q < a; q++) { /* first axis: bt[(r a + q) n + t] */
    for (int i = 0; i < a; i++) in[i] = patch_array(S, m, a, Yn, TW, i, q);
    for (int r = 0; r < b; r++) o[r] = bt + (size_t)(r * a + q) * n;
    axis(o, in, n);
  }
  for (int r = 0; r < b; r++) { /* second axis */
    strided(in, bt + (size_t)r * a * n, n, a);
    for (int j = 0; j < b; j++) o[j] = out + (size_t)(r * b + j) * stride;
    axis(o, in, n);
  }
}

/* out (a^2, C, T), a = m + 2, from x (B, C, H, W), one band at a time. Without dy: V, the a x a input
 * patch of tile (ty, tx) starting at (m ty - 1, m tx - 1) through B^T. With dy: the weight gradient's
 * transform of each tile's m x m block of dY (zero past an edge): for m = 2, G' dY_t G'^T with
 * grad_axis's signs; for m = 4, A dY_t A^T. */
static void transform_patches(float *out, const float *x, const Conv2dGeom *g, int C, size_t T, int m, bool dy) {
  const int a = m + 2, patch = dy ? m : a, H = g->H, W = g->W, TH = (H + m - 1) / m, TW = (W + m - 1) / m;
  const int R = band_rows(TH, TW);
  const size_t stride = (size_t)C * T;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int c = 0; c < C; c++) {
      const float *xc = x + ((size_t)b * C + c) * H * W;
      float S[m * patch * (R + 1) * TW], bt[a * patch * R * TW], row[m * TW + patch];
      for (int ty0 = 0; ty0 < TH; ty0 += R) {
        const int rows = TH - ty0 < R ? TH - ty0 : R;
        float *v = out + (size_t)c * T + (size_t)b * TH * TW + (size_t)ty0 * TW;
        if (!dy && m == 4) transform_band(v, stride, xc, H, W, 4, 6, 6, 1, ty0, rows, TW, S, bt, row, input_axis_4);
        else if (!dy) transform_band(v, stride, xc, H, W, 2, 4, 4, 1, ty0, rows, TW, S, bt, row, input_axis_2);
        else if (m == 4) transform_band(v, stride, xc, H, W, 4, 4, 6, 0, ty0, rows, TW, S, bt, row, grad_axis_4);
        else transform_band(v, stride, xc, H, W, 2, 2, 4, 0, ty0, rows, TW, S, bt, row, grad_axis);
      }
    }
}

/* line[m k + c] = src[c stride + k] for c < m, k < TW (vectorised as interleaved stores) */
static inline void interleave_row_4(float *restrict line, const float *restrict src, int stride, int TW) {
  const float *restrict s0 = src, *restrict s1 = src + stride, *restrict s2 = src + 2 * stride;
  const float *restrict s3 = src + 3 * stride;
  for (int k = 0; k < TW; k++)
    line[4 * k] = s0[k], line[4 * k + 1] = s1[k], line[4 * k + 2] = s2[k], line[4 * k + 3] = s3[k];
}

static inline void interleave_row_2(float *restrict line, const float *restrict src, int stride, int TW) {
  const float *restrict s0 = src, *restrict s1 = src + stride;
  for (int k = 0; k < TW; k++) line[2 * k] = s0[k], line[2 * k + 1] = s1[k];
}

/* out (B, Cout, H, W) (+)= A^T m A + bias for each tile of M (a^2, Cout, T); each output row is
 * interleaved from the band's results into a padded line, then stored (tiles past an edge cut off). */
static void transform_output(float *out, const float *M, const float *bias, const Conv2dGeom *g, int m, size_t T,
                             bool accumulate) {
  const int a = m + 2, H = g->H, W = g->W, TH = (H + m - 1) / m, TW = (W + m - 1) / m, R = band_rows(TH, TW);
  const int C = g->Cout;
  const size_t stride = (size_t)C * T;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int o = 0; o < C; o++) {
      float *y = out + ((size_t)b * C + o) * H * W;
      const float bo = bias ? bias[o] : 0.0f;
      float at[m * a * R * TW], yt[m * m * R * TW], line[m * TW];
      for (int ty0 = 0; ty0 < TH; ty0 += R) {
        const int rows = TH - ty0 < R ? TH - ty0 : R, n = rows * TW;
        const float *mt = M + (size_t)o * T + (size_t)b * TH * TW + (size_t)ty0 * TW;
        const float *in[6];
        float *out_rows[4];
        for (int j = 0; j < a; j++) { /* A^T m: at[(r a + j) n + t] */
          strided(in, mt + (size_t)j * stride, (size_t)a * stride, a);
          for (int r = 0; r < m; r++) out_rows[r] = at + (size_t)(r * a + j) * n;
          if (m == 4) output_axis_4(out_rows, in, n);
          else output_axis_2(out_rows, in, n);
        }
        for (int r = 0; r < m; r++) { /* (A^T m) A: yt[(r m + c) n + t] */
          strided(in, at + (size_t)r * a * n, n, a);
          for (int c = 0; c < m; c++) out_rows[c] = yt + (size_t)(r * m + c) * n;
          if (m == 4) output_axis_4(out_rows, in, n);
          else output_axis_2(out_rows, in, n);
        }
        for (int rr = 0; rr < rows; rr++) /* output rows m (ty0 + rr) + r, interleaved from yt[r m + c] */
          for (int r = 0; r < m && m * (ty0 + rr) + r < H; r++) {
            const float *src = yt + (size_t)r * m * n + (size_t)rr * TW;
            if (m == 4) interleave_row_4(line, src, n, TW);
            else interleave_row_2(line, src, n, TW);
            float *yr = y + (size_t)(m * (ty0 + rr) + r) * W;
            if (accumulate)
              for (int xx = 0; xx < W; xx++) yr[xx] += line[xx] + bo;
            else
              for (int xx = 0; xx < W; xx++) yr[xx] = line[xx] + bo;
          }
      }
    }
}

void winograd_images(float *out, const float *in, const float *U, const float *bias, const Conv2dGeom *g,
                     bool accumulate, float *work) {
  const int m = tile_size(g);
  const size_t T = (size_t)g->B * tiles_per_image(g, m), P = planes(m);
  float *V = work, *M = work + P * g->Cin * T;
  transform_patches(V, in, g, g->Cin, T, m, false);
  for (size_t k = 0; k < P; k++)
    gemm(false, false, g->Cout, (int)T, g->Cin, 1.0f, U + k * g->Cout * g->Cin, g->Cin, V + k * g->Cin * T, (int)T,
         0.0f, M + k * g->Cout * T, (int)T);
  transform_output(out, M, bias, g, m, T, accumulate);
}

/* F(3x3, 2x2) (m = 2) or F(3x3, 4x4) (m = 4, whose input transform is F(4x4, 3x3)'s, its dY transform
 * A and its output transform G^T: dW_tile = G^T [(A dY_t A^T) . (B^T d B)] G). */
void winograd_weight_grad_images(float *acc, const float *dout, const float *in, const Conv2dGeom *g, bool first,
                                 float *work) {
  const int m = tile_size(g);
  const size_t T = (size_t)g->B * tiles_per_image(g, m), P = planes(m);
  float *V = work, *Yt = work + P * g->Cin * T;
  transform_patches(V, in, g, g->Cin, T, m, false);
  transform_patches(Yt, dout, g, g->Cout, T, m, true);
  for (size_t k = 0; k < P; k++)
    gemm(false, true, g->Cout, g->Cin, (int)T, 1.0f, Yt + k * g->Cout * T, (int)T, V + k * g->Cin * T, (int)T,
         first ? 0.0f : 1.0f, acc + k * g->Cout * g->Cin, g->Cin);
}

/* o_u = (G^T (m0..m5))_u for F(3x3, 4x4), G^T = [1/4 -1/6 -1/6 1/24 1/24 0; 0 -1/6 1/6 1/12 -1/12 0;
 * 0 -1/6 -1/6 1/6 1/6 1] */
static inline void apply_GT(float *o0, float *o1, float *o2, const float *const *in, int n) {
  const float *m0 = in[0], *m1 = in[1], *m2 = in[2], *m3 = in[3], *m4 = in[4], *m5 = in[5];
  const float sixth = 1.0f / 6.0f, twelfth = 1.0f / 12.0f, twentyfourth = 1.0f / 24.0f;
#pragma omp simd
  for (int p = 0; p < n; p++) {
    const float s12 = m1[p] + m2[p], d21 = m2[p] - m1[p], s34 = m3[p] + m4[p], d34 = m3[p] - m4[p];
    o0[p] = 0.25f * m0[p] - sixth * s12 + twentyfourth * s34;
    o1[p] = sixth * d21 + twelfth * d34;
    o2[p] = sixth * (s34 - s12) + m5[p];
  }
}

/* Blocks of KERNEL_BLOCK channel pairs, SIMD over the pairs; the nine sums per pair are then added
 * to dw's (pair, 3, 3) layout. */
void winograd_weight_grad_finish(float *dw, const float *acc, const Conv2dGeom *g) {
  const size_t plane = (size_t)g->Cout * g->Cin;
  const int m = tile_size(g);
#pragma omp parallel for schedule(static)
  for (size_t oc0 = 0; oc0 < plane; oc0 += KERNEL_BLOCK) {
    const int n = plane - oc0 < KERNEL_BLOCK ? (int)(plane - oc0) : KERNEL_BLOCK;
    float t[3][6][KERNEL_BLOCK], d[9][KERNEL_BLOCK];
    if (m == 4) {
      const float *in[6];
      for (int l = 0; l < 6; l++) { /* G^T acc: t[u][l] */
        for (int j = 0; j < 6; j++) in[j] = acc + (size_t)(j * 6 + l) * plane + oc0;
        apply_GT(t[0][l], t[1][l], t[2][l], in, n);
      }
      for (int u = 0; u < 3; u++) { /* (G^T acc) G */
        for (int l = 0; l < 6; l++) in[l] = t[u][l];
        apply_GT(d[u * 3 + 0], d[u * 3 + 1], d[u * 3 + 2], in, n);
      }
    } else {
      for (int j = 0; j < 4; j++) { /* A'^T m, A'^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1] */
        const float *m0 = acc + (size_t)j * plane + oc0, *m1 = m0 + 4 * plane, *m2 = m0 + 8 * plane,
                    *m3 = m0 + 12 * plane;
#pragma omp simd
        for (int p = 0; p < n; p++) {
          t[0][j][p] = m0[p] + m1[p] + m2[p];
          t[1][j][p] = m1[p] - m2[p];
          t[2][j][p] = m1[p] + m2[p] + m3[p];
        }
      }
      for (int i = 0; i < 3; i++) { /* (A'^T m) A' */
#pragma omp simd
        for (int p = 0; p < n; p++) {
          d[i * 3 + 0][p] = t[i][0][p] + t[i][1][p] + t[i][2][p];
          d[i * 3 + 1][p] = t[i][1][p] - t[i][2][p];
          d[i * 3 + 2][p] = t[i][1][p] + t[i][2][p] + t[i][3][p];
        }
      }
    }
    for (int p = 0; p < n; p++)
      for (int q = 0; q < 9; q++) dw[(oc0 + p) * 9 + q] += d[q][p];
  }
}
