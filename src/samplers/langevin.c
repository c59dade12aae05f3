/* langevin.c - annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) for processes with
 * alpha = 1 (NCSN, VE SDE): for each level sigma_i of the grid, largest first, K steps
 *   x <- x + (a_i / 2) score(x, sigma_i) + sqrt(a_i) z,   a_i = eps * sigma_i^2 / sigma_last^2,
 * with score = -eps_hat / sigma, then the final denoising step x <- x + sigma_last^2 score
 * (Jolicoeur-Martineau et al. 2021; NCSNv2's denoise option). */
#include <math.h>

#include "algorithms.h"

void sample_langevin(SamplerRun *r, const double *taus) {
  const int steps = r->o->steps;
  double alpha, sigma_last;
  diffusion_marginal(r->d, taus[steps - 1], &alpha, &sigma_last);
  float *eps = r->work, *z = r->work + r->n, *x = r->x;
  for (int i = 0; i < steps; i++) {
    double sigma;
    diffusion_marginal(r->d, taus[i], &alpha, &sigma);
    const double a = r->o->step_size * (sigma * sigma) / (sigma_last * sigma_last);
    const float ce = (float)(-0.5 * a / sigma), cz = (float)sqrt(a); /* (a/2) score = -(a/2) eps/sigma */
    for (int k = 0; k < r->o->corrector_steps; k++) {
      r->den->predict_eps(r->den, eps, x, r->B, taus[i]);
      sampler_noise(r, z);
      for (size_t j = 0; j < r->n; j++) x[j] += ce * eps[j] + cz * z[j];
    }
  }
  sampler_denoise(r, taus[steps - 1], eps);
}
