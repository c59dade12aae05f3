/* ag_layers.c - autograd wrappers for conv2d, linear, normalisation, attention and the timestep
 * embedding. */
#include <string.h>

#include "ag_common.h"
#include "autograd/functions.h"

/* ---- conv2d ---- */

static void conv2d_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
  const Conv2dGeom *geom = n->saved;
  BackendMem *work = graph_scratch(g, BK(g, conv2d_work_floats, geom));
  BK(g, conv2d_backward, grad_if_needed(g, x), grad_if_needed(g, w), grad_if_needed(g, b), n->out->grad, x->data,
     w->data, geom, work);
}

Tensor *ag_conv2d(Graph *g, Tensor *x, Tensor *w, Tensor *b, int stride_h, int stride_w, int pad_top,
                  int pad_bottom, int pad_left, int pad_right) {
  AG_INPUTS(g, x, w, b);
  CHECK(x->ndim == 4 && w->ndim == 4 && x->shape[1] == w->shape[1]);
  CHECK(!b || (b->numel == (size_t)w->shape[0]));
  Conv2dGeom geom = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
                     stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right};
  const int Ho = conv2d_out_h(&geom), Wo = conv2d_out_w(&geom);
  CHECK(Ho > 0 && Wo > 0);
  Tensor *y = new4(g, geom.B, geom.Cout, Ho, Wo);
  BackendMem *work = graph_scratch(g, BK(g, conv2d_work_floats, &geom));
  BK(g, conv2d_forward, y->data, x->data, w->data, data_or_null(b), &geom, work);
  g->flops += 2.0 * geom.B * geom.Cout * Ho * Wo * (double)geom.Cin * geom.kh * geom.kw;
  GraphNode *n = AG_RECORD(g, "conv2d", conv2d_bwd, y, x, w, b);
  if (n) {
    n->saved = arena_alloc(&g->arena, sizeof geom);
    memcpy(n->saved, &geom, sizeof geom);
  }
  return y;
}

/* ---- linear ---- */

static void linear_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
  BK(g, linear_backward, grad_if_needed(g, x), grad_if_needed(g, w), grad_if_needed(g, b), n->out->grad, x->data,
     w->data, x->shape[0], w->shape[1], w->shape[0]);
}

Tensor *ag_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b) {
  AG_INPUTS(g, x, w, b);
  CHECK(x->ndim == 2 && w->ndim == 2 && x->shape[1] == w->shape[1]);
  CHECK(!b || b->numel == (size_t)w->shape[0]);
  const int shape[2] = {x->shape[0], w->shape[0]};
  Tensor *y = graph_tensor(g, 2, shape);
  BK(g, linear_forward, y->data, x->data, w->data, data_or_null(b), x->shape[0], w->shape[1], w->shape[0]);
  g->flops += 2.0 * x->shape[0] * (double)w->shape[0] * w->shape[1];
  AG_RECORD(g, "linear", linear_bwd, y, x, w, b);
  return y;
}

/* ---- group_norm ---- */

typedef struct {
  int groups;
  BackendMem *mean, *rstd; /* (B, G) */
  BackendMem *h;           /* group_norm_silu: the normalised pre-activation */
} GroupNormSaved;

static void group_norm_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
  const GroupNormSaved *s = n->saved;
  BK(g, group_norm_backward, grad_if_needed(g, x), grad_if_needed(g, gamma), grad_if_needed(g, beta), n->out->grad,
     x->data, s->mean, s->rstd, gamma->data, x->shape[0], x->shape[1], x->shape[2] * x->shape[3], s->groups);
}

/* d h = dy * silu'(h) into scratch, then the GroupNorm backward from it. */
static void group_norm_silu_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
  const GroupNormSaved *s = n->saved;
  BackendMem *dh = graph_scratch(g, x->numel);
  BK(g, silu_backward_overwrite, dh, n->out->grad, s->h, x->numel);
  BK(g, group_norm_backward, grad_if_needed(g, x), grad_if_needed(g, gamma), grad_if_needed(g, beta), dh, x->data,
     s->mean, s->rstd, gamma->data, x->shape[0], x->shape[1], x->shape[2] * x->shape[3], s->groups);
}

static Tensor *group_norm_op(Graph *g, Tensor *x, Tensor *gamma, Tensor *beta, int groups, float eps, bool silu) {
  AG_INPUTS(g, x, gamma, beta);
  CHECK(x->ndim == 4 && groups > 0 && x->shape[1] % groups == 0);
  CHECK(gamma->numel == (size_t)x->shape[1] && beta->numel == (size_t)x->shape[1]);
  const int B = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
  Tensor *y = new_like(g, x);
  GroupNormSaved s = {groups, graph_floats(g, (size_t)B * groups), graph_floats(g, (size_t)B * groups), NULL};
  Tensor *const inputs[3] = {x, gamma, beta};
  const bool record = graph_needs_grad(g, inputs, 3);
  if (silu) {
    if (record) s.h = graph_floats(g, x->numel);
    BK(g, group_norm_silu_forward, y->data, s.h, s.mean, s.rstd, x->data, gamma->data, beta->data, B, C, HW, groups,
       eps);
  } else {
    BK(g, group_norm_forward, y->data, s.mean, s.rstd, x->data, gamma->data, beta->data, B, C, HW, groups, eps);
  }
  GraphNode *n = silu ? AG_RECORD(g, "group_norm_silu", group_norm_silu_bwd, y, x, gamma, beta)
                      : AG_RECORD(g, "group_norm", group_norm_bwd, y, x, gamma, beta);
  if (n) {
    n->saved = arena_alloc(&g->arena, sizeof s);
    memcpy(n->saved, &s, sizeof s);
  }
  return y;
}

Tensor *ag_group_norm(Graph *g, Tensor *x, Tensor *gamma, Tensor *beta, int groups, float eps) {
  return group_norm_op(g, x, gamma, beta, groups, eps, false);
}

Tensor *ag_group_norm_silu(Graph *g, Tensor *x, Tensor *gamma, Tensor *beta, int groups, float eps) {
  return group_norm_op(g, x, gamma, beta, groups, eps, true);
}

/* ---- attention ---- */

static void attention_bwd(Graph *g, GraphNode *n) {
  Tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
  const int B = q->shape[0], C = q->shape[1], N = q->shape[2] * q->shape[3];
  BackendMem *work = graph_floats(g, BK(g, attention_backward_work_floats, N));
  BK(g, attention_backward, grad_if_needed(g, q), grad_if_needed(g, k), grad_if_needed(g, v), n->out->grad, n->saved,
     q->data, k->data, v->data, B, C, N, work);
}

Tensor *ag_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v) {
  AG_INPUTS(g, q, k, v);
  CHECK(q->ndim == 4 && tensor_same_shape(q, k) && tensor_same_shape(q, v));
  const int B = q->shape[0], C = q->shape[1], N = q->shape[2] * q->shape[3];
  Tensor *y = new_like(g, q);
  BackendMem *probs = graph_floats(g, (size_t)B * N * N);
  BK(g, attention_forward, y->data, probs, q->data, k->data, v->data, B, C, N);
  g->flops += 4.0 * B * (double)C * N * N;
  GraphNode *n = AG_RECORD(g, "attention", attention_bwd, y, q, k, v);
  if (n) n->saved = probs;
  return y;
}

/* ---- timestep embedding ---- */

Tensor *ag_timestep_embedding(Graph *g, Tensor *t, int dim) {
  AG_INPUTS(g, t);
  AG_FORWARD_ONLY(g, "timestep_embedding has no backward", t);
  CHECK(t->ndim == 1);
  const int shape[2] = {t->shape[0], dim};
  Tensor *y = graph_tensor(g, 2, shape);
  BK(g, timestep_embedding_forward, y->data, t->data, t->shape[0], dim);
  return y;
}

/* ---- label embedding ---- */

static void embedding_lookup_bwd(Graph *g, GraphNode *n) {
  Tensor *table = n->in[0];
  BK(g, embedding_lookup_backward, graph_grad(g, table), n->out->grad, n->saved, n->out->shape[0], table->shape[1]);
}

Tensor *ag_embedding_lookup(Graph *g, Tensor *table, const int *labels, int B) {
  AG_INPUTS(g, table);
  CHECK(table->ndim == 2);
  for (int b = 0; b < B; b++) CHECK(labels[b] >= 0 && labels[b] < table->shape[0]);
  const int shape[2] = {B, table->shape[1]};
  Tensor *y = graph_tensor(g, 2, shape);
  BackendMem *dev_labels = graph_data(g, (size_t)B * sizeof(int));
  backend_upload(g->backend, dev_labels, labels, (size_t)B * sizeof(int));
  BK(g, embedding_lookup_forward, y->data, table->data, dev_labels, B, table->shape[1]);
  GraphNode *n = AG_RECORD(g, "embedding_lookup", embedding_lookup_bwd, y, table);
  if (n) n->saved = dev_labels;
  return y;
}
