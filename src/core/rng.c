/* rng.c - Philox4x32-10 counter-based generator (Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3", SC 2011). Counter = (index lo, index hi, stream lo, stream hi), key = seed. */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

RngBits rng_bits(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32);
  uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  RngBits b = {{c0, c1, c2, c3}};
  return b;
}

float rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return rng_unit(rng_bits(seed, stream, index).v[0]);
}

float rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  RngBits b = rng_bits(seed, stream, index);
  /* u1 in (0, 1] so the log is finite; computed in double for an accurate tail. */
  double u1 = ((double)(b.v[0] >> 8) + 1.0) * (1.0 / 16777216.0);
  double u2 = (double)b.v[1] * (1.0 / 4294967296.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void rng_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > 4096)
  for (size_t i = 0; i < n; i++) out[i] = rng_uniform(seed, stream, offset + i);
}

void rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > 4096)
  for (size_t i = 0; i < n; i++) out[i] = rng_normal(seed, stream, offset + i);
}

void rng_fill_rademacher(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > 4096)
  for (size_t i = 0; i < n; i++) out[i] = (rng_bits(seed, stream, offset + i).v[0] & 1u) ? 1.0f : -1.0f;
}

double normal_quantile(double p) {
  static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                              1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                              6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                              -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                              3.754408661907416e+00};
  p = fmin(fmax(p, 1e-300), 1.0 - 0x1p-53);
  double x;
  if (p < 0.02425) {
    const double q = sqrt(-2.0 * log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  } else if (p <= 1.0 - 0.02425) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
  } else {
    const double q = sqrt(-2.0 * log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  }
  /* one Halley step: e = Phi(x) - p */
  const double e = 0.5 * erfc(-x / sqrt(2.0)) - p, u = e * sqrt(2.0 * M_PI) * exp(0.5 * x * x);
  return x - u / (1.0 + 0.5 * x * u);
}
