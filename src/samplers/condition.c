/* condition.c - sampling with a known linear part of the sample (inpainting, colourisation, ILVR);
 * see SamplerCondition in sampler.h.
 *
 * The driver steps the sampler one grid interval at a time and, after each, replaces the known part
 * by that of q(x_tau | reference) (score_sde's inpainter and colorizer, Song et al. 2021, App. I;
 * RePaint's known-region update; ILVR's x <- phi(y_tau) + (I - phi) x). score_sde noises the known
 * part at the time the step started from; here it is the time the state is at after the step.
 *
 * RePaint's resampling (Lugmayr et al. 2022, get_schedule_jump): on the levels t = steps-1 .. 0 of the
 * grid (level t is grid point steps-1-t), every jump-th level t < steps - jump is a jump point visited
 * R - 1 more times: on arriving there the state goes jump levels back up by the forward process,
 *   q(x_hi | x_lo) = N(alpha_hi / alpha_lo x_lo, sigma_hi^2 - (alpha_hi / alpha_lo)^2 sigma_lo^2),
 * and the reverse steps are redone, so the generated part harmonises with the known part. */
#include <math.h>
#include <stdlib.h>

#include "algorithms.h"
#include "core/error.h"

#define MAX_RESAMPLE 1000

int sampler_check_condition(const SamplerOptions *o, const SamplerCondition *c, size_t per_sample, char *err,
                            size_t errlen) {
  const char *what = c->kind == CONDITION_INPAINT ? "--mask (inpainting)" : c->kind == CONDITION_COLORIZE ? "--colorize" : "--lowres (ILVR)";
  if (o->kind != SAMPLER_ANCESTRAL && o->kind != SAMPLER_DDIM && o->kind != SAMPLER_PC)
    return errorf(err, errlen, "%s runs on the samplers that step between grid points one at a time: ancestral "
                  "(RePaint), ddim or pc (score_sde's inpainter), not %s", what, sampler_kind_name(o->kind));
  if (o->strength != 1.0)
    return errorf(err, errlen, "--strength (SDEdit) starts from a noised image; %s keeps part of one from the "
                  "prior onward: give one of them", what);
  if (o->resample < 1 || o->resample > MAX_RESAMPLE)
    return errorf(err, errlen, "--resample must be in [1, %d] (1: no resampling)", MAX_RESAMPLE);
  if (o->jump < 1) return errorf(err, errlen, "--jump must be >= 1");
  if (o->resample > 1 && o->steps > 0 && o->jump >= o->steps)
    return errorf(err, errlen, "--jump %d must be less than --steps %d, or no resampling jump fits", o->jump, o->steps);
  if ((size_t)c->channels * c->height * c->width != per_sample)
    return errorf(err, errlen, "%s: the layout %dx%dx%d does not match the %zu values of a sample", what, c->channels,
                  c->height, c->width, per_sample);
  if (c->kind == CONDITION_COLORIZE && c->channels != 3)
    return errorf(err, errlen, "--colorize needs a 3-channel (RGB) model; this one has %d channel(s)", c->channels);
  if (c->kind == CONDITION_LOWRES && (c->factor < 2 || c->height % c->factor || c->width % c->factor))
    return errorf(err, errlen, "--factor %d must be >= 2 and divide the model's %dx%d", c->factor, c->height,
                  c->width);
  return 0;
}

void sampler_condition_project(const SamplerCondition *c, float *v, int B) {
  const int C = c->channels, H = c->height, W = c->width, HW = H * W;
  const size_t per = (size_t)C * HW;
  for (int b = 0; b < B; b++) {
    float *vb = v + (size_t)b * per;
    switch (c->kind) {
      case CONDITION_INPAINT:
        for (size_t j = 0; j < per; j++) vb[j] *= c->keep[j];
        break;
      case CONDITION_COLORIZE:
        for (int p = 0; p < HW; p++) {
          float m = 0.0f;
          for (int ch = 0; ch < C; ch++) m += vb[ch * HW + p];
          m /= (float)C;
          for (int ch = 0; ch < C; ch++) vb[ch * HW + p] = m;
        }
        break;
      case CONDITION_LOWRES: {
        const int f = c->factor;
        for (int ch = 0; ch < C; ch++)
          for (int y0 = 0; y0 < H; y0 += f)
            for (int x0 = 0; x0 < W; x0 += f) {
              float *blk = vb + ch * HW + y0 * W + x0, m = 0.0f;
              for (int y = 0; y < f; y++)
                for (int x = 0; x < f; x++) m += blk[y * W + x];
              m /= (float)(f * f);
              for (int y = 0; y < f; y++)
                for (int x = 0; x < f; x++) blk[y * W + x] = m;
            }
        break;
      }
    }
  }
}

/* scratch <- alpha reference + sigma z - x (z: the next noise draw when sigma > 0), then x += P scratch. */
static void keep_known(SamplerRun *r, double alpha, double sigma, float *scratch) {
  const SamplerCondition *c = r->cond;
  if (sigma > 0.0) sampler_noise(r, scratch);
  const float a = (float)alpha, s = (float)sigma;
  for (int b = 0; b < r->B; b++) {
    float *sb = scratch + (size_t)b * r->per_sample;
    const float *xb = r->x + (size_t)b * r->per_sample;
    for (size_t j = 0; j < r->per_sample; j++)
      sb[j] = a * c->reference[j] + (sigma > 0.0 ? s * sb[j] : 0.0f) - xb[j];
  }
  sampler_condition_project(c, scratch, r->B);
  for (size_t j = 0; j < r->n; j++) r->x[j] += scratch[j];
}

void sampler_condition_keep(SamplerRun *r, double tau, float *scratch) {
  double alpha, sigma;
  diffusion_marginal(r->d, tau, &alpha, &sigma);
  keep_known(r, alpha, sigma, scratch);
}

/* The final sample keeps the reference's known part: inpainting copies the very values. */
static void keep_final(SamplerRun *r, float *scratch) {
  const SamplerCondition *c = r->cond;
  if (c->kind != CONDITION_INPAINT) {
    keep_known(r, 1.0, 0.0, scratch);
    return;
  }
  for (int b = 0; b < r->B; b++)
    for (size_t j = 0; j < r->per_sample; j++)
      if (c->keep[j] != 0.0f) r->x[(size_t)b * r->per_sample + j] = c->reference[j];
}

/* x from grid point lo to the higher-noise point hi by the forward process (scratch: n floats). */
static void renoise(SamplerRun *r, double tau_lo, double tau_hi, float *scratch) {
  double a_lo, s_lo, a_hi, s_hi;
  diffusion_marginal(r->d, tau_lo, &a_lo, &s_lo);
  diffusion_marginal(r->d, tau_hi, &a_hi, &s_hi);
  const double ratio = a_hi / a_lo, var = s_hi * s_hi - ratio * ratio * s_lo * s_lo;
  for (size_t j = 0; j < r->n; j++) r->x[j] *= (float)ratio;
  sampler_add_noise(r, scratch, sqrt(var > 0.0 ? var : 0.0));
}

void sample_conditioned(SamplerRun *r, const double *taus, int steps) {
  void (*step)(SamplerRun *, const double *, int, int) =
      r->o->kind == SAMPLER_ANCESTRAL ? ancestral_step : r->o->kind == SAMPLER_DDIM ? ddim_step : pc_step;
  CHECK(r->o->kind == SAMPLER_ANCESTRAL || r->o->kind == SAMPLER_DDIM || r->o->kind == SAMPLER_PC);
  const int R = r->o->resample, J = r->o->jump;
  int *jumps_left = xcalloc((size_t)steps, sizeof(int)); /* by level */
  for (int t = 0; R > 1 && t < steps - J; t += J) jumps_left[t] = R - 1;
  float *scratch = r->work; /* free between steps */
  sampler_condition_keep(r, taus[0], scratch);
  for (int t = steps - 1; t >= 0;) {
    step(r, taus, steps - 1 - t, steps);
    t--;
    if (t < 0) break;
    sampler_condition_keep(r, taus[steps - 1 - t], scratch);
    if (jumps_left[t] > 0) {
      jumps_left[t]--;
      for (int k = 0; k < J; k++, t++) renoise(r, taus[steps - 1 - t], taus[steps - 2 - t], scratch);
    }
  }
  keep_final(r, scratch);
  free(jumps_left);
}
