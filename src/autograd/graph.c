/* graph.c - tape, lazy gradient buffers and the reverse sweep. */
#include "autograd/graph.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "ops/elementwise.h"

void graph_init(Graph *g, size_t arena_bytes) {
  memset(g, 0, sizeof *g);
  arena_init(&g->arena, arena_bytes);
  g->grad_enabled = true;
}

struct GraphGradBuffer {
  float *data;
  size_t numel;
  bool in_use;
};

void graph_free(Graph *g) {
  arena_free(&g->arena);
  free(g->scratch);
  for (int i = 0; i < g->n_grad_buffers; i++) free(g->grad_buffers[i].data);
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

float *graph_scratch(Graph *g, size_t n) {
  if (n > g->scratch_cap) {
    free(g->scratch);
    g->scratch = xmalloc_aligned(64, (n + 15) / 16 * 16 * sizeof(float));
    g->scratch_cap = n;
  }
  return g->scratch;
}

void graph_reset(Graph *g) {
  if (g->profile) g->profile->last = now_seconds(), g->profile->last_flops = 0.0;
  arena_reset(&g->arena);
  for (int i = 0; i < g->n_grad_buffers; i++) g->grad_buffers[i].in_use = false;
  g->last = NULL;
  g->dropout_calls = 0;
  g->flops = 0.0;
}

Tensor *graph_wrap(Graph *g, float *data, int ndim, const int *shape, bool requires_grad) {
  Tensor *t = arena_calloc(&g->arena, sizeof *t);
  tensor_set_shape(t, ndim, shape);
  t->data = data;
  t->requires_grad = requires_grad;
  return t;
}

Tensor *graph_tensor(Graph *g, int ndim, const int *shape) {
  Tensor *t = graph_wrap(g, NULL, ndim, shape, false);
  t->data = arena_floats(&g->arena, t->numel);
  return t;
}

Tensor *graph_tensor_zeros(Graph *g, int ndim, const int *shape) {
  Tensor *t = graph_tensor(g, ndim, shape);
  memset(t->data, 0, t->numel * sizeof(float));
  return t;
}

GraphMark graph_mark(const Graph *g) {
  const GraphMark m = {arena_mark(&g->arena), g->last};
  return m;
}

Tensor *graph_keep_only(Graph *g, GraphMark m, Tensor *out) {
  if (g->last != m.last || out->grad) return out;
  const Tensor kept = *out;
  if (!arena_rewind(&g->arena, m.arena)) return out;
  /* data first: it lands at the mark, at or below its old place, so memmove may overlap safely */
  float *data = arena_floats(&g->arena, kept.numel);
  memmove(data, kept.data, kept.numel * sizeof(float));
  Tensor *t = arena_alloc(&g->arena, sizeof *t);
  *t = kept;
  t->data = data;
  return t;
}

/* A free pooled buffer of exactly n floats, or a new one. */
static float *grad_buffer_take(Graph *g, size_t n) {
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
  b->data = xmalloc_aligned(64, (n + 15) / 16 * 16 * sizeof(float));
  b->numel = n;
  b->in_use = true;
  return b->data;
}

static void grad_buffer_give_back(Graph *g, float *data) {
  for (int i = 0; i < g->n_grad_buffers; i++)
    if (g->grad_buffers[i].data == data) {
      g->grad_buffers[i].in_use = false;
      return;
    }
}

float *graph_grad(Graph *g, Tensor *t) {
  if (!t->grad) {
    t->grad = grad_buffer_take(g, t->numel);
    zero_floats(t->grad, t->numel);
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
  graph_grad(g, loss)[0] = 1.0f;
  sweep(g);
}

void graph_backward_from(Graph *g, Tensor *out, const float *grad_out) {
  memcpy(graph_grad(g, out), grad_out, out->numel * sizeof(float));
  sweep(g);
}
