/* window_index.h - the index arithmetic of resampling and pooling, shared by the CPU kernels
 * (resample.c, pool.c) and the CUDA kernels (src/backend/cuda.cu), which cannot call host functions:
 * one definition, so both backends pick the same source pixels and divisors. Private to the kernels
 * and the backends. */
#ifndef DIFFUSE_OPS_WINDOW_INDEX_H
#define DIFFUSE_OPS_WINDOW_INDEX_H

#include <stdbool.h>

#include "core/shapes.h"

#ifdef __CUDACC__
#define WINDOW_FN static inline __host__ __device__
#else
#define WINDOW_FN static inline
#endif

/* Bilinear source coordinate (align_corners=False): src = (dst + 0.5) * in/out - 0.5, clamped at 0,
 * as PyTorch's area_pixel_compute_source_index; the two neighbours i0 <= i1 and the weight of i1. */
WINDOW_FN void bilinear_source_index(int dst, int in, int out, int *i0, int *i1, float *lambda) {
  const float scale = (float)in / (float)out;
  float src = scale * ((float)dst + 0.5f) - 0.5f;
  if (src < 0.0f) src = 0.0f;
  int i = (int)src;
  if (i > in - 1) i = in - 1;
  *i0 = i;
  *i1 = i < in - 1 ? i + 1 : i;
  *lambda = src - (float)i;
}

/* Average-pool window of output (oh, ow) clipped to the image: [h0, h1) x [w0, w1); *divisor as
 * PyTorch's (the padded window's area with count_include_pad, else the in-image pixels). */
WINDOW_FN void avg_pool_window(const Pool2dGeom *g, int oh, int ow, bool include_pad, int *h0, int *h1, int *w0,
                               int *w1, float *divisor) {
  int hs = oh * g->stride - g->pad, ws = ow * g->stride - g->pad;
  int he = hs + g->k < g->H + g->pad ? hs + g->k : g->H + g->pad;
  int we = ws + g->k < g->W + g->pad ? ws + g->k : g->W + g->pad;
  const int padded_area = (he - hs) * (we - ws);
  hs = hs > 0 ? hs : 0, ws = ws > 0 ? ws : 0;
  he = he < g->H ? he : g->H, we = we < g->W ? we : g->W;
  *h0 = hs, *h1 = he, *w0 = ws, *w1 = we;
  *divisor = (float)(include_pad ? padded_area : (he - hs) * (we - ws));
}

#endif
