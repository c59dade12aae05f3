/* linear.c - nn.Linear forward/backward as GEMMs. */
#include "ops/linear.h"

#include <stddef.h>

#include "ops/gemm.h"

void linear_forward(float *y, const float *x, const float *w, const float *b, int N, int in, int out) {
  if (b) {
    for (int n = 0; n < N; n++)
      for (int o = 0; o < out; o++) y[(size_t)n * out + o] = b[o];
  }
  gemm(false, true, N, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int N,
                     int in, int out) {
  if (dx) gemm(false, false, N, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
  if (dw) gemm(true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (db) {
    for (int o = 0; o < out; o++) {
      double s = 0.0;
      for (int n = 0; n < N; n++) s += dy[(size_t)n * out + o];
      db[o] += (float)s;
    }
  }
}
