/* pool.c - pooling kernels, parallel over (image, channel) planes. */
#include "ops/pool.h"

#include <float.h>
#include <stddef.h>

#include "window_index.h"

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

void avg_pool2d_forward(float *y, const float *x, const Pool2dGeom *g, bool count_include_pad) {
  const int Ho = pool2d_out_h(g), Wo = pool2d_out_w(g);
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < g->B * g->C; bc++) {
    const float *xp = x + (size_t)bc * g->H * g->W;
    float *yp = y + (size_t)bc * Ho * Wo;
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++) {
        int h0, h1, w0, w1;
        float div;
        avg_pool_window(g, oh, ow, count_include_pad, &h0, &h1, &w0, &w1, &div);
        float s = 0.0f;
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) s += xp[h * g->W + w];
        yp[oh * Wo + ow] = s / div;
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

void max_pool2d_forward(float *y, int *argmax, const float *x, const Pool2dGeom *g) {
  const int Ho = pool2d_out_h(g), Wo = pool2d_out_w(g);
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < g->B * g->C; bc++) {
    const float *xp = x + (size_t)bc * g->H * g->W;
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++) {
        const int hs = oh * g->stride - g->pad, ws = ow * g->stride - g->pad;
        float best = -FLT_MAX;
        int best_i = -1;
        for (int h = imax(hs, 0); h < imin(hs + g->k, g->H); h++)
          for (int w = imax(ws, 0); w < imin(ws + g->k, g->W); w++)
            if (best_i < 0 || xp[h * g->W + w] > best) best = xp[h * g->W + w], best_i = h * g->W + w;
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
