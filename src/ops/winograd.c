/* winograd.c - F(2x2, 3x3) convolution; see winograd.h.
 *
 * Transforms (rows of B^T, G, A^T):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   input patch d (4x4) -> V = B^T d B
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]  kernel g (3x3)     -> U = G g G^T
 *   A^T = [1 1 1 0; 0 1 -1 -1]                       product m (4x4)    -> Y = A^T m A
 * Layouts: V (16, Cin, T), M (16, Cout, T) with tiles t = (b, ty, tx) of ceil(H/2) x ceil(W/2) per
 * image; output tiles past an odd edge are computed and not stored.
 */
#include "ops/winograd.h"

#include <string.h>

#include "ops/gemm.h"

#define TILES_PER_CHUNK 256 /* V and M of a chunk stay near L2 size (measured best of 128..2048) */

bool winograd_applies(const Conv2dGeom *g) {
  return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pad_top == 1 && g->pad_bottom == 1 &&
         g->pad_left == 1 && g->pad_right == 1;
}

static int tiles_per_image(const Conv2dGeom *g) { return ((g->H + 1) / 2) * ((g->W + 1) / 2); }

size_t winograd_kernel_floats(const Conv2dGeom *g) { return (size_t)16 * g->Cout * g->Cin; }

int winograd_images_per_chunk(const Conv2dGeom *g) {
  const int n = TILES_PER_CHUNK / tiles_per_image(g);
  return n < 1 ? 1 : (n > g->B ? g->B : n);
}

size_t winograd_chunk_floats(const Conv2dGeom *g) {
  const size_t T = (size_t)winograd_images_per_chunk(g) * tiles_per_image(g);
  return (size_t)16 * ((size_t)g->Cin + g->Cout) * T;
}

/* Blocks of KERNEL_BLOCK channel pairs go through an L1-sized buffer, so U is written in 16
 * contiguous runs instead of 16 scattered floats per pair (which made this transform cost as much
 * as all the convolutions' GEMMs). */
#define KERNEL_BLOCK 64
void winograd_transform_kernel(float *U, const float *w, const Conv2dGeom *g) {
  const size_t plane = (size_t)g->Cout * g->Cin;
#pragma omp parallel for schedule(static)
  for (size_t oc0 = 0; oc0 < plane; oc0 += KERNEL_BLOCK) {
    const int n = plane - oc0 < KERNEL_BLOCK ? (int)(plane - oc0) : KERNEL_BLOCK;
    float u[16][KERNEL_BLOCK];
    for (int p = 0; p < n; p++) {
      const float *k = w + (oc0 + p) * 9;
      float t[4][3]; /* G g */
      for (int j = 0; j < 3; j++) {
        t[0][j] = k[j];
        t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
        t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
        t[3][j] = k[6 + j];
      }
      for (int i = 0; i < 4; i++) { /* (G g) G^T */
        u[i * 4 + 0][p] = t[i][0];
        u[i * 4 + 1][p] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[i * 4 + 2][p] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[i * 4 + 3][p] = t[i][2];
      }
    }
    for (int k = 0; k < 16; k++) memcpy(U + (size_t)k * plane + oc0, u[k], sizeof(float) * n);
  }
}

/* V (16, C, T) from in (B, C, H, W): one 4x4 patch per tile, starting at (2 ty - 1, 2 tx - 1). A
 * tile row's four input rows are first copied into zero-padded buffers (rows[i][1 + x] = input
 * column x), so the loop over tiles has no bounds checks and vectorises. */
static void transform_input(float *V, const float *in, const Conv2dGeom *g, int C, size_t T) {
  const int H = g->H, W = g->W, TH = (H + 1) / 2, TW = (W + 1) / 2, padded = 2 * TW + 2;
  const size_t stride = (size_t)C * T;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int c = 0; c < C; c++) {
      const float *x = in + ((size_t)b * C + c) * H * W;
      float rows[4][padded];
      for (int ty = 0; ty < TH; ty++) {
        for (int i = 0; i < 4; i++) {
          const int yy = 2 * ty - 1 + i;
          if (yy < 0 || yy >= H) {
            memset(rows[i], 0, sizeof(float) * padded);
            continue;
          }
          rows[i][0] = 0.0f;
          memcpy(rows[i] + 1, x + (size_t)yy * W, sizeof(float) * W);
          for (int j = W + 1; j < padded; j++) rows[i][j] = 0.0f;
        }
        float *v = V + (size_t)c * T + (size_t)b * TH * TW + (size_t)ty * TW;
        float bt[4][padded]; /* B^T d for every column of the tile row */
        for (int xx = 0; xx < padded; xx++) {
          bt[0][xx] = rows[0][xx] - rows[2][xx];
          bt[1][xx] = rows[1][xx] + rows[2][xx];
          bt[2][xx] = rows[2][xx] - rows[1][xx];
          bt[3][xx] = rows[1][xx] - rows[3][xx];
        }
        for (int i = 0; i < 4; i++) { /* (B^T d) B */
          const float *r = bt[i];
          float *v0 = v + (i * 4 + 0) * stride, *v1 = v + (i * 4 + 1) * stride;
          float *v2 = v + (i * 4 + 2) * stride, *v3 = v + (i * 4 + 3) * stride;
#pragma omp simd
          for (int tx = 0; tx < TW; tx++) {
            const float a = r[2 * tx], b1 = r[2 * tx + 1], c2 = r[2 * tx + 2], d = r[2 * tx + 3];
            v0[tx] = a - c2;
            v1[tx] = b1 + c2;
            v2[tx] = c2 - b1;
            v3[tx] = b1 - d;
          }
        }
      }
    }
}

/* out (B, Cout, H, W) (+)= A^T m A + bias for each tile of M (16, Cout, T); a tile row is computed
 * into two padded output rows first, then stored (odd edges cut off). */
static void transform_output(float *out, const float *M, const float *bias, const Conv2dGeom *g, size_t T,
                             bool accumulate) {
  const int H = g->H, W = g->W, TH = (H + 1) / 2, TW = (W + 1) / 2, C = g->Cout;
  const size_t stride = (size_t)C * T;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int o = 0; o < C; o++) {
      float *y = out + ((size_t)b * C + o) * H * W;
      const float bo = bias ? bias[o] : 0.0f;
      float rows[2][2 * TW];
      for (int ty = 0; ty < TH; ty++) {
        const float *m = M + (size_t)o * T + (size_t)b * TH * TW + (size_t)ty * TW;
        float at[2][4][TW]; /* A^T m for every tile of the row */
        for (int j = 0; j < 4; j++) {
          const float *m0 = m + (0 * 4 + j) * stride, *m1 = m + (1 * 4 + j) * stride;
          const float *m2 = m + (2 * 4 + j) * stride, *m3 = m + (3 * 4 + j) * stride;
#pragma omp simd
          for (int tx = 0; tx < TW; tx++) {
            at[0][j][tx] = m0[tx] + m1[tx] + m2[tx];
            at[1][j][tx] = m1[tx] - m2[tx] - m3[tx];
          }
        }
        for (int i = 0; i < 2; i++) { /* (A^T m) A */
          const float *a0 = at[i][0], *a1 = at[i][1], *a2 = at[i][2], *a3 = at[i][3];
          float *r = rows[i];
#pragma omp simd
          for (int tx = 0; tx < TW; tx++) {
            r[2 * tx] = a0[tx] + a1[tx] + a2[tx] + bo;
            r[2 * tx + 1] = a1[tx] - a2[tx] - a3[tx] + bo;
          }
        }
        for (int i = 0; i < 2 && 2 * ty + i < H; i++) {
          float *yr = y + (size_t)(2 * ty + i) * W;
          if (accumulate)
            for (int xx = 0; xx < W; xx++) yr[xx] += rows[i][xx];
          else
            for (int xx = 0; xx < W; xx++) yr[xx] = rows[i][xx];
        }
      }
    }
}

void winograd_images(float *out, const float *in, const float *U, const float *bias, const Conv2dGeom *g,
                     bool accumulate, float *work) {
  const size_t T = (size_t)g->B * tiles_per_image(g);
  float *V = work, *M = work + (size_t)16 * g->Cin * T;
  transform_input(V, in, g, g->Cin, T);
  for (int k = 0; k < 16; k++)
    gemm_packed(false, g->Cout, (int)T, g->Cin, U + (size_t)k * g->Cout * g->Cin, g->Cin, V + (size_t)k * g->Cin * T,
                (int)T, 0.0f, M + (size_t)k * g->Cout * T, (int)T);
  transform_output(out, M, bias, g, T, accumulate);
}

/* Yt (16, Cout, T): G' dY_t G'^T of each tile's 2x2 block of dY (zero past an odd edge), with the
 * signs s_i s_j, s = (1, 1, 1, -1), that turn transform_input's V into F(3x3, 2x2)'s input transform. */
static void transform_output_grad(float *Yt, const float *dout, const Conv2dGeom *g, size_t T) {
  const int H = g->H, W = g->W, TH = (H + 1) / 2, TW = (W + 1) / 2, C = g->Cout;
  const size_t stride = (size_t)C * T;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int o = 0; o < C; o++) {
      const float *dy = dout + ((size_t)b * C + o) * H * W;
      float *yt = Yt + (size_t)o * T + (size_t)b * TH * TW;
      float rows[2][2 * TW], gt[4][2 * TW];
      for (int ty = 0; ty < TH; ty++) {
        for (int i = 0; i < 2; i++) {
          const int yy = 2 * ty + i;
          if (yy >= H) {
            memset(rows[i], 0, sizeof(float) * 2 * TW);
            continue;
          }
          memcpy(rows[i], dy + (size_t)yy * W, sizeof(float) * W);
          for (int xx = W; xx < 2 * TW; xx++) rows[i][xx] = 0.0f;
        }
        for (int xx = 0; xx < 2 * TW; xx++) { /* G' dY, signs s_i included */
          gt[0][xx] = rows[0][xx];
          gt[1][xx] = 0.5f * (rows[0][xx] + rows[1][xx]);
          gt[2][xx] = 0.5f * (rows[0][xx] - rows[1][xx]);
          gt[3][xx] = -rows[1][xx];
        }
        float *v = yt + (size_t)ty * TW;
        for (int i = 0; i < 4; i++) { /* (G' dY) G'^T, sign s_j on column 3 */
          const float *r = gt[i];
          float *v0 = v + (i * 4 + 0) * stride, *v1 = v + (i * 4 + 1) * stride;
          float *v2 = v + (i * 4 + 2) * stride, *v3 = v + (i * 4 + 3) * stride;
#pragma omp simd
          for (int tx = 0; tx < TW; tx++) {
            const float p = r[2 * tx], q = r[2 * tx + 1];
            v0[tx] = p;
            v1[tx] = 0.5f * (p + q);
            v2[tx] = 0.5f * (p - q);
            v3[tx] = -q;
          }
        }
      }
    }
}

void winograd_weight_grad_images(float *acc, const float *dout, const float *in, const Conv2dGeom *g,
                                 float *work) {
  const size_t T = (size_t)g->B * tiles_per_image(g);
  float *V = work, *Yt = work + (size_t)16 * g->Cin * T;
  transform_input(V, in, g, g->Cin, T);
  transform_output_grad(Yt, dout, g, T);
  for (int k = 0; k < 16; k++)
    gemm_packed(true, g->Cout, g->Cin, (int)T, Yt + (size_t)k * g->Cout * T, (int)T, V + (size_t)k * g->Cin * T,
                (int)T, 1.0f, acc + (size_t)k * g->Cout * g->Cin, g->Cin);
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
