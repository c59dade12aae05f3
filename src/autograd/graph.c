/* graph.c - tape, lazy gradient buffers and the reverse sweep. */
#include "autograd/graph.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void graph_init(Graph *g, size_t arena_bytes) {
  memset(g, 0, sizeof *g);
  arena_init(&g->arena, arena_bytes);
  g->grad_enabled = true;
}

void graph_free(Graph *g) {
  arena_free(&g->arena);
  free(g->scratch);
  memset(g, 0, sizeof *g);
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
  arena_reset(&g->arena);
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

float *graph_grad(Graph *g, Tensor *t) {
  if (!t->grad) t->grad = arena_calloc(&g->arena, t->numel * sizeof(float));
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
  return n;
}

static void sweep(Graph *g) {
  for (GraphNode *n = g->last; n; n = n->prev)
    if (n->out->grad) n->backward(g, n);
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
