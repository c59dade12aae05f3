/* bf16_weights.h - the bf16 CPU backend's packed weights (ops/conv2d_bf16.h), converted once per
 * convolution weight and kept until something writes over the fp32 weights they came from. Private
 * to src/backend. */
#ifndef DIFFUSE_BACKEND_BF16_WEIGHTS_H
#define DIFFUSE_BACKEND_BF16_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/shapes.h"

/* The packed weights of w (Cout, Cin, kh, kw; host memory) for g: packed at the first call, the same
 * buffer afterwards. Threads: called from the host thread only. */
const uint16_t *bf16_weights_packed(const float *w, const Conv2dGeom *g);

/* Forgets every packed copy whose fp32 weights overlap [dst, dst + bytes): the next convolution
 * packs them again (the backend calls this on every upload, copy, memset and optimizer step). */
void bf16_weights_invalidate(const void *dst, size_t bytes);

#endif
