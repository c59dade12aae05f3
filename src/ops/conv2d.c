/* conv2d.c - convolution via im2col + sgemm, one image at a time.
 *
 * Forward: out_b (Cout, P) = W (Cout, K) x col_b (K, P), K = Cin*kh*kw, P = Ho*Wo.
 * Backward: dW += dout_b x col_b^T; dcol = W^T x dout_b, scattered back by col2im.
 * A 1x1, stride-1, unpadded convolution uses the input directly as col.
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

size_t conv2d_work_floats(const Conv2dGeom *g) {
  if (is_pointwise(g)) return 0;
  return (size_t)g->Cin * g->kh * g->kw * conv2d_out_h(g) * conv2d_out_w(g);
}

static void im2col(float *col, const float *in, const Conv2dGeom *g, int Ho, int Wo) {
  const int K = g->Cin * g->kh * g->kw;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < K; r++) {
    const int c = r / (g->kh * g->kw), ki = (r / g->kw) % g->kh, kj = r % g->kw;
    const float *src = in + (size_t)c * g->H * g->W;
    float *dst = col + (size_t)r * Ho * Wo;
    for (int oh = 0; oh < Ho; oh++) {
      const int ih = oh * g->sh - g->pad_top + ki;
      float *row = dst + (size_t)oh * Wo;
      if (ih < 0 || ih >= g->H) {
        memset(row, 0, sizeof(float) * Wo);
        continue;
      }
      const float *srow = src + (size_t)ih * g->W;
      for (int ow = 0; ow < Wo; ow++) {
        const int iw = ow * g->sw - g->pad_left + kj;
        row[ow] = (iw >= 0 && iw < g->W) ? srow[iw] : 0.0f;
      }
    }
  }
}

/* din += col2im(col); parallel over input channels so no two threads write the same element. */
static void col2im_add(float *din, const float *col, const Conv2dGeom *g, int Ho, int Wo) {
  const int khw = g->kh * g->kw;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < g->Cin; c++) {
    float *dst = din + (size_t)c * g->H * g->W;
    for (int k = 0; k < khw; k++) {
      const int ki = k / g->kw, kj = k % g->kw;
      const float *src = col + ((size_t)c * khw + k) * Ho * Wo;
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

void conv2d_forward(float *out, const float *in, const float *w, const float *bias, const Conv2dGeom *g,
                    float *work) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const int pointwise = is_pointwise(g);
  for (int b = 0; b < g->B; b++) {
    const float *x = in + (size_t)b * g->Cin * g->H * g->W;
    float *y = out + (size_t)b * g->Cout * P;
    const float *col = x;
    if (!pointwise) {
      im2col(work, x, g, Ho, Wo);
      col = work;
    }
    if (bias) {
      for (int o = 0; o < g->Cout; o++)
        for (int p = 0; p < P; p++) y[(size_t)o * P + p] = bias[o];
    }
    gemm(false, false, g->Cout, P, K, 1.0f, w, K, col, P, bias ? 1.0f : 0.0f, y, P);
  }
}

void conv2d_backward(float *din, float *dw, float *dbias, const float *dout, const float *in, const float *w,
                     const Conv2dGeom *g, float *work) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const int pointwise = is_pointwise(g);
  for (int b = 0; b < g->B; b++) {
    const float *x = in + (size_t)b * g->Cin * g->H * g->W;
    const float *dy = dout + (size_t)b * g->Cout * P;
    if (dbias) {
      for (int o = 0; o < g->Cout; o++) {
        double s = 0.0;
        for (int p = 0; p < P; p++) s += dy[(size_t)o * P + p];
        dbias[o] += (float)s;
      }
    }
    if (dw) {
      const float *col = x;
      if (!pointwise) {
        im2col(work, x, g, Ho, Wo);
        col = work;
      }
      gemm(false, true, g->Cout, K, P, 1.0f, dy, P, col, P, 1.0f, dw, K);
    }
    if (din) {
      float *dx = din + (size_t)b * g->Cin * g->H * g->W;
      if (pointwise) {
        gemm(true, false, K, P, g->Cout, 1.0f, w, K, dy, P, 1.0f, dx, P);
      } else {
        gemm(true, false, K, P, g->Cout, 1.0f, w, K, dy, P, 0.0f, work, P);
        col2im_add(dx, work, g, Ho, Wo);
      }
    }
  }
}
