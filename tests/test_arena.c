/* test_arena.c - the arena reaches a steady state: after the first cycle no new blocks appear, and
 * graph tensors / gradients come from it with the promised alignment. */
#include <stdint.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/arena.h"
#include "test_util.h"

int main(void) {
  Arena a;
  arena_init(&a, 4096, NULL);
  for (int cycle = 0; cycle < 3; cycle++) {
    for (int i = 0; i < 100; i++) {
      unsigned char *p = arena_alloc(&a, 1000 + (size_t)i);
      EXPECT(((uintptr_t)p & 63) == 0, "allocation not 64-byte aligned");
      memset(p, 0xAB, 1000 + (size_t)i);
    }
    const size_t cap = arena_capacity(&a);
    arena_reset(&a);
    if (cycle > 0) EXPECT(arena_capacity(&a) == cap, "arena grew after the first cycle (%zu -> %zu)", cap, arena_capacity(&a));
    EXPECT(arena_capacity(&a) >= a.high_water, "reset block smaller than the high-water mark");
  }
  arena_free(&a);

  /* a graph: same computation every step allocates the same amount, so capacity is stable */
  Graph g;
  graph_init(&g, backend_cpu(), 1024);
  float x[2 * 3 * 4 * 4];
  for (int i = 0; i < 96; i++) x[i] = (float)i / 96.0f;
  size_t cap_after_first = 0;
  for (int step = 0; step < 4; step++) {
    graph_reset(&g);
    const int shape[4] = {2, 3, 4, 4};
    Tensor *t = graph_wrap(&g, cpu_mem(x), 4, shape, true);
    Tensor *loss = ag_mse(&g, ag_silu(&g, ag_upsample_nearest2x(&g, t)), ag_upsample_nearest2x(&g, t));
    graph_backward(&g, loss);
    EXPECT(t->grad != NULL, "no input gradient");
    if (step == 1) cap_after_first = arena_capacity(&g.arena);
    if (step > 1) EXPECT(arena_capacity(&g.arena) == cap_after_first, "graph arena grew at step %d", step);
  }
  graph_free(&g);
  return test_report("arena");
}
