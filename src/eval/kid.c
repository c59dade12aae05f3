/* kid.c - Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel over random
 * subsets (see kid.h). */
#include "eval/kid.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/rng.h"
#include "ops/gemm.h"

#define KID_STREAM 0x4B49440000000000ull /* "KID": the subset draws */

/* Sum of k(a_i, b_j) = (a_i . b_j / dim + 1)^3 over all (i, j), or over i != j when a and b are the
 * same set; dots is (m, m) scratch. */
static double kernel_sum(const float *a, const float *b, int m, int dim, int same, float *dots) {
  gemm(false, true, m, m, dim, 1.0f / (float)dim, a, dim, b, dim, 0.0f, dots, m);
  double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (int i = 0; i < m; i++) {
    double row = 0.0;
    for (int j = 0; j < m; j++) {
      if (same && i == j) continue;
      const double k = (double)dots[(size_t)i * m + j] + 1.0;
      row += k * k * k;
    }
    total += row;
  }
  return total;
}

static double mmd2_with(const float *x, const float *y, int m, int dim, float *dots) {
  const double xx = kernel_sum(x, x, m, dim, 1, dots), yy = kernel_sum(y, y, m, dim, 1, dots);
  const double xy = kernel_sum(x, y, m, dim, 0, dots);
  return (xx + yy) / ((double)m * (m - 1)) - 2.0 * xy / ((double)m * m);
}

double kid_mmd2(const float *x, const float *y, int m, int dim) {
  CHECK(m >= 2 && dim >= 1);
  float *dots = xmalloc((size_t)m * m * sizeof(float));
  const double v = mmd2_with(x, y, m, dim, dots);
  free(dots);
  return v;
}

/* m rows of f (n, dim) drawn without replacement (a partial Fisher-Yates shuffle of perm, which holds
 * a permutation of 0..n-1 and stays one), copied to out (m, dim). */
static void draw_subset(float *out, const float *f, long n, int dim, int m, long *perm, uint64_t seed, uint64_t draw) {
  for (int i = 0; i < m; i++) {
    const RngBits r = rng_bits(seed, KID_STREAM + draw, (uint64_t)i);
    const uint64_t u = ((uint64_t)r.v[0] << 32) | r.v[1];
    const long j = i + (long)(u % (uint64_t)(n - i));
    const long t = perm[i];
    perm[i] = perm[j], perm[j] = t;
    const float *src = f + (size_t)perm[i] * dim;
    float *dst = out + (size_t)i * dim;
    for (int d = 0; d < dim; d++) dst[d] = src[d];
  }
}

void kernel_inception_distance(const float *f1, long n1, const float *f2, long n2, int dim, int subsets,
                               int subset_size, uint64_t seed, double *mean, double *std) {
  const int m = subset_size;
  CHECK(subsets >= 1 && m >= 2 && m <= n1 && m <= n2 && dim >= 1);
  long *perm1 = xmalloc((size_t)n1 * sizeof(long)), *perm2 = xmalloc((size_t)n2 * sizeof(long));
  for (long i = 0; i < n1; i++) perm1[i] = i;
  for (long i = 0; i < n2; i++) perm2[i] = i;
  float *x = xmalloc((size_t)m * dim * sizeof(float)), *y = xmalloc((size_t)m * dim * sizeof(float));
  float *dots = xmalloc((size_t)m * m * sizeof(float));
  double *mmd = xmalloc((size_t)subsets * sizeof(double)), sum = 0.0;
  for (int s = 0; s < subsets; s++) {
    draw_subset(x, f1, n1, dim, m, perm1, seed, 2 * (uint64_t)s);
    draw_subset(y, f2, n2, dim, m, perm2, seed, 2 * (uint64_t)s + 1);
    mmd[s] = mmd2_with(x, y, m, dim, dots);
    sum += mmd[s];
  }
  *mean = sum / subsets;
  double var = 0.0;
  for (int s = 0; s < subsets; s++) var += (mmd[s] - *mean) * (mmd[s] - *mean);
  *std = sqrt(var / subsets);
  free(perm1), free(perm2), free(x), free(y), free(dots), free(mmd);
}
