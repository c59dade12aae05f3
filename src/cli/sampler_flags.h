/* sampler_flags.h - what `diffuse sample` and `diffuse eval fid` share: the sampler flags and the
 * noise streams, so the same --seed gives the same images in both. */
#ifndef DIFFUSE_CLI_SAMPLER_FLAGS_H
#define DIFFUSE_CLI_SAMPLER_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "args.h"
#include "nn/unet.h"
#include "samplers/sampler.h"

typedef struct {
  const char *sampler, *spacing, *variance, *predictor, *method;
  int steps, corrector_steps;
  double eta, snr, step_size, rtol, atol; /* NULL / NAN / ARG_UNSET: not given, the sampler's default */
  double s_churn, s_tmin, s_tmax, s_noise;
  bool clip;
  double guidance; /* classifier-free guidance weight (NAN: none), for the denoiser rather than the sampler */
} SamplerFlags;

void sampler_flags_default(SamplerFlags *f);
/* Whether any sampler flag was given (they are only meaningful where something is sampled). */
bool sampler_flags_given(const SamplerFlags *f);
/* The sampler flags' ArgSpec entries bound to the SamplerFlags lvalue f, to place in a spec table
 * (which is then sized by construction). */
#define SAMPLER_FLAG_SPECS(f)                                                                                     \
  {"--sampler", ARG_STRING, &(f).sampler}, {"--steps", ARG_INT, &(f).steps},                                    \
      {"--spacing", ARG_STRING, &(f).spacing}, {"--eta", ARG_DOUBLE, &(f).eta},                                 \
      {"--variance", ARG_STRING, &(f).variance}, {"--clip", ARG_FLAG, &(f).clip},                               \
      {"--step-size", ARG_DOUBLE, &(f).step_size}, {"--corrector-steps", ARG_INT, &(f).corrector_steps},        \
      {"--snr", ARG_DOUBLE, &(f).snr}, {"--predictor", ARG_STRING, &(f).predictor},                             \
      {"--method", ARG_STRING, &(f).method}, {"--rtol", ARG_DOUBLE, &(f).rtol}, {"--atol", ARG_DOUBLE, &(f).atol}, \
      {"--s-churn", ARG_DOUBLE, &(f).s_churn}, {"--s-tmin", ARG_DOUBLE, &(f).s_tmin},                           \
      {"--s-tmax", ARG_DOUBLE, &(f).s_tmax}, {"--s-noise", ARG_DOUBLE, &(f).s_noise},                         \
      {"--guidance", ARG_DOUBLE, &(f).guidance}
/* Flags -> options; a usage error (returns 2) names the flag: an unknown name, or a flag that means
 * nothing to the chosen sampler (--eta with dpmpp, --clip with ddim, --s-churn with ddim, ...). */
int sampler_options_from_flags(const SamplerFlags *f, SamplerOptions *o);
/* Model-dependent defaults (DDIM on VE models: trailing spacing; EDM: karras; ancestral on a model with a
 * learned variance: --variance learned) and sampler_check. 0 or -1 + message. */
int sampler_options_for_model(const SamplerFlags *f, SamplerOptions *o, const Diffusion *d, char *err, size_t errlen);

/* --guidance W against the model: it needs a class-conditional model trained with train.p_uncond > 0
 * (its null class), and W >= 0. 0, or -1 + a message. Sets *w (0 when not given). */
int guidance_for_model(const SamplerFlags *f, const UNetConfig *mc, double *w, char *err, size_t errlen);

/* x (B, per_sample): the prior noise of samples first .. first+B-1, sample k from stream k of seed,
 * times the prior std. */
void sample_prior_noise(float *x, int B, size_t per_sample, long first, int seed, const Diffusion *d);
/* SDEdit's start: x = alpha(tau) x0 + sigma(tau) z for B copies of one image x0 (per_sample), z the
 * standard normal of sample_prior_noise's streams. */
void sample_noised_image(float *x, const float *x0, int B, size_t per_sample, long first, int seed, const Diffusion *d,
                         double tau);
/* The per-step noise of the batch starting at sample `first` (sample k: its own stream). */
NoiseSource sample_step_noise(int seed, long first);

#endif
