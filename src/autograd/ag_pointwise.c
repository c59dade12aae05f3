/* ag_pointwise.c - autograd wrappers for activations, softmax, elementwise arithmetic, dropout and
 * reshape. */
#include <string.h>

#include "ag_common.h"
#include "autograd/functions.h"
#include "ops/activation.h"
#include "ops/elementwise.h"

static void silu_bwd(Graph *g, GraphNode *n) {
  silu_backward(graph_grad(g, n->in[0]), n->out->grad, n->in[0]->data, n->out->numel);
}

Tensor *ag_silu(Graph *g, Tensor *x) {
  Tensor *y = new_like(g, x);
  silu_forward(y->data, x->data, x->numel);
  AG_RECORD(g, "silu", silu_bwd, y, x);
  return y;
}

static void softmax_bwd(Graph *g, GraphNode *n) {
  const int cols = n->out->shape[n->out->ndim - 1];
  softmax_backward(graph_grad(g, n->in[0]), n->out->grad, n->out->data, (int)(n->out->numel / cols), cols);
}

Tensor *ag_softmax(Graph *g, Tensor *x) {
  const int cols = x->shape[x->ndim - 1];
  Tensor *y = new_like(g, x);
  softmax_forward(y->data, x->data, (int)(x->numel / cols), cols);
  AG_RECORD(g, "softmax", softmax_bwd, y, x);
  return y;
}

static void add_bwd(Graph *g, GraphNode *n) {
  for (int i = 0; i < 2; i++) {
    float *d = grad_if_needed(g, n->in[i]);
    if (d) axpy_accumulate(d, n->out->grad, 1.0f, n->out->numel);
  }
}

Tensor *ag_add(Graph *g, Tensor *a, Tensor *b) {
  CHECK(tensor_same_shape(a, b));
  Tensor *y = new_like(g, a);
  add_forward(y->data, a->data, b->data, a->numel);
  AG_RECORD(g, "add", add_bwd, y, a, b);
  return y;
}

static void mul_bwd(Graph *g, GraphNode *n) {
  Tensor *a = n->in[0], *b = n->in[1];
  mul_backward(grad_if_needed(g, a), grad_if_needed(g, b), n->out->grad, a->data, b->data, a->numel);
}

Tensor *ag_mul(Graph *g, Tensor *a, Tensor *b) {
  CHECK(tensor_same_shape(a, b));
  Tensor *y = new_like(g, a);
  mul_forward(y->data, a->data, b->data, a->numel);
  AG_RECORD(g, "mul", mul_bwd, y, a, b);
  return y;
}

static void scale_bwd(Graph *g, GraphNode *n) {
  axpy_accumulate(graph_grad(g, n->in[0]), n->out->grad, *(float *)n->saved, n->out->numel);
}

Tensor *ag_scale(Graph *g, Tensor *x, float alpha) {
  Tensor *y = new_like(g, x);
  scale_forward(y->data, x->data, alpha, x->numel);
  GraphNode *n = AG_RECORD(g, "scale", scale_bwd, y, x);
  if (n) {
    n->saved = arena_alloc(&g->arena, sizeof(float));
    *(float *)n->saved = alpha;
  }
  return y;
}

static void add_channel_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0], *v = n->in[1];
  float *dx = grad_if_needed(g, x), *dv = grad_if_needed(g, v);
  if (dx) axpy_accumulate(dx, n->out->grad, 1.0f, x->numel);
  if (dv) add_channel_backward(dv, n->out->grad, (int)v->numel, x->shape[2] * x->shape[3]);
}

Tensor *ag_add_channel(Graph *g, Tensor *x, Tensor *v) {
  CHECK(x->ndim == 4 && v->numel == (size_t)x->shape[0] * x->shape[1]);
  Tensor *y = new_like(g, x);
  add_channel_forward(y->data, x->data, v->data, (int)v->numel, x->shape[2] * x->shape[3]);
  AG_RECORD(g, "add_channel", add_channel_bwd, y, x, v);
  return y;
}

typedef struct {
  float p;
  uint8_t *mask;
} DropoutSaved;

static void dropout_bwd(Graph *g, GraphNode *n) {
  const DropoutSaved *s = n->saved;
  dropout_backward(graph_grad(g, n->in[0]), n->out->grad, s->mask, n->out->numel, s->p);
}

Tensor *ag_dropout(Graph *g, Tensor *x, float p) {
  CHECK(p >= 0.0f && p < 1.0f);
  const uint64_t stream = g->dropout_calls++;
  if (!g->training || p == 0.0f) return x;
  Tensor *y = new_like(g, x);
  DropoutSaved s = {p, arena_alloc(&g->arena, x->numel)};
  const uint64_t per_sample = x->numel / (size_t)x->shape[0];
  dropout_forward(y->data, s.mask, x->data, x->numel, p, g->dropout_seed, stream, g->first_sample * per_sample);
  GraphNode *n = AG_RECORD(g, "dropout", dropout_bwd, y, x);
  if (n) {
    n->saved = arena_alloc(&g->arena, sizeof s);
    memcpy(n->saved, &s, sizeof s);
  }
  return y;
}

static void reshape_bwd(Graph *g, GraphNode *n) {
  axpy_accumulate(graph_grad(g, n->in[0]), n->out->grad, 1.0f, n->out->numel);
}

Tensor *ag_reshape(Graph *g, Tensor *x, int ndim, const int *shape) {
  Tensor *y = graph_wrap(g, x->data, ndim, shape, false);
  CHECK(y->numel == x->numel);
  AG_RECORD(g, "reshape", reshape_bwd, y, x);
  return y;
}
