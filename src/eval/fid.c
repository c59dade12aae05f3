/* fid.c - feature statistics, Frechet distance and Inception Score; see fid.h. */
#include "eval/fid.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/inception.h"
#include "ops/gemm.h"

#define FEATURE_BATCH 256

/* LAPACK (from OpenBLAS): eigenvalues (jobz 'N') or eigenpairs ('V') of a symmetric matrix. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
             const int *lwork, int *iwork, const int *liwork, int *info);

void feature_stats_init(FeatureStats *s, int dim) {
  s->dim = dim;
  s->n = 0;
  s->pending = 0;
  s->sum = xmalloc((size_t)dim * sizeof(double));
  s->outer = xmalloc((size_t)dim * dim * sizeof(double));
  s->batch = xmalloc((size_t)FEATURE_BATCH * dim * sizeof(double));
  memset(s->sum, 0, (size_t)dim * sizeof(double));
  memset(s->outer, 0, (size_t)dim * dim * sizeof(double));
}

void feature_stats_free(FeatureStats *s) {
  free(s->sum), free(s->outer), free(s->batch);
  memset(s, 0, sizeof *s);
}

static void flush(FeatureStats *s) {
  if (!s->pending) return;
  /* outer += X^T X over the staged rows (upper triangle, row-major) */
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, s->dim, s->pending, 1.0, s->batch, s->dim, 1.0, s->outer, s->dim);
  s->pending = 0;
}

void feature_stats_add(FeatureStats *s, const float *features, int B) {
  for (int b = 0; b < B; b++) {
    double *row = s->batch + (size_t)s->pending * s->dim;
    const float *f = features + (size_t)b * s->dim;
    for (int j = 0; j < s->dim; j++) row[j] = f[j], s->sum[j] += f[j];
    s->n++;
    if (++s->pending == FEATURE_BATCH) flush(s);
  }
}

int feature_stats_finish(FeatureStats *s, double *mu, double *sigma, char *err, size_t errlen) {
  if (s->n < 2) return errorf(err, errlen, "need at least 2 images for a covariance (got %ld)", s->n);
  flush(s);
  const int d = s->dim;
  const double n = (double)s->n;
  for (int i = 0; i < d; i++) mu[i] = s->sum[i] / n;
  /* sigma = (sum x x^T - n mu mu^T) / (n - 1); the sums are over features of O(1), in double */
  for (int i = 0; i < d; i++)
    for (int j = i; j < d; j++) {
      const double v = (s->outer[(size_t)i * d + j] - n * mu[i] * mu[j]) / (n - 1.0);
      sigma[(size_t)i * d + j] = sigma[(size_t)j * d + i] = v;
    }
  return 0;
}

/* Eigen-decomposition of the symmetric a (n, n), overwritten by the eigenvectors (rows, in the
 * row-major view) when vectors; w gets the eigenvalues ascending. 0 or LAPACK's info. */
static int sym_eig(double *a, double *w, int n, int vectors) {
  int lwork = -1, liwork = -1, info = 0, iw;
  double wq;
  const char *jobz = vectors ? "V" : "N";
  dsyevd_(jobz, "U", &n, a, &n, w, &wq, &lwork, &iw, &liwork, &info);
  if (info) return info;
  lwork = (int)wq, liwork = iw;
  double *work = xmalloc((size_t)lwork * sizeof(double));
  int *iwork = xmalloc((size_t)liwork * sizeof(int));
  dsyevd_(jobz, "U", &n, a, &n, w, work, &lwork, iwork, &liwork, &info);
  free(work), free(iwork);
  return info;
}

int frechet_distance(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2, int dim,
                     double *fid, char *err, size_t errlen) {
  const size_t dd = (size_t)dim * dim;
  for (size_t i = 0; i < dd; i++)
    if (!isfinite(sigma1[i]) || !isfinite(sigma2[i])) return errorf(err, errlen, "non-finite covariance entry");
  double diff2 = 0, tr1 = 0, tr2 = 0;
  for (int i = 0; i < dim; i++) {
    if (!isfinite(mu1[i]) || !isfinite(mu2[i])) return errorf(err, errlen, "non-finite mean entry");
    diff2 += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    tr1 += sigma1[(size_t)i * dim + i], tr2 += sigma2[(size_t)i * dim + i];
  }
  double *v = xmalloc(dd * sizeof(double)), *w = xmalloc((size_t)dim * sizeof(double));
  double *root = xmalloc(dd * sizeof(double)), *t = xmalloc(dd * sizeof(double));
  memcpy(v, sigma1, dd * sizeof(double));
  int info = sym_eig(v, w, dim, 1);
  if (!info) {
    /* sqrt(S1) = sum_k sqrt(l_k) v_k v_k^T = U^T U with rows U_k = l_k^(1/4) v_k */
    for (int k = 0; k < dim; k++) {
      const double s = sqrt(sqrt(fmax(w[k], 0.0)));
      for (int j = 0; j < dim; j++) v[(size_t)k * dim + j] *= s;
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dim, dim, dim, 1.0, v, dim, v, dim, 0.0, root, dim);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, root, dim, sigma2, dim, 0.0, t, dim);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, t, dim, root, dim, 0.0, v, dim);
    for (int i = 0; i < dim; i++) /* symmetrise the round-off */
      for (int j = i + 1; j < dim; j++) v[(size_t)i * dim + j] = v[(size_t)j * dim + i] = 0.5 * (v[(size_t)i * dim + j] + v[(size_t)j * dim + i]);
    info = sym_eig(v, w, dim, 0);
  }
  double tr_root = 0;
  for (int k = 0; k < dim && !info; k++) tr_root += sqrt(fmax(w[k], 0.0));
  free(v), free(w), free(root), free(t);
  if (info) return errorf(err, errlen, "eigendecomposition failed (LAPACK dsyevd info %d)", info);
  *fid = diff2 + tr1 + tr2 - 2.0 * tr_root;
  return 0;
}

void inception_score_logits(float *logits, const float *pool3, int B, const float *fc_weight) {
  gemm(false, true, B, INCEPTION_NUM_CLASSES, INCEPTION_POOL3_DIM, 1.0f, pool3, INCEPTION_POOL3_DIM, fc_weight, INCEPTION_POOL3_DIM, 0.0f, logits,
       INCEPTION_NUM_CLASSES);
}

void inception_score(const float *logits, long N, int classes, int splits, double *mean, double *std) {
  CHECK(splits >= 1 && N >= splits); /* an empty split has no score */
  double *p = xmalloc((size_t)classes * sizeof(double)), *py = xmalloc((size_t)classes * sizeof(double));
  double *scores = xmalloc((size_t)splits * sizeof(double));
  for (int s = 0; s < splits; s++) {
    const long lo = s * N / splits, hi = (s + 1) * N / splits;
    memset(py, 0, (size_t)classes * sizeof(double));
    for (int pass = 0; pass < 2; pass++) { /* pass 0: p(y) of the part; pass 1: the mean KL */
      double kl = 0;
      for (long i = lo; i < hi; i++) {
        const float *l = logits + (size_t)i * classes;
        double mx = -INFINITY, z = 0;
        for (int c = 0; c < classes; c++) mx = fmax(mx, l[c]);
        for (int c = 0; c < classes; c++) z += p[c] = exp(l[c] - mx);
        for (int c = 0; c < classes; c++) {
          p[c] /= z;
          if (pass == 0) py[c] += p[c] / (double)(hi - lo);
          else if (p[c] > 0) kl += p[c] * (log(p[c]) - log(py[c]));
        }
      }
      if (pass == 1) scores[s] = exp(kl / (double)(hi - lo));
    }
  }
  double m = 0, v = 0;
  for (int s = 0; s < splits; s++) m += scores[s] / splits;
  for (int s = 0; s < splits; s++) v += (scores[s] - m) * (scores[s] - m) / splits;
  *mean = m, *std = sqrt(v);
  free(p), free(py), free(scores);
}
