/* fid.h - Frechet Inception Distance and Inception Score from features.
 *
 * FID (Heusel et al. 2017), as pytorch-fid computes it: for feature sets with means mu1, mu2 and
 * covariances S1, S2 (unbiased, N - 1),
 *   FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
 * The trace of the square root is sum_i sqrt(l_i) over the eigenvalues l_i of the symmetric
 * PSD matrix S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2; both square roots come
 * from symmetric eigendecompositions (LAPACK dsyevd) with round-off negatives clamped to 0, so
 * near-singular covariances (fewer samples than dimensions) need no epsilon.
 * Feature statistics accumulate in double, in batches (sum and sum of outer products via dsyrk).
 *
 * Inception Score (Salimans et al. 2016), as the original implementation: p(y|x) = softmax of the
 * logits, the samples cut into `splits` consecutive parts [i N / s, (i+1) N / s), per part
 * exp(mean_x KL(p(y|x) || p(y))), reported as the mean and (population) std over the parts.
 */
#ifndef DIFFUSE_EVAL_FID_H
#define DIFFUSE_EVAL_FID_H

#include <stddef.h>

typedef struct {
  int dim;
  long n;
  double *sum;   /* (dim) */
  double *outer; /* (dim, dim), upper triangle accumulated */
  double *batch; /* (FEATURE_BATCH, dim) staging in double */
  int pending;
} FeatureStats;

void feature_stats_init(FeatureStats *s, int dim);
void feature_stats_free(FeatureStats *s);
/* Add B feature rows (B, dim). */
void feature_stats_add(FeatureStats *s, const float *features, int B);
/* mu (dim), sigma (dim, dim) with the N - 1 normalisation; needs n >= 2. 0, or -1 + message. */
int feature_stats_finish(FeatureStats *s, double *mu, double *sigma, char *err, size_t errlen);

/* FID between two Gaussians. 0, or -1 + message (non-finite input, LAPACK failure). */
int frechet_distance(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2, int dim,
                     double *fid, char *err, size_t errlen);

/* The Inception Score's logits of B pool3 feature rows: pool3 (B, 2048) times the fc weight
 * (1008, 2048) transposed, without the fc bias, as the original implementation. */
void inception_score_logits(float *logits /* (B, 1008) */, const float *pool3 /* (B, 2048) */, int B,
                            const float *fc_weight);
/* Inception Score of N rows of logits (N, classes), 1 <= splits <= N. */
void inception_score(const float *logits, long N, int classes, int splits, double *mean, double *std);

#endif
