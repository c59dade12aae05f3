/* init.c - DDPM-style parameter initialisation (Ho et al. 2020, variance_scaling fan_avg uniform). */
#include "nn/init.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

uint64_t hash_name(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001b3ull;
  }
  return h;
}

static int ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

void init_param_default(ParamTable *p, int index, uint64_t seed) {
  const ParamInfo *pi = &p->info[index];
  if (pi->ndim == 1) {
    params_fill(p, index, ends_with(pi->name, ".weight") ? 1.0f : 0.0f);
    return;
  }
  const double receptive = (double)pi->numel / ((double)pi->shape[0] * pi->shape[1]);
  const double fan_in = pi->shape[1] * receptive, fan_out = pi->shape[0] * receptive;
  const float limit = (float)sqrt(3.0 / ((fan_in + fan_out) / 2.0));
  float *w = xmalloc(pi->numel * sizeof(float)); /* drawn on the host, as every backend's weights must match */
  rng_fill_uniform(w, pi->numel, seed, hash_name(pi->name), 0);
  for (size_t i = 0; i < pi->numel; i++) w[i] = (2.0f * w[i] - 1.0f) * limit;
  params_write(p, p->data, index, w);
  free(w);
}
