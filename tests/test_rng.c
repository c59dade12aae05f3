/* test_rng.c - counter-based RNG: thread-count and split invariance, and the moments of 1e6 draws. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/rng.h"
#include "test_util.h"

#define N 1000000

static void set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

int main(void) {
  float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));

  /* identical for 1 and 2 threads */
  set_threads(1);
  rng_fill_normal(a, N, 7, 3, 0);
  set_threads(2);
  rng_fill_normal(b, N, 7, 3, 0);
  EXPECT(memcmp(a, b, N * sizeof(float)) == 0, "normal draws differ between 1 and 2 threads");
  set_threads(1);
  rng_fill_uniform(a, N, 7, 3, 0);
  set_threads(2);
  rng_fill_uniform(b, N, 7, 3, 0);
  EXPECT(memcmp(a, b, N * sizeof(float)) == 0, "uniform draws differ between 1 and 2 threads");

  /* identical however the range is split (a batch drawn in two halves) */
  rng_fill_normal(a, N, 11, 5, 100);
  rng_fill_normal(b, N / 3, 11, 5, 100);
  rng_fill_normal(b + N / 3, N - N / 3, 11, 5, 100 + N / 3);
  EXPECT(memcmp(a, b, N * sizeof(float)) == 0, "split fill differs from one fill");

  /* streams and seeds give different sequences */
  rng_fill_normal(b, N, 11, 6, 100);
  EXPECT(memcmp(a, b, 64 * sizeof(float)) != 0, "streams 5 and 6 coincide");

  /* moments of N(0,1): std error of the mean 1/sqrt(N) = 1e-3, of the variance sqrt(2/N) = 1.4e-3;
   * bounds at 5 standard errors */
  rng_fill_normal(a, N, 2024, 0, 0);
  double s = 0, ss = 0, s4 = 0;
  for (int i = 0; i < N; i++) s += a[i];
  const double mean = s / N;
  for (int i = 0; i < N; i++) {
    const double d = a[i] - mean;
    ss += d * d, s4 += d * d * d * d;
    EXPECT(isfinite(a[i]), "non-finite normal at %d", i);
  }
  const double var = ss / (N - 1), kurt = (s4 / N) / (var * var);
  EXPECT(fabs(mean) < 5e-3, "normal mean %.5f", mean);
  EXPECT(fabs(var - 1.0) < 5 * sqrt(2.0 / N), "normal variance %.5f", var);
  EXPECT(fabs(kurt - 3.0) < 5 * sqrt(24.0 / N), "normal kurtosis %.4f", kurt);

  /* uniform: mean 1/2 (se 0.289/sqrt(N)), variance 1/12, range [0,1) */
  rng_fill_uniform(a, N, 2024, 1, 0);
  s = ss = 0;
  int in_range = 1;
  for (int i = 0; i < N; i++) s += a[i], in_range &= (a[i] >= 0.0f && a[i] < 1.0f);
  const double umean = s / N;
  for (int i = 0; i < N; i++) ss += (a[i] - umean) * (a[i] - umean);
  EXPECT(in_range, "uniform draw outside [0,1)");
  EXPECT(fabs(umean - 0.5) < 5 * 0.2887 / sqrt(N), "uniform mean %.5f", umean);
  EXPECT(fabs(ss / N - 1.0 / 12) < 5e-4, "uniform variance %.5f", ss / N);

  /* rademacher: values +-1 with mean ~ 0 */
  rng_fill_rademacher(a, N, 5, 0, 0);
  s = 0;
  for (int i = 0; i < N; i++) {
    EXPECT(a[i] == 1.0f || a[i] == -1.0f, "rademacher value %g", a[i]);
    s += a[i];
  }
  EXPECT(fabs(s / N) < 5.0 / sqrt(N), "rademacher mean %.5f", s / N);

  free(a);
  free(b);
  return test_report("rng");
}
