/* precision_recall.c - improved precision and recall from k-NN balls (see precision_recall.h).
 * Pairwise distances come in tiles of PR_TILE x PR_TILE from one GEMM each, so memory stays
 * O(PR_TILE^2) for any number of images. */
#include "eval/precision_recall.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ops/gemm.h"

#define PR_TILE 1024

static void squared_norms(float *out, const float *f, long n, int dim) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    double s = 0.0;
    for (int d = 0; d < dim; d++) s += (double)f[(size_t)i * dim + d] * f[(size_t)i * dim + d];
    out[i] = (float)s;
  }
}

/* dist (ra, cb): squared distances of rows a (ra, dim) to rows b (cb, dim). */
static void distance_tile(float *dist, const float *a, const float *na, int ra, const float *b, const float *nb, int cb,
                          int dim) {
  gemm(false, true, ra, cb, dim, -2.0f, a, dim, b, dim, 0.0f, dist, cb);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < ra; i++)
    for (int j = 0; j < cb; j++) {
      const float d = dist[(size_t)i * cb + j] + na[i] + nb[j];
      dist[(size_t)i * cb + j] = d > 0.0f ? d : 0.0f;
    }
}

/* radius[i] = the (k+1)-th smallest distance of row i to every row of f (itself included). */
static void knn_radii(float *radius, const float *f, const float *norms, long n, int dim, int k, float *tile) {
  float *best = xmalloc((size_t)PR_TILE * (k + 1) * sizeof(float)); /* per row, ascending */
  for (long r0 = 0; r0 < n; r0 += PR_TILE) {
    const int ra = n - r0 < PR_TILE ? (int)(n - r0) : PR_TILE;
    for (size_t i = 0; i < (size_t)ra * (k + 1); i++) best[i] = 3.4e38f;
    for (long c0 = 0; c0 < n; c0 += PR_TILE) {
      const int cb = n - c0 < PR_TILE ? (int)(n - c0) : PR_TILE;
      distance_tile(tile, f + (size_t)r0 * dim, norms + r0, ra, f + (size_t)c0 * dim, norms + c0, cb, dim);
#pragma omp parallel for schedule(static)
      for (int i = 0; i < ra; i++) {
        float *b = best + (size_t)i * (k + 1);
        for (int j = 0; j < cb; j++) {
          const float d = tile[(size_t)i * cb + j];
          if (d >= b[k]) continue;
          int p = k; /* insert d, keeping b ascending */
          while (p > 0 && b[p - 1] > d) b[p] = b[p - 1], p--;
          b[p] = d;
        }
      }
    }
    for (int i = 0; i < ra; i++) radius[r0 + i] = best[(size_t)i * (k + 1) + k];
  }
  free(best);
}

void precision_recall(const float *real, long n_real, const float *fake, long n_fake, int dim, int k,
                      double *precision, double *recall) {
  CHECK(k >= 1 && n_real > k && n_fake > k && dim >= 1);
  float *nr = xmalloc((size_t)n_real * sizeof(float)), *nf = xmalloc((size_t)n_fake * sizeof(float));
  float *rr = xmalloc((size_t)n_real * sizeof(float)), *rf = xmalloc((size_t)n_fake * sizeof(float));
  float *tile = xmalloc((size_t)PR_TILE * PR_TILE * sizeof(float));
  squared_norms(nr, real, n_real, dim);
  squared_norms(nf, fake, n_fake, dim);
  knn_radii(rr, real, nr, n_real, dim, k, tile);
  knn_radii(rf, fake, nf, n_fake, dim, k, tile);
  bool *fake_in = calloc((size_t)n_fake, 1), *real_in = calloc((size_t)n_real, 1);
  CHECK(fake_in && real_in);
  for (long f0 = 0; f0 < n_fake; f0 += PR_TILE) {
    const int fa = n_fake - f0 < PR_TILE ? (int)(n_fake - f0) : PR_TILE;
    for (long r0 = 0; r0 < n_real; r0 += PR_TILE) {
      const int rb = n_real - r0 < PR_TILE ? (int)(n_real - r0) : PR_TILE;
      distance_tile(tile, fake + (size_t)f0 * dim, nf + f0, fa, real + (size_t)r0 * dim, nr + r0, rb, dim);
      for (int i = 0; i < fa; i++)
        for (int j = 0; j < rb; j++) {
          const float d = tile[(size_t)i * rb + j];
          if (d <= rr[r0 + j]) fake_in[f0 + i] = true;
          if (d <= rf[f0 + i]) real_in[r0 + j] = true;
        }
    }
  }
  long nf_in = 0, nr_in = 0;
  for (long i = 0; i < n_fake; i++) nf_in += fake_in[i];
  for (long j = 0; j < n_real; j++) nr_in += real_in[j];
  *precision = (double)nf_in / n_fake;
  *recall = (double)nr_in / n_real;
  free(nr), free(nf), free(rr), free(rf), free(tile), free(fake_in), free(real_in);
}
