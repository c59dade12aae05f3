/* ag_pointwise.c - autograd wrappers for activations, softmax, elementwise arithmetic, dropout and
 * reshape. */
#include <string.h>

#include "ag_common.h"
#include "autograd/functions.h"

static void silu_bwd(Graph *g, GraphNode *n) {
  BK(g, silu_backward, graph_grad(g, n->in[0]), n->out->grad, n->in[0]->data, n->out->numel);
}

Tensor *ag_silu(Graph *g, Tensor *x) {
  AG_INPUTS(g, x);
  Tensor *y = new_like(g, x);
  BK(g, silu_forward, y->data, x->data, x->numel);
  AG_RECORD(g, "silu", silu_bwd, y, x);
  return y;
}

static void softmax_bwd(Graph *g, GraphNode *n) {
  const int cols = n->out->shape[n->out->ndim - 1];
  BK(g, softmax_backward, graph_grad(g, n->in[0]), n->out->grad, n->out->data, (int)(n->out->numel / cols), cols);
}

Tensor *ag_softmax(Graph *g, Tensor *x) {
  AG_INPUTS(g, x);
  const int cols = x->shape[x->ndim - 1];
  Tensor *y = new_like(g, x);
  BK(g, softmax_forward, y->data, x->data, (int)(x->numel / cols), cols);
  AG_RECORD(g, "softmax", softmax_bwd, y, x);
  return y;
}

static void add_bwd(Graph *g, GraphNode *n) {
  for (int i = 0; i < 2; i++) {
    BackendMem *d = grad_if_needed(g, n->in[i]);
    if (d) BK(g, axpy_accumulate, d, n->out->grad, 1.0f, n->out->numel);
  }
}

Tensor *ag_add(Graph *g, Tensor *a, Tensor *b) {
  AG_INPUTS(g, a, b);
  CHECK(tensor_same_shape(a, b));
  Tensor *y = new_like(g, a);
  BK(g, add_forward, y->data, a->data, b->data, a->numel);
  AG_RECORD(g, "add", add_bwd, y, a, b);
  return y;
}

static void mul_bwd(Graph *g, GraphNode *n) {
  Tensor *a = n->in[0], *b = n->in[1];
  BK(g, mul_backward, grad_if_needed(g, a), grad_if_needed(g, b), n->out->grad, a->data, b->data, a->numel);
}

Tensor *ag_mul(Graph *g, Tensor *a, Tensor *b) {
  AG_INPUTS(g, a, b);
  CHECK(tensor_same_shape(a, b));
  Tensor *y = new_like(g, a);
  BK(g, mul_forward, y->data, a->data, b->data, a->numel);
  AG_RECORD(g, "mul", mul_bwd, y, a, b);
  return y;
}

static void scale_bwd(Graph *g, GraphNode *n) {
  BK(g, axpy_accumulate, graph_grad(g, n->in[0]), n->out->grad, *(float *)n->saved, n->out->numel);
}

Tensor *ag_scale(Graph *g, Tensor *x, float alpha) {
  AG_INPUTS(g, x);
  Tensor *y = new_like(g, x);
  BK(g, scale_forward, y->data, x->data, alpha, x->numel);
  GraphNode *n = AG_RECORD(g, "scale", scale_bwd, y, x);
  if (n) {
    n->saved = arena_alloc(&g->arena, sizeof(float));
    *(float *)n->saved = alpha;
  }
  return y;
}

static void add_channel_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0], *v = n->in[1];
  BackendMem *dx = grad_if_needed(g, x), *dv = grad_if_needed(g, v);
  if (dx) BK(g, axpy_accumulate, dx, n->out->grad, 1.0f, x->numel);
  if (dv) BK(g, add_channel_backward, dv, n->out->grad, (int)v->numel, x->shape[2] * x->shape[3]);
}

Tensor *ag_add_channel(Graph *g, Tensor *x, Tensor *v) {
  AG_INPUTS(g, x, v);
  CHECK(x->ndim == 4 && v->numel == (size_t)x->shape[0] * x->shape[1]);
  Tensor *y = new_like(g, x);
  BK(g, add_channel_forward, y->data, x->data, v->data, (int)v->numel, x->shape[2] * x->shape[3]);
  AG_RECORD(g, "add_channel", add_channel_bwd, y, x, v);
  return y;
}

typedef struct {
  float p;
  BackendMem *mask; /* n bytes */
} DropoutSaved;

static void dropout_bwd(Graph *g, GraphNode *n) {
  const DropoutSaved *s = n->saved;
  BK(g, dropout_backward, graph_grad(g, n->in[0]), n->out->grad, s->mask, n->out->numel, s->p);
}

Tensor *ag_dropout(Graph *g, Tensor *x, float p) {
  AG_INPUTS(g, x);
  CHECK(p >= 0.0f && p < 1.0f);
  const uint64_t stream = g->dropout_calls++;
  if (!g->training || p == 0.0f) return x;
  Tensor *y = new_like(g, x);
  DropoutSaved s = {p, graph_data(g, x->numel)};
  const uint64_t per_sample = x->numel / (size_t)x->shape[0];
  BK(g, dropout_forward, y->data, s.mask, x->data, x->numel, p, g->dropout_seed, stream, g->first_sample * per_sample);
  GraphNode *n = AG_RECORD(g, "dropout", dropout_bwd, y, x);
  if (n) {
    n->saved = arena_alloc(&g->arena, sizeof s);
    memcpy(n->saved, &s, sizeof s);
  }
  return y;
}

static void reshape_bwd(Graph *g, GraphNode *n) {
  BK(g, axpy_accumulate, graph_grad(g, n->in[0]), n->out->grad, 1.0f, n->out->numel);
}

Tensor *ag_reshape(Graph *g, Tensor *x, int ndim, const int *shape) {
  AG_INPUTS(g, x);
  Tensor *y = graph_wrap(g, x->data, ndim, shape, false);
  CHECK(y->numel == x->numel);
  AG_RECORD(g, "reshape", reshape_bwd, y, x);
  return y;
}
