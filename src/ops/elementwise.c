/* elementwise.c - simple memory-bound kernels. */
#include "ops/elementwise.h"

#include <string.h>

#include "core/rng.h"

#define PAR_MIN 16384

void zero_floats(float *x, size_t n) {
  const size_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (n > 4 * chunk)
  for (size_t c = 0; c < n; c += chunk) memset(x + c, 0, sizeof(float) * (n - c < chunk ? n - c : chunk));
}

void add_forward(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void mul_forward(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void mul_backward(float *da, float *db, const float *dy, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    if (da) da[i] += dy[i] * b[i];
    if (db) db[i] += dy[i] * a[i];
  }
}

void scale_forward(float *y, const float *x, float alpha, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

void scale_shift(float *y, const float *x, float alpha, float beta, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) y[i] = alpha * x[i] + beta;
}

void axpby(float *y, float a, const float *x, float b, const float *z, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) y[i] = a * x[i] + b * z[i];
}

void forward_mix(float *xt, float *target, const float *x0, const float *noise, const float *coef, int B, size_t M) {
#pragma omp parallel for schedule(static) if ((size_t)B * M > PAR_MIN)
  for (int b = 0; b < B; b++) {
    const float a = coef[4 * b], s = coef[4 * b + 1], tx = coef[4 * b + 2], tn = coef[4 * b + 3];
    const float *x = x0 + (size_t)b * M, *nz = noise + (size_t)b * M;
    float *xb = xt + (size_t)b * M, *tb = target + (size_t)b * M;
    for (size_t i = 0; i < M; i++) {
      xb[i] = a * x[i] + s * nz[i];
      tb[i] = tn * nz[i] + tx * x[i]; /* this order: v = alpha eps - sigma x0 as the objective wrote it */
    }
  }
}

void axpy_accumulate(float *dx, const float *dy, float alpha, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) dx[i] += alpha * dy[i];
}

void add_channel_forward(float *y, const float *x, const float *v, int BC, int HW) {
#pragma omp parallel for schedule(static)
  for (int p = 0; p < BC; p++)
    for (int i = 0; i < HW; i++) y[(size_t)p * HW + i] = x[(size_t)p * HW + i] + v[p];
}

void add_channel_backward(float *dv, const float *dy, int BC, int HW) {
#pragma omp parallel for schedule(static)
  for (int p = 0; p < BC; p++) {
    double s = 0.0;
    for (int i = 0; i < HW; i++) s += dy[(size_t)p * HW + i];
    dv[p] += (float)s;
  }
}

void concat_channels_forward(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW) {
  const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
  for (int i = 0; i < B; i++) {
    memcpy(y + i * (na + nb), a + i * na, na * sizeof(float));
    memcpy(y + i * (na + nb) + na, b + i * nb, nb * sizeof(float));
  }
}

void concat_channels_backward(float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW) {
  const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
  for (int i = 0; i < B; i++) {
    if (da) axpy_accumulate(da + i * na, dy + i * (na + nb), 1.0f, na);
    if (db) axpy_accumulate(db + i * nb, dy + i * (na + nb) + na, 1.0f, nb);
  }
}

void channel_slice_forward(float *y, const float *x, int B, int C, int c0, int n, int HW) {
  for (int i = 0; i < B; i++) memcpy(y + (size_t)i * n * HW, x + ((size_t)i * C + c0) * HW, (size_t)n * HW * sizeof(float));
}

void channel_slice_backward(float *dx, const float *dy, int B, int C, int c0, int n, int HW) {
  for (int i = 0; i < B; i++) axpy_accumulate(dx + ((size_t)i * C + c0) * HW, dy + (size_t)i * n * HW, 1.0f, (size_t)n * HW);
}

void pool_tokens_forward(float *y, const float *x, const float *pos, int B, int C, int HW) {
  const int N = HW + 1;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      const float *xr = x + ((size_t)b * C + c) * HW, *pr = pos + (size_t)c * N;
      float *yr = y + ((size_t)b * C + c) * N;
      double mean = 0.0;
      for (int p = 0; p < HW; p++) mean += xr[p], yr[1 + p] = xr[p] + pr[1 + p];
      yr[0] = (float)(mean / HW) + pr[0];
    }
}

void pool_tokens_backward(float *dx, float *dpos, const float *dy, int B, int C, int HW) {
  const int N = HW + 1;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      const float *dr = dy + ((size_t)b * C + c) * N;
      if (dx) {
        float *xr = dx + ((size_t)b * C + c) * HW;
        const float dm = dr[0] / (float)HW;
        for (int p = 0; p < HW; p++) xr[p] += dm + dr[1 + p];
      }
      if (dpos)
        for (int j = 0; j < N; j++) dpos[(size_t)c * N + j] += dr[j];
    }
}

void first_token_forward(float *y, const float *x, int B, int C, int N) {
  for (size_t i = 0; i < (size_t)B * C; i++) y[i] = x[i * N];
}

void first_token_backward(float *dx, const float *dy, int B, int C, int N) {
  for (size_t i = 0; i < (size_t)B * C; i++) dx[i * N] += dy[i];
}

void dropout_forward(float *y, uint8_t *mask, const float *x, size_t n, float p, uint64_t seed, uint64_t stream,
                     uint64_t offset) {
  if (n == 0) return;
  const float keep_scale = 1.0f / (1.0f - p);
  const uint64_t first = offset / 4, last = (offset + n - 1) / 4;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (uint64_t q = first; q <= last; q++) {
    const RngBits bits = rng_bits(seed, stream, q);
    for (int lane = 0; lane < 4; lane++) {
      const uint64_t j = q * 4 + lane;
      if (j < offset || j >= offset + n) continue;
      const size_t i = j - offset;
      mask[i] = rng_unit(bits.v[lane]) >= p;
      y[i] = mask[i] ? x[i] * keep_scale : 0.0f;
    }
  }
}

void dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p) {
  const float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++)
    if (mask[i]) dx[i] += dy[i] * keep_scale;
}
