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

/* Output tile size m of winograd_images: F(4x4, 3x3) (4x fewer multiplications than the direct
 * convolution instead of 2.25x, and 2.25 transformed floats per input float instead of 4) once an
 * image has enough tiles for wide GEMMs; below that the edge waste and narrow GEMMs favour
 * F(2x2, 3x3). The weight gradient always uses F(3x3, 2x2), whose tiles are F(2x2, 3x3)'s. */
static int tile_size(const Conv2dGeom *g) { return g->H >= 16 && g->W >= 16 ? 4 : 2; }

static int tiles_per_image(const Conv2dGeom *g, int m) { return ((g->H + m - 1) / m) * ((g->W + m - 1) / m); }

static size_t planes(int m) { return (size_t)(m + 2) * (m + 2); }

size_t winograd_kernel_floats(const Conv2dGeom *g) { return planes(tile_size(g)) * g->Cout * g->Cin; }

size_t winograd_weight_grad_floats(const Conv2dGeom *g) { return planes(2) * g->Cout * g->Cin; }

static int images_per_chunk(const Conv2dGeom *g, int m) {
  const int n = OUTPUTS_PER_CHUNK / (m * m) / tiles_per_image(g, m);
  return n < 1 ? 1 : (n > g->B ? g->B : n);
}

int winograd_images_per_chunk(const Conv2dGeom *g) { return images_per_chunk(g, tile_size(g)); }

int winograd_weight_grad_images_per_chunk(const Conv2dGeom *g) { return images_per_chunk(g, 2); }

static size_t chunk_floats(const Conv2dGeom *g, int m) {
  const size_t T = (size_t)images_per_chunk(g, m) * tiles_per_image(g, m);
  return planes(m) * ((size_t)g->Cin + g->Cout) * T;
}

size_t winograd_chunk_floats(const Conv2dGeom *g) {
  const size_t forward = chunk_floats(g, tile_size(g)), weight_grad = chunk_floats(g, 2);
  return forward > weight_grad ? forward : weight_grad;
}

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
 * step below runs over the pairs in SIMD, and U is written in a^2 contiguous runs. */
void winograd_transform_kernel(float *U, const float *w, const Conv2dGeom *g) {
  const int m = tile_size(g), a = m + 2;
  const size_t plane = (size_t)g->Cout * g->Cin;
#pragma omp parallel for schedule(static)
  for (size_t oc0 = 0; oc0 < plane; oc0 += KERNEL_BLOCK) {
    const int n = plane - oc0 < KERNEL_BLOCK ? (int)(plane - oc0) : KERNEL_BLOCK;
    float k[9][KERNEL_BLOCK], t[3][6][KERNEL_BLOCK], u[6][KERNEL_BLOCK];
    for (int p = 0; p < KERNEL_BLOCK; p++)
      for (int q = 0; q < 9; q++) k[q][p] = p < n ? w[(oc0 + p) * 9 + q] : 0.0f;
    for (int j = 0; j < 3; j++) apply_G(m, k[j], k[3 + j], k[6 + j], t[j]); /* t[j] = G (column j of g) */
    for (int i = 0; i < a; i++) {                                           /* row i of (G g) G^T */
      apply_G(m, t[0][i], t[1][i], t[2][i], u);
      for (int j = 0; j < a; j++) memcpy(U + (size_t)(i * a + j) * plane + oc0, u[j], sizeof(float) * n);
    }
  }
}

/* The transforms below work on one channel image at a time, in bands of tile rows (about
 * BAND_TILES tiles, so that a band's buffers stay in L1): the band's rows are copied into a
 * zero-padded buffer, each patch position is gathered into an array over the band's tiles, and the
 * two 1-D transforms then run over those arrays with unit stride (SIMD over tiles). */
#define BAND_TILES 128

static int band_rows(int TH, int TW) {
  const int r = BAND_TILES / TW;
  return r < 1 ? 1 : (r > TH ? TH : r);
}

/* pad (rows x PW) = rows [y0, y0 + rows) of the channel image x (H, W) starting at column x0 of
 * each padded row, zero outside the image. */
static void pad_rows(float *pad, int rows, int PW, const float *x, int H, int W, int y0, int x0) {
  for (int i = 0; i < rows; i++) {
    float *dst = pad + (size_t)i * PW;
    const int yy = y0 + i;
    if (yy < 0 || yy >= H) {
      memset(dst, 0, sizeof(float) * PW);
      continue;
    }
    for (int j = 0; j < x0; j++) dst[j] = 0.0f;
    memcpy(dst + x0, x + (size_t)yy * W, sizeof(float) * W);
    for (int j = x0 + W; j < PW; j++) dst[j] = 0.0f;
  }
}

/* X[(i a + q) n + r TW + tx] = pad[m r + i][m tx + q]: the a x a patch of each of the band's
 * n = rows TW tiles, one array per patch position (inlined, so m and a are constants). */
static inline void gather_patches(float *restrict X, const float *restrict pad, int PW, int m, int a, int rows,
                                  int TW) {
  const int n = rows * TW;
  for (int i = 0; i < a; i++)
    for (int q = 0; q < a; q++)
      for (int r = 0; r < rows; r++) {
        const float *src = pad + (size_t)(m * r + i) * PW + q;
        float *dst = X + (size_t)(i * a + q) * n + (size_t)r * TW;
        for (int tx = 0; tx < TW; tx++) dst[tx] = src[m * tx];
      }
}

/* 1-D transforms along one axis, for t < n: element i of the input vector is in[i * is + t],
 * element r of the result goes to out[r * os + t]. */
static inline void input_axis_2(float *restrict out, size_t os, const float *restrict in, size_t is, int n) {
#pragma omp simd
  for (int t = 0; t < n; t++) { /* B^T d */
    const float d0 = in[t], d1 = in[is + t], d2 = in[2 * is + t], d3 = in[3 * is + t];
    out[t] = d0 - d2;
    out[os + t] = d1 + d2;
    out[2 * os + t] = d2 - d1;
    out[3 * os + t] = d1 - d3;
  }
}

static inline void input_axis_4(float *restrict out, size_t os, const float *restrict in, size_t is, int n) {
#pragma omp simd
  for (int t = 0; t < n; t++) { /* B^T d */
    const float d0 = in[t], d1 = in[is + t], d2 = in[2 * is + t], d3 = in[3 * is + t], d4 = in[4 * is + t],
                d5 = in[5 * is + t];
    const float p = d4 - 4.0f * d2, q = d3 - 4.0f * d1, r = d4 - d2, s = 2.0f * (d3 - d1);
    out[t] = 4.0f * d0 - 5.0f * d2 + d4;
    out[os + t] = p + q;
    out[2 * os + t] = p - q;
    out[3 * os + t] = r + s;
    out[4 * os + t] = r - s;
    out[5 * os + t] = 4.0f * d1 - 5.0f * d3 + d5;
  }
}

static inline void output_axis_2(float *restrict out, size_t os, const float *restrict in, size_t is, int n) {
#pragma omp simd
  for (int t = 0; t < n; t++) { /* A^T m */
    const float m0 = in[t], m1 = in[is + t], m2 = in[2 * is + t], m3 = in[3 * is + t];
    out[t] = m0 + m1 + m2;
    out[os + t] = m1 - m2 - m3;
  }
}

static inline void output_axis_4(float *restrict out, size_t os, const float *restrict in, size_t is, int n) {
#pragma omp simd
  for (int t = 0; t < n; t++) { /* A^T m */
    const float m0 = in[t], m1 = in[is + t], m2 = in[2 * is + t], m3 = in[3 * is + t], m4 = in[4 * is + t],
                m5 = in[5 * is + t];
    const float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    out[t] = m0 + s12 + s34;
    out[os + t] = d12 + 2.0f * d34;
    out[2 * os + t] = s12 + 4.0f * s34;
    out[3 * os + t] = d12 + 8.0f * d34 + m5;
  }
}

/* F(3x3, 2x2)'s transform of a 2x2 block of dY by G' = [1 0; 1/2 1/2; 1/2 -1/2; 0 1], with the sign
 * s = (1, 1, 1, -1) per axis that turns transform_input's V (m = 2) into that algorithm's input
 * transform. */
static inline void grad_axis(float *restrict out, size_t os, const float *restrict in, size_t is, int n) {
#pragma omp simd
  for (int t = 0; t < n; t++) {
    const float p = in[t], q = in[is + t];
    out[t] = p;
    out[os + t] = 0.5f * (p + q);
    out[2 * os + t] = 0.5f * (p - q);
    out[3 * os + t] = -q;
  }
}

/* V (a^2, C, T) from in (B, C, H, W): the a x a patch of tile (ty, tx) starts at (m ty - 1, m tx - 1). */
static void transform_input(float *V, const float *in, const Conv2dGeom *g, int m, int C, size_t T) {
  const int a = m + 2, H = g->H, W = g->W, TH = (H + m - 1) / m, TW = (W + m - 1) / m, R = band_rows(TH, TW);
  const int PW = m * TW + 2;
  const size_t stride = (size_t)C * T;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int c = 0; c < C; c++) {
      const float *x = in + ((size_t)b * C + c) * H * W;
      float pad[(m * R + 2) * PW], X[a * a * R * TW], bt[a * a * R * TW];
      for (int ty0 = 0; ty0 < TH; ty0 += R) {
        const int rows = TH - ty0 < R ? TH - ty0 : R, n = rows * TW;
        float *v = V + (size_t)c * T + (size_t)b * TH * TW + (size_t)ty0 * TW;
        pad_rows(pad, m * rows + 2, PW, x, H, W, m * ty0 - 1, 1);
        if (m == 4) {
          gather_patches(X, pad, PW, 4, 6, rows, TW);
          for (int q = 0; q < 6; q++) input_axis_4(bt + q * n, 6 * n, X + q * n, 6 * n, n);      /* B^T d */
          for (int r = 0; r < 6; r++) input_axis_4(v + r * 6 * stride, stride, bt + r * 6 * n, n, n); /* (B^T d) B */
        } else {
          gather_patches(X, pad, PW, 2, 4, rows, TW);
          for (int q = 0; q < 4; q++) input_axis_2(bt + q * n, 4 * n, X + q * n, 4 * n, n);
          for (int r = 0; r < 4; r++) input_axis_2(v + r * 4 * stride, stride, bt + r * 4 * n, n, n);
        }
      }
    }
}

/* out (B, Cout, H, W) (+)= A^T m A + bias for each tile of M (a^2, Cout, T); a band's output rows
 * are assembled in a padded buffer, then stored (tiles past an edge cut off). */
static void transform_output(float *out, const float *M, const float *bias, const Conv2dGeom *g, int m, size_t T,
                             bool accumulate) {
  const int a = m + 2, H = g->H, W = g->W, TH = (H + m - 1) / m, TW = (W + m - 1) / m, R = band_rows(TH, TW);
  const int C = g->Cout, PW = m * TW;
  const size_t stride = (size_t)C * T;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int o = 0; o < C; o++) {
      float *y = out + ((size_t)b * C + o) * H * W;
      const float bo = bias ? bias[o] : 0.0f;
      float at[m * a * R * TW], yt[m * m * R * TW], rows_out[m * R * PW];
      for (int ty0 = 0; ty0 < TH; ty0 += R) {
        const int rows = TH - ty0 < R ? TH - ty0 : R, n = rows * TW;
        const float *mt = M + (size_t)o * T + (size_t)b * TH * TW + (size_t)ty0 * TW;
        if (m == 4) {
          for (int j = 0; j < 6; j++) output_axis_4(at + j * n, 6 * n, mt + j * stride, 6 * stride, n); /* A^T m */
          for (int r = 0; r < 4; r++) output_axis_4(yt + r * 4 * n, n, at + r * 6 * n, n, n); /* (A^T m) A */
        } else {
          for (int j = 0; j < 4; j++) output_axis_2(at + j * n, 4 * n, mt + j * stride, 4 * stride, n);
          for (int r = 0; r < 2; r++) output_axis_2(yt + r * 2 * n, n, at + r * 4 * n, n, n);
        }
        for (int r = 0; r < m; r++) /* rows_out[m rr + r][m tx + c] = yt[r m + c][rr TW + tx] */
          for (int c = 0; c < m; c++)
            for (int rr = 0; rr < rows; rr++) {
              const float *src = yt + (size_t)(r * m + c) * n + (size_t)rr * TW;
              float *dst = rows_out + (size_t)(m * rr + r) * PW + c;
              for (int tx = 0; tx < TW; tx++) dst[m * tx] = src[tx];
            }
        for (int i = 0; i < m * rows && m * ty0 + i < H; i++) {
          float *yr = y + (size_t)(m * ty0 + i) * W;
          const float *src = rows_out + (size_t)i * PW;
          if (accumulate)
            for (int xx = 0; xx < W; xx++) yr[xx] += src[xx] + bo;
          else
            for (int xx = 0; xx < W; xx++) yr[xx] = src[xx] + bo;
        }
      }
    }
}

void winograd_images(float *out, const float *in, const float *U, const float *bias, const Conv2dGeom *g,
                     bool accumulate, float *work) {
  const int m = tile_size(g);
  const size_t T = (size_t)g->B * tiles_per_image(g, m), P = planes(m);
  float *V = work, *M = work + P * g->Cin * T;
  transform_input(V, in, g, m, g->Cin, T);
  for (size_t k = 0; k < P; k++)
    gemm_packed(false, g->Cout, (int)T, g->Cin, U + k * g->Cout * g->Cin, g->Cin, V + k * g->Cin * T, (int)T, 0.0f,
                M + k * g->Cout * T, (int)T);
  transform_output(out, M, bias, g, m, T, accumulate);
}

/* Yt (16, Cout, T): G' dY_t G'^T (with grad_axis's signs) of each tile's 2x2 block of dY, zero past
 * an odd edge. */
static void transform_output_grad(float *Yt, const float *dout, const Conv2dGeom *g, size_t T) {
  const int H = g->H, W = g->W, TH = (H + 1) / 2, TW = (W + 1) / 2, R = band_rows(TH, TW), C = g->Cout;
  const int PW = 2 * TW;
  const size_t stride = (size_t)C * T;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int o = 0; o < C; o++) {
      const float *dy = dout + ((size_t)b * C + o) * H * W;
      float pad[2 * R * PW], D[4 * R * TW], gt[8 * R * TW];
      for (int ty0 = 0; ty0 < TH; ty0 += R) {
        const int rows = TH - ty0 < R ? TH - ty0 : R, n = rows * TW;
        float *v = Yt + (size_t)o * T + (size_t)b * TH * TW + (size_t)ty0 * TW;
        pad_rows(pad, 2 * rows, PW, dy, H, W, 2 * ty0, 0);
        gather_patches(D, pad, PW, 2, 2, rows, TW);
        for (int q = 0; q < 2; q++) grad_axis(gt + q * n, 2 * n, D + q * n, 2 * n, n);
        for (int r = 0; r < 4; r++) grad_axis(v + r * 4 * stride, stride, gt + r * 2 * n, n, n);
      }
    }
}

void winograd_weight_grad_images(float *acc, const float *dout, const float *in, const Conv2dGeom *g, bool first,
                                 float *work) {
  const size_t T = (size_t)g->B * tiles_per_image(g, 2);
  float *V = work, *Yt = work + (size_t)16 * g->Cin * T;
  transform_input(V, in, g, 2, g->Cin, T);
  transform_output_grad(Yt, dout, g, T);
  for (int k = 0; k < 16; k++)
    gemm_packed(true, g->Cout, g->Cin, (int)T, Yt + (size_t)k * g->Cout * T, (int)T, V + (size_t)k * g->Cin * T,
                (int)T, first ? 0.0f : 1.0f, acc + (size_t)k * g->Cout * g->Cin, g->Cin);
}

void winograd_weight_grad_finish(float *dw, const float *acc, const Conv2dGeom *g) {
  const size_t plane = (size_t)g->Cout * g->Cin;
#pragma omp parallel for schedule(static)
  for (size_t oc = 0; oc < plane; oc++) {
    float m[4][4], t[3][4];
    for (int k = 0; k < 16; k++) m[k / 4][k % 4] = acc[(size_t)k * plane + oc];
    for (int j = 0; j < 4; j++) { /* A'^T m */
      t[0][j] = m[0][j] + m[1][j] + m[2][j];
      t[1][j] = m[1][j] - m[2][j];
      t[2][j] = m[1][j] + m[2][j] + m[3][j];
    }
    float *d = dw + oc * 9;
    for (int i = 0; i < 3; i++) { /* (A'^T m) A' */
      d[i * 3 + 0] += t[i][0] + t[i][1] + t[i][2];
      d[i * 3 + 1] += t[i][1] - t[i][2];
      d[i * 3 + 2] += t[i][1] + t[i][2] + t[i][3];
    }
  }
}
