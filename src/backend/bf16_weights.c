/* bf16_weights.c - the bf16 backend's packed-weight cache; see bf16_weights.h.
 *
 * A list of (fp32 weights, their size, the packed copy) searched linearly: a U-Net has tens of
 * convolutions, and the search is nothing next to the convolution it precedes. Nothing is allocated
 * once every weight has been packed. */
#include "bf16_weights.h"

#include <stdlib.h>

#include "core/error.h"
#include "ops/conv2d_bf16.h"

typedef struct {
  const float *w;
  size_t w_bytes;
  Conv2dGeom geom; /* the packing depends on Cout, Cin, kh, kw only */
  uint16_t *packed;
} PackedWeights;

static PackedWeights *g_entries;
static int g_count, g_capacity;

static bool same_kernel(const Conv2dGeom *a, const Conv2dGeom *b) {
  return a->Cout == b->Cout && a->Cin == b->Cin && a->kh == b->kh && a->kw == b->kw;
}

const uint16_t *bf16_weights_packed(const float *w, const Conv2dGeom *g) {
  for (int i = 0; i < g_count; i++)
    if (g_entries[i].w == w && same_kernel(&g_entries[i].geom, g)) return g_entries[i].packed;
  if (g_count == g_capacity) {
    g_capacity = g_capacity ? 2 * g_capacity : 64;
    g_entries = xrealloc(g_entries, (size_t)g_capacity * sizeof *g_entries);
  }
  PackedWeights *e = &g_entries[g_count++];
  e->w = w;
  e->w_bytes = (size_t)g->Cout * g->Cin * g->kh * g->kw * sizeof(float);
  e->geom = *g;
  e->packed = xmalloc_aligned(64, conv2d_bf16_packed_bytes(g));
  conv2d_bf16_pack_weights(e->packed, w, g);
  return e->packed;
}

void bf16_weights_invalidate(const void *dst, size_t bytes) {
  const uintptr_t lo = (uintptr_t)dst, hi = lo + bytes;
  for (int i = 0; i < g_count;) {
    const uintptr_t wlo = (uintptr_t)g_entries[i].w, whi = wlo + g_entries[i].w_bytes;
    if (wlo < hi && lo < whi) {
      free(g_entries[i].packed);
      g_entries[i] = g_entries[--g_count];
    } else {
      i++;
    }
  }
}
