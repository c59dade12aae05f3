/* conv2d.c - convolution via im2col + sgemm, several images per GEMM at low resolution.
 *
 * A chunk of B images is folded into the GEMM's N dimension: with P = Ho*Wo and N = B*P, columns
 * are indexed b*P + p, K = Cin*kh*kw.
 * Forward:  Y (Cout, N) = W (Cout, K) x col (K, N), then scattered to out (B, Cout, P) (+ bias).
 * Backward: dY (Cout, N) gathered from dout; dW += dY x col^T; dcol = W^T x dY, scattered back by
 * col2im (for a 1x1, stride-1, unpadded convolution col is the input itself, regrouped).
 * Chunks hold enough images for about 1024 columns (one image at 32x32 and above, where the
 * columns already fill the GEMM and larger ones would leave the cache; 16 at 8x8): fewer thread
 * hand-offs and better blocking where P alone is tiny. Work memory: (K + Cout) * N floats.
 */
#include "ops/conv2d.h"

#include <string.h>

#include "ops/gemm.h"

int conv2d_out_h(const Conv2dGeom *g) { return (g->H + g->pad_top + g->pad_bottom - g->kh) / g->sh + 1; }
int conv2d_out_w(const Conv2dGeom *g) { return (g->W + g->pad_left + g->pad_right - g->kw) / g->sw + 1; }

static int is_pointwise(const Conv2dGeom *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pad_top == 0 && g->pad_bottom == 0 &&
         g->pad_left == 0 && g->pad_right == 0;
}

/* Images per GEMM: enough to give it about FOLD_COLUMNS columns, and no more, so the columns of
 * high-resolution layers stay cache-sized (one image at a time at 32x32 and above). */
#define FOLD_COLUMNS 1024
static int images_per_gemm(const Conv2dGeom *g) {
  const int P = conv2d_out_h(g) * conv2d_out_w(g), n = P >= FOLD_COLUMNS ? 1 : (FOLD_COLUMNS + P - 1) / P;
  return n < g->B ? n : g->B;
}

size_t conv2d_work_floats(const Conv2dGeom *g) {
  const size_t N = (size_t)images_per_gemm(g) * conv2d_out_h(g) * conv2d_out_w(g);
  return ((size_t)g->Cin * g->kh * g->kw + (size_t)g->Cout) * N;
}

/* col (K, N) from in (B, Cin, H, W); parallel over rows r = (c, ki, kj) of K. */
static void im2col(float *col, const float *in, const Conv2dGeom *g, int Ho, int Wo) {
  const int K = g->Cin * g->kh * g->kw, P = Ho * Wo;
  const size_t N = (size_t)g->B * P, image = (size_t)g->Cin * g->H * g->W;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < K; r++) {
    const int c = r / (g->kh * g->kw), ki = (r / g->kw) % g->kh, kj = r % g->kw;
    for (int b = 0; b < g->B; b++) {
      const float *src = in + (size_t)b * image + (size_t)c * g->H * g->W;
      float *dst = col + (size_t)r * N + (size_t)b * P;
      for (int oh = 0; oh < Ho; oh++) {
        const int ih = oh * g->sh - g->pad_top + ki;
        float *row = dst + (size_t)oh * Wo;
        if (ih < 0 || ih >= g->H) {
          memset(row, 0, sizeof(float) * Wo);
          continue;
        }
        const float *srow = src + (size_t)ih * g->W;
        if (g->sw == 1 && kj - g->pad_left >= 0 && Wo - 1 + kj - g->pad_left < g->W) {
          memcpy(row, srow + kj - g->pad_left, sizeof(float) * Wo); /* interior: a plain copy */
          continue;
        }
        for (int ow = 0; ow < Wo; ow++) {
          const int iw = ow * g->sw - g->pad_left + kj;
          row[ow] = (iw >= 0 && iw < g->W) ? srow[iw] : 0.0f;
        }
      }
    }
  }
}

/* din (B, Cin, H, W) += col2im(col (K, N)); parallel over (b, c) so no two threads write the same element. */
static void col2im_add(float *din, const float *col, const Conv2dGeom *g, int Ho, int Wo) {
  const int khw = g->kh * g->kw, P = Ho * Wo;
  const size_t N = (size_t)g->B * P;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int c = 0; c < g->Cin; c++) {
      float *dst = din + ((size_t)b * g->Cin + c) * g->H * g->W;
      for (int k = 0; k < khw; k++) {
        const int ki = k / g->kw, kj = k % g->kw;
        const float *src = col + ((size_t)c * khw + k) * N + (size_t)b * P;
        for (int oh = 0; oh < Ho; oh++) {
          const int ih = oh * g->sh - g->pad_top + ki;
          if (ih < 0 || ih >= g->H) continue;
          float *drow = dst + (size_t)ih * g->W;
          const float *srow = src + (size_t)oh * Wo;
          for (int ow = 0; ow < Wo; ow++) {
            const int iw = ow * g->sw - g->pad_left + kj;
            if (iw >= 0 && iw < g->W) drow[iw] += srow[ow];
          }
        }
      }
    }
}

/* folded (C, B*P) = x (B, C, P) regrouped */
static void fold(float *folded, const float *x, int B, int C, int P) {
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      memcpy(folded + (size_t)c * B * P + (size_t)b * P, x + ((size_t)b * C + c) * P, sizeof(float) * P);
}

/* The batch is processed in chunks of images_per_gemm images (sub-geometries with B = chunk). */
static void forward_chunk(float *out, const float *in, const float *w, const float *bias, const Conv2dGeom *g,
                          float *work) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const int N = g->B * P;
  const bool single = g->B == 1; /* (C, 1*P) is (1, C, P): no regrouping */
  float *col = work, *y = single ? out : work + (size_t)K * N;
  const float *cols = col;
  if (is_pointwise(g) && single) cols = in;
  else if (is_pointwise(g)) fold(col, in, g->B, g->Cin, P);
  else im2col(col, in, g, Ho, Wo);
  gemm(false, false, g->Cout, N, K, 1.0f, w, K, cols, N, 0.0f, y, N);
  if (single && !bias) return;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int o = 0; o < g->Cout; o++) {
      const float *src = y + (size_t)o * N + (size_t)b * P;
      float *dst = out + ((size_t)b * g->Cout + o) * P;
      const float bo = bias ? bias[o] : 0.0f;
      for (int p = 0; p < P; p++) dst[p] = src[p] + bo;
    }
}

static void backward_chunk(float *din, float *dw, float *dbias, const float *dout, const float *in, const float *w,
                           const Conv2dGeom *g, float *work) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const int N = g->B * P;
  const bool single = g->B == 1;
  float *col = work;
  const float *dy = dout;
  if (!single) {
    fold(work + (size_t)K * N, dout, g->B, g->Cout, P);
    dy = work + (size_t)K * N;
  }
  if (dbias) {
#pragma omp parallel for schedule(static)
    for (int o = 0; o < g->Cout; o++) {
      double s = 0.0;
      for (int n = 0; n < N; n++) s += dy[(size_t)o * N + n];
      dbias[o] += (float)s;
    }
  }
  if (dw) {
    const float *cols = col;
    if (is_pointwise(g) && single) cols = in;
    else if (is_pointwise(g)) fold(col, in, g->B, g->Cin, P);
    else im2col(col, in, g, Ho, Wo);
    gemm(false, true, g->Cout, K, N, 1.0f, dy, N, cols, N, 1.0f, dw, K);
  }
  if (din) {
    if (is_pointwise(g) && single) {
      gemm(true, false, K, N, g->Cout, 1.0f, w, K, dy, N, 1.0f, din, N);
      return;
    }
    gemm(true, false, K, N, g->Cout, 1.0f, w, K, dy, N, 0.0f, col, N);
    if (!is_pointwise(g)) {
      col2im_add(din, col, g, Ho, Wo);
      return;
    }
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < g->B; b++)
      for (int c = 0; c < g->Cin; c++) {
        float *dst = din + ((size_t)b * g->Cin + c) * P;
        const float *src = col + (size_t)c * N + (size_t)b * P;
        for (int p = 0; p < P; p++) dst[p] += src[p];
      }
  }
}

void conv2d_forward(float *out, const float *in, const float *w, const float *bias, const Conv2dGeom *g,
                    float *work) {
  const int step = images_per_gemm(g);
  const size_t in_image = (size_t)g->Cin * g->H * g->W, out_image = (size_t)g->Cout * conv2d_out_h(g) * conv2d_out_w(g);
  for (int b = 0; b < g->B; b += step) {
    Conv2dGeom sub = *g;
    sub.B = g->B - b < step ? g->B - b : step;
    forward_chunk(out + b * out_image, in + b * in_image, w, bias, &sub, work);
  }
}

void conv2d_backward(float *din, float *dw, float *dbias, const float *dout, const float *in, const float *w,
                     const Conv2dGeom *g, float *work) {
  const int step = images_per_gemm(g);
  const size_t in_image = (size_t)g->Cin * g->H * g->W, out_image = (size_t)g->Cout * conv2d_out_h(g) * conv2d_out_w(g);
  for (int b = 0; b < g->B; b += step) {
    Conv2dGeom sub = *g;
    sub.B = g->B - b < step ? g->B - b : step;
    backward_chunk(din ? din + b * in_image : NULL, dw, dbias, dout + b * out_image, in + b * in_image, w, &sub, work);
  }
}
