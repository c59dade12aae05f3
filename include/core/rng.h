/* rng.h - counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
 *
 * Every draw is a pure function of (seed, stream, index): element i of a fill is draw
 * (seed, stream, offset + i). Results therefore do not depend on the thread count, on how a
 * batch is split, or on the order in which elements are produced. Callers choose streams so that
 * independent uses (initial noise of sample k, dropout of layer l at step s, ...) never collide.
 */
#ifndef DIFFUSE_CORE_RNG_H
#define DIFFUSE_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t v[4];
} RngBits;

RngBits rng_bits(uint64_t seed, uint64_t stream, uint64_t index);
/* One 32-bit word as a float in [0, 1) with 24-bit resolution. */
static inline float rng_unit(uint32_t word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }
float rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);  /* rng_unit of word 0 */
float rng_normal(uint64_t seed, uint64_t stream, uint64_t index);   /* N(0, 1), Box-Muller */
/* Phi^-1(p), the standard normal quantile, for p in (0, 1) (Acklam's rational approximation and one
 * Halley step on erfc: ~1e-15 relative); p is clamped to [1e-300, 1 - 2^-53]. */
double normal_quantile(double p);

void rng_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
/* out[i] = +1 or -1 with equal probability (Hutchinson probes). */
void rng_fill_rademacher(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

#endif
