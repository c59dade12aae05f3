/* kid.h - Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"), as
 * torch-fidelity computes it (metric_kid.py, after MMD-GAN's compute_scores.py).
 *
 * For feature sets X, Y of m rows each, with the cubic polynomial kernel
 *   k(x, y) = (x . y / dim + 1)^3,
 * the unbiased estimator of the squared MMD is
 *   MMD^2 = (sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i,j} k(x_i, y_j) / m^2.
 * KID draws `subsets` pairs of subsets of `subset_size` rows, each without replacement (a subset of
 * X and one of Y, independently), and reports the mean and the population std of their MMD^2.
 * torch-fidelity's defaults: 100 subsets of 1000. The draws use diffuse's counter-based generator,
 * not NumPy's, so the subsets (not the estimator) differ from torch-fidelity's.
 * Products are float32 GEMMs (as NumPy's on float32 features), kernel values and sums in double.
 */
#ifndef DIFFUSE_EVAL_KID_H
#define DIFFUSE_EVAL_KID_H

#include <stddef.h>
#include <stdint.h>

#define KID_SUBSETS 100
#define KID_SUBSET_SIZE 1000

/* Unbiased MMD^2 of x (m, dim) and y (m, dim), m >= 2. */
double kid_mmd2(const float *x, const float *y, int m, int dim);

/* KID of f1 (n1, dim) and f2 (n2, dim): subset_size <= min(n1, n2), >= 2; subsets >= 1. The draws
 * are a pure function of seed. */
void kernel_inception_distance(const float *f1, long n1, const float *f2, long n2, int dim, int subsets,
                               int subset_size, uint64_t seed, double *mean, double *std);

#endif
