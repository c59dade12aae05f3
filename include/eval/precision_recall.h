/* precision_recall.h - improved precision and recall (Kynkaanniemi et al. 2019), as
 * guided-diffusion's evaluator computes them (evaluations/evaluator.py, ManifoldEstimator after
 * kynkaat/improved-precision-and-recall-metric) on pool3 features.
 *
 * Distances are squared Euclidean, max(|u|^2 - 2 u.v + |v|^2, 0). Each set's manifold is the union of
 * balls around its points whose radius is the distance to the k-th nearest neighbour (k = 3; the
 * point itself is the 0th, as the evaluator's partition of a row that includes it). Precision is the
 * fraction of generated points inside the real manifold (d(g, r_j) <= radius_j for some real j),
 * recall the fraction of real points inside the generated one. The evaluator computes distances in
 * float16 first (float32 if that overflows); here they are float32 GEMMs.
 */
#ifndef DIFFUSE_EVAL_PRECISION_RECALL_H
#define DIFFUSE_EVAL_PRECISION_RECALL_H

#define PR_NEIGHBOURS 3

/* real (n_real, dim), fake (n_fake, dim), both > k rows -> precision, recall in [0, 1]. */
void precision_recall(const float *real, long n_real, const float *fake, long n_fake, int dim, int k,
                      double *precision, double *recall);

#endif
