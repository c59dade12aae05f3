/* resample.c - nearest-neighbour x2 upsampling and bilinear resize (align_corners=False; the source
 * index arithmetic, shared with the CUDA kernels, is in window_index.h). */
#include "ops/resample.h"

#include <stddef.h>

#include "window_index.h"

void upsample_nearest2x_forward(float *y, const float *x, int BC, int H, int W) {
#pragma omp parallel for schedule(static)
  for (int p = 0; p < BC; p++) {
    const float *xp = x + (size_t)p * H * W;
    float *yp = y + (size_t)p * 4 * H * W;
    for (int h = 0; h < 2 * H; h++)
      for (int w = 0; w < 2 * W; w++) yp[(size_t)h * 2 * W + w] = xp[(h / 2) * W + w / 2];
  }
}

void upsample_nearest2x_backward(float *dx, const float *dy, int BC, int H, int W) {
#pragma omp parallel for schedule(static)
  for (int p = 0; p < BC; p++) {
    float *dxp = dx + (size_t)p * H * W;
    const float *dyp = dy + (size_t)p * 4 * H * W;
    for (int h = 0; h < H; h++)
      for (int w = 0; w < W; w++) {
        const float *r0 = dyp + (size_t)(2 * h) * 2 * W + 2 * w, *r1 = r0 + 2 * W;
        dxp[h * W + w] += r0[0] + r0[1] + r1[0] + r1[1];
      }
  }
}

void bilinear_resize_forward(float *y, const float *x, int BC, int H, int W, int Ho, int Wo) {
#pragma omp parallel for schedule(static)
  for (int p = 0; p < BC; p++) {
    const float *xp = x + (size_t)p * H * W;
    float *yp = y + (size_t)p * Ho * Wo;
    for (int oh = 0; oh < Ho; oh++) {
      int h0, h1;
      float lh;
      bilinear_source_index(oh, H, Ho, &h0, &h1, &lh);
      for (int ow = 0; ow < Wo; ow++) {
        int w0, w1;
        float lw;
        bilinear_source_index(ow, W, Wo, &w0, &w1, &lw);
        const float top = (1.0f - lw) * xp[h0 * W + w0] + lw * xp[h0 * W + w1];
        const float bot = (1.0f - lw) * xp[h1 * W + w0] + lw * xp[h1 * W + w1];
        yp[(size_t)oh * Wo + ow] = (1.0f - lh) * top + lh * bot;
      }
    }
  }
}
