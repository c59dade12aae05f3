/* pool.c - pooling kernels, parallel over (image, channel) planes. */
#include "ops/pool.h"

#include <float.h>
#include <stddef.h>

#include "window_index.h"

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* col[w] = the sum (or the max) of column w of rows [h0, h1) of the plane xp (W columns). */
static void reduce_rows(float *col, const float *xp, int W, int h0, int h1, bool max) {
  for (int w = 0; w < W; w++) col[w] = xp[(size_t)h0 * W + w];
  for (int h = h0 + 1; h < h1; h++) {
    const float *row = xp + (size_t)h * W;
    if (max)
      for (int w = 0; w < W; w++) col[w] = row[w] > col[w] ? row[w] : col[w];
    else
      for (int w = 0; w < W; w++) col[w] += row[w];
  }
}

/* Forward pooling runs row by row: the input rows of an output row's window are first reduced
 * column-wise into `col` (contiguous, vectorised), then each output reduces its window's columns
 * of `col`: 2k loads per output instead of k^2. `col` is a stack array of one input row. */
void avg_pool2d_forward(float *y, const float *x, const Pool2dGeom *g, bool count_include_pad) {
  const int Ho = pool2d_out_h(g), Wo = pool2d_out_w(g), W = g->W;
  /* the divisor is (rows of oh) x (columns of ow), so one window per row and per column gives all:
   * div(oh, ow) = div(oh, 0) div(0, ow) / div(0, 0), exact in float (small integers) */
  int col_w0[Wo], col_w1[Wo], h0, h1, w0, w1;
  float col_div[Wo], div00;
  avg_pool_window(g, 0, 0, count_include_pad, &h0, &h1, &w0, &w1, &div00);
  for (int ow = 0; ow < Wo; ow++) avg_pool_window(g, 0, ow, count_include_pad, &h0, &h1, &col_w0[ow], &col_w1[ow], &col_div[ow]);
#pragma omp parallel
  {
    float col[W];
#pragma omp for schedule(static)
    for (int bc = 0; bc < g->B * g->C; bc++) {
      const float *xp = x + (size_t)bc * g->H * W;
      float *yp = y + (size_t)bc * Ho * Wo;
      for (int oh = 0; oh < Ho; oh++) {
        int r0, r1, c0, c1;
        float row_div;
        avg_pool_window(g, oh, 0, count_include_pad, &r0, &r1, &c0, &c1, &row_div);
        reduce_rows(col, xp, W, r0, r1, false);
        for (int ow = 0; ow < Wo; ow++) {
          float sum = 0.0f;
          for (int w = col_w0[ow]; w < col_w1[ow]; w++) sum += col[w];
          yp[oh * Wo + ow] = sum / (row_div * col_div[ow] / div00);
        }
      }
    }
  }
}

void avg_pool2d_backward(float *dx, const float *dy, const Pool2dGeom *g, bool count_include_pad) {
  const int Ho = pool2d_out_h(g), Wo = pool2d_out_w(g);
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < g->B * g->C; bc++) {
    float *dxp = dx + (size_t)bc * g->H * g->W;
    const float *dyp = dy + (size_t)bc * Ho * Wo;
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++) {
        int h0, h1, w0, w1;
        float div;
        avg_pool_window(g, oh, ow, count_include_pad, &h0, &h1, &w0, &w1, &div);
        const float gv = dyp[oh * Wo + ow] / div;
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) dxp[h * g->W + w] += gv;
      }
  }
}

/* With argmax (training): the first maximum in row-major window order, as PyTorch. Without
 * (inference): the row-by-row reduction of avg_pool2d_forward, the same values. */
void max_pool2d_forward(float *y, int *argmax, const float *x, const Pool2dGeom *g) {
  const int Ho = pool2d_out_h(g), Wo = pool2d_out_w(g), W = g->W;
  if (!argmax) {
#pragma omp parallel
    {
      float col[W];
#pragma omp for schedule(static)
      for (int bc = 0; bc < g->B * g->C; bc++) {
        const float *xp = x + (size_t)bc * g->H * W;
        float *yp = y + (size_t)bc * Ho * Wo;
        for (int oh = 0; oh < Ho; oh++) {
          const int hs = oh * g->stride - g->pad, h0 = imax(hs, 0), h1 = imin(hs + g->k, g->H);
          reduce_rows(col, xp, W, h0, h1, true);
          for (int ow = 0; ow < Wo; ow++) {
            const int ws = ow * g->stride - g->pad, w0 = imax(ws, 0), w1 = imin(ws + g->k, W);
            float best = col[w0];
            for (int w = w0 + 1; w < w1; w++) best = col[w] > best ? col[w] : best;
            yp[oh * Wo + ow] = best;
          }
        }
      }
    }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < g->B * g->C; bc++) {
    const float *xp = x + (size_t)bc * g->H * W;
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++) {
        const int hs = oh * g->stride - g->pad, ws = ow * g->stride - g->pad;
        float best = -FLT_MAX;
        int best_i = -1;
        for (int h = imax(hs, 0); h < imin(hs + g->k, g->H); h++)
          for (int w = imax(ws, 0); w < imin(ws + g->k, W); w++)
            if (best_i < 0 || xp[h * W + w] > best) best = xp[h * W + w], best_i = h * W + w;
        const size_t o = (size_t)bc * Ho * Wo + (size_t)oh * Wo + ow;
        y[o] = best;
        argmax[o] = best_i;
      }
  }
}

void max_pool2d_backward(float *dx, const float *dy, const int *argmax, const Pool2dGeom *g) {
  const int Ho = pool2d_out_h(g), Wo = pool2d_out_w(g);
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < g->B * g->C; bc++) {
    float *dxp = dx + (size_t)bc * g->H * g->W;
    for (int o = 0; o < Ho * Wo; o++) {
      const size_t idx = (size_t)bc * Ho * Wo + o;
      dxp[argmax[idx]] += dy[idx];
    }
  }
}

void global_avg_pool_forward(float *y, const float *x, int B, int C, int HW) {
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < B * C; bc++) {
    double s = 0.0;
    for (int i = 0; i < HW; i++) s += x[(size_t)bc * HW + i];
    y[bc] = (float)(s / HW);
  }
}

void global_avg_pool_backward(float *dx, const float *dy, int B, int C, int HW) {
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < B * C; bc++) {
    const float gv = dy[bc] / (float)HW;
    for (int i = 0; i < HW; i++) dx[(size_t)bc * HW + i] += gv;
  }
}
