/* activation.c - SiLU (Elfwing et al. 2018), ReLU and a numerically stable softmax.
 * Softmax backward: dx = y * (dy - sum_j dy_j y_j). */
#include "ops/activation.h"

#include <math.h>

#include "simd_exp.h"

void silu_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 16384)
  for (size_t i = 0; i < n; i++) y[i] = simd_silu(x[i]);
}

void silu_backward(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 16384)
  for (size_t i = 0; i < n; i++) dx[i] += dy[i] * simd_silu_grad(x[i]);
}

void silu_backward_overwrite(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 16384)
  for (size_t i = 0; i < n; i++) dx[i] = dy[i] * simd_silu_grad(x[i]);
}

void relu_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void softmax_forward(float *y, const float *x, int rows, int cols) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > 16384)
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * cols;
    float *yr = y + (size_t)r * cols;
    float mx = xr[0];
    for (int j = 1; j < cols; j++) mx = xr[j] > mx ? xr[j] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < cols; j++) {
      yr[j] = simd_expf(xr[j] - mx);
      s += yr[j];
    }
    const float inv = 1.0f / s;
    for (int j = 0; j < cols; j++) yr[j] *= inv;
  }
}

void softmax_backward(float *dx, const float *dy, const float *y, int rows, int cols) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > 16384)
  for (int r = 0; r < rows; r++) {
    const float *yr = y + (size_t)r * cols, *dyr = dy + (size_t)r * cols;
    float *dxr = dx + (size_t)r * cols;
    float dot = 0.0f;
    for (int j = 0; j < cols; j++) dot += dyr[j] * yr[j];
    for (int j = 0; j < cols; j++) dxr[j] += yr[j] * (dyr[j] - dot);
  }
}
