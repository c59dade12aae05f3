/* graph.c - tape, lazy gradient buffers and the reverse sweep. */
#include "autograd/graph.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"

/* The data arena's blocks come from the graph's backend. */
static void *backend_block_alloc(void *ctx, size_t bytes) {
  const Backend *be = ctx;
  return be->ops->alloc(be, bytes);
}

static void backend_block_free(void *ctx, void *p) {
  const Backend *be = ctx;
  be->ops->free(be, p);
}

void graph_init(Graph *g, const Backend *backend, size_t arena_bytes) {
  memset(g, 0, sizeof *g);
  g->backend = backend;
  arena_init(&g->arena, 1 << 16, NULL);
  const ArenaAllocator data = {backend_block_alloc, backend_block_free, (void *)backend};
  arena_init(&g->data, arena_bytes, &data);
  g->grad_enabled = true;
}

struct GraphGradBuffer {
  BackendMem *data;
  size_t numel;
  bool in_use;
};

void graph_free(Graph *g) {
  const Backend *be = g->backend;
  arena_free(&g->arena);
  arena_free(&g->data);
  if (g->scratch) be->ops->free(be, g->scratch);
  for (int i = 0; i < g->n_grad_buffers; i++) be->ops->free(be, g->grad_buffers[i].data);
  free(g->grad_buffers);
  memset(g, 0, sizeof *g);
}

static GraphProfileEntry *profile_entry(GraphProfile *p, const char *name) {
  for (int i = 0; i < p->n; i++)
    if (p->entries[i].name == name || !strcmp(p->entries[i].name, name)) return &p->entries[i];
  if (p->n == GRAPH_PROFILE_MAX) return &p->entries[GRAPH_PROFILE_MAX - 1]; /* overflow: lumped into the last */
  p->entries[p->n].name = name;
  return &p->entries[p->n++];
}

BackendMem *graph_scratch(Graph *g, size_t n) {
  if (n > g->scratch_cap) {
    if (g->scratch) g->backend->ops->free(g->backend, g->scratch);
    g->scratch = backend_alloc_or_exit(g->backend, (n + 15) / 16 * 16 * sizeof(float), "an op's scratch buffer");
    g->scratch_cap = n;
  }
  return g->scratch;
}

void graph_reset(Graph *g) {
  if (g->profile) g->profile->last = now_seconds(), g->profile->last_flops = 0.0;
  arena_reset(&g->arena);
  arena_reset(&g->data);
  for (int i = 0; i < g->n_grad_buffers; i++) g->grad_buffers[i].in_use = false;
  g->last = NULL;
  g->dropout_calls = 0;
  g->flops = 0.0;
}

size_t graph_high_water(const Graph *g) { return g->arena.high_water + g->data.high_water; }

BackendMem *graph_data(Graph *g, size_t bytes) { return arena_alloc(&g->data, bytes); }

Tensor *graph_wrap(Graph *g, BackendMem *data, int ndim, const int *shape, bool requires_grad) {
  Tensor *t = arena_calloc(&g->arena, sizeof *t);
  tensor_set_shape(t, ndim, shape);
  t->data = data;
  t->backend = g->backend;
  t->requires_grad = requires_grad;
  return t;
}

Tensor *graph_tensor(Graph *g, int ndim, const int *shape) {
  Tensor *t = graph_wrap(g, NULL, ndim, shape, false);
  t->data = graph_floats(g, t->numel);
  return t;
}

Tensor *graph_tensor_zeros(Graph *g, int ndim, const int *shape) {
  Tensor *t = graph_tensor(g, ndim, shape);
  g->backend->ops->memset(g->backend, t->data, 0, t->numel * sizeof(float));
  return t;
}

Tensor *graph_tensor_upload(Graph *g, int ndim, const int *shape, const float *host) {
  Tensor *t = graph_tensor(g, ndim, shape);
  tensor_upload(t, host);
  return t;
}

GraphMark graph_mark(const Graph *g) {
  const GraphMark m = {arena_mark(&g->arena), arena_mark(&g->data), g->last};
  return m;
}

Tensor *graph_keep_only(Graph *g, GraphMark m, Tensor *out) {
  if (g->last != m.last || out->grad) return out;
  /* both arenas rewind, or neither */
  if (!arena_can_rewind(&g->arena, m.arena) || !arena_can_rewind(&g->data, m.data)) return out;
  const Tensor kept = *out;
  CHECK(arena_rewind(&g->arena, m.arena) && arena_rewind(&g->data, m.data));
  /* the data lands at the mark, at or below its old place: copy has memmove semantics */
  BackendMem *data = graph_floats(g, kept.numel);
  g->backend->ops->copy(g->backend, data, kept.data, kept.numel * sizeof(float));
  Tensor *t = arena_alloc(&g->arena, sizeof *t);
  *t = kept;
  t->data = data;
  return t;
}

/* A free pooled buffer of exactly n floats, or a new one. */
static BackendMem *grad_buffer_take(Graph *g, size_t n) {
  for (int i = 0; i < g->n_grad_buffers; i++) {
    struct GraphGradBuffer *b = &g->grad_buffers[i];
    if (!b->in_use && b->numel == n) {
      b->in_use = true;
      return b->data;
    }
  }
  if (g->n_grad_buffers == g->cap_grad_buffers) {
    g->cap_grad_buffers = g->cap_grad_buffers ? 2 * g->cap_grad_buffers : 32;
    g->grad_buffers = xrealloc(g->grad_buffers, g->cap_grad_buffers * sizeof *g->grad_buffers);
  }
  struct GraphGradBuffer *b = &g->grad_buffers[g->n_grad_buffers++];
  b->data = backend_alloc_or_exit(g->backend, (n + 15) / 16 * 16 * sizeof(float), "a gradient buffer");
  b->numel = n;
  b->in_use = true;
  return b->data;
}

static void grad_buffer_give_back(Graph *g, BackendMem *data) {
  for (int i = 0; i < g->n_grad_buffers; i++)
    if (g->grad_buffers[i].data == data) {
      g->grad_buffers[i].in_use = false;
      return;
    }
}

BackendMem *graph_grad(Graph *g, Tensor *t) {
  if (!t->grad) {
    t->grad = grad_buffer_take(g, t->numel);
    g->backend->ops->memset(g->backend, t->grad, 0, t->numel * sizeof(float));
  }
  return t->grad;
}

bool graph_needs_grad(const Graph *g, Tensor *const *inputs, int n_inputs) {
  if (!g->grad_enabled) return false;
  for (int i = 0; i < n_inputs; i++)
    if (inputs[i] && inputs[i]->requires_grad) return true;
  return false;
}

GraphNode *graph_record(Graph *g, const char *name, BackwardFn backward, Tensor *out, Tensor *const *inputs,
                        int n_inputs) {
  CHECK(n_inputs <= GRAPH_MAX_INPUTS);
  GraphNode *n = arena_calloc(&g->arena, sizeof *n);
  n->prev = g->last;
  n->backward = backward;
  n->name = name;
  n->out = out;
  for (int i = 0; i < n_inputs; i++) n->in[i] = inputs[i];
  out->requires_grad = true;
  g->last = n;
  if (g->profile) {
    const double now = now_seconds();
    GraphProfileEntry *e = profile_entry(g->profile, name);
    e->forward_s += now - g->profile->last;
    e->flops += g->flops - g->profile->last_flops;
    e->calls++;
    g->profile->last = now;
    g->profile->last_flops = g->flops;
  }
  return n;
}

static void sweep(Graph *g) {
  for (GraphNode *n = g->last; n; n = n->prev) {
    if (!n->out->grad) continue;
    const double t0 = g->profile ? now_seconds() : 0.0;
    n->backward(g, n);
    grad_buffer_give_back(g, n->out->grad);
    n->out->grad = NULL;
    if (g->profile) profile_entry(g->profile, n->name)->backward_s += now_seconds() - t0;
  }
}

void graph_backward(Graph *g, Tensor *loss) {
  CHECK(loss->numel == 1);
  const float one = 1.0f;
  backend_upload(g->backend, graph_grad(g, loss), &one, sizeof one);
  sweep(g);
}

void graph_backward_from(Graph *g, Tensor *out, const BackendMem *grad_out) {
  g->backend->ops->copy(g->backend, graph_grad(g, out), grad_out, out->numel * sizeof(float));
  sweep(g);
}
