/* init.h - parameter initialisation from the counter-based RNG.
 *
 * Each parameter draws from its own stream, derived from its name, so the values do not depend on
 * registration order or thread count. */
#ifndef DIFFUSE_NN_INIT_H
#define DIFFUSE_NN_INIT_H

#include <stdint.h>

#include "nn/params.h"

/* FNV-1a 64-bit hash of a string (stream ids from names). */
uint64_t hash_name(const char *s);

/* DDPM's default_init: weights (ndim >= 2) ~ U(-a, a), a = sqrt(3 / fan_avg), fan_avg = (fan_in +
 * fan_out) / 2 with the receptive field counted in both; 1-D "*.weight" (norm scales) = 1; other
 * 1-D (biases) = 0. */
void init_param_default(ParamTable *p, int index, uint64_t seed);

#endif
