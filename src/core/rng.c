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
