/* ancestral.c - DDPM ancestral sampler; see ancestral.h. */
#include "samplers/ancestral.h"

#include <math.h>

#include "core/error.h"
#include "core/rng.h"

void ancestral_sample(const Diffusion *d, Denoiser *den, float *x, int B, size_t per_sample, AncestralVariance var,
                      bool clip_x0, uint64_t seed, uint64_t stream_base, float *work) {
  CHECK(d->kind == DIFFUSION_DDPM);
  for (int t = d->n_levels - 1; t >= 0; t--) {
    const double beta = d->betas[t], ab = d->alphas_cumprod[t], ab_prev = t > 0 ? d->alphas_cumprod[t - 1] : 1.0;
    const double var_t = var == VARIANCE_FIXED_LARGE ? beta : beta * (1.0 - ab_prev) / (1.0 - ab);
    const float s = t > 0 ? (float)sqrt(var_t) : 0.0f;
    /* posterior mean coefficients: mu = c0 * x0_hat + ct * x_t */
    const float c0 = (float)(sqrt(ab_prev) * beta / (1.0 - ab)), ct = (float)(sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab));
    const float inv_sqrt_ab = (float)(1.0 / sqrt(ab)), sqrt_1m_ab = (float)sqrt(1.0 - ab);
    den->predict_eps(den, work, x, B, (double)t);
    for (int b = 0; b < B; b++) {
      float *xb = x + (size_t)b * per_sample;
      const float *eb = work + (size_t)b * per_sample;
      for (size_t i = 0; i < per_sample; i++) {
        float x0 = (xb[i] - sqrt_1m_ab * eb[i]) * inv_sqrt_ab;
        if (clip_x0) x0 = fminf(1.0f, fmaxf(-1.0f, x0));
        const float z = s > 0.0f ? rng_normal(seed, stream_base + (uint64_t)b, (uint64_t)t * per_sample + i) : 0.0f;
        xb[i] = c0 * x0 + ct * xb[i] + s * z;
      }
    }
  }
}
