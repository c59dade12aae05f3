/* ag_spatial.c - autograd wrappers for channel concat, resampling and pooling. */
#include <string.h>

#include "ag_common.h"
#include "autograd/functions.h"

static void concat_bwd(Graph *g, GraphNode *n) {
  Tensor *a = n->in[0], *b = n->in[1];
  BK(g, concat_channels_backward, grad_if_needed(g, a), grad_if_needed(g, b), n->out->grad, a->shape[0], a->shape[1],
                           b->shape[1], a->shape[2] * a->shape[3]);
}

Tensor *ag_concat_channels(Graph *g, Tensor *a, Tensor *b) {
  AG_INPUTS(g, a, b);
  CHECK(a->ndim == 4 && b->ndim == 4 && a->shape[0] == b->shape[0] && a->shape[2] == b->shape[2] &&
        a->shape[3] == b->shape[3]);
  Tensor *y = new4(g, a->shape[0], a->shape[1] + b->shape[1], a->shape[2], a->shape[3]);
  BK(g, concat_channels_forward, y->data, a->data, b->data, a->shape[0], a->shape[1], b->shape[1],
                          a->shape[2] * a->shape[3]);
  AG_RECORD(g, "concat", concat_bwd, y, a, b);
  return y;
}

typedef struct {
  int c0;
} SliceSaved;

static void channel_slice_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0];
  const SliceSaved *s = n->saved;
  BK(g, channel_slice_backward, graph_grad(g, x), n->out->grad, x->shape[0], x->shape[1], s->c0, n->out->shape[1],
     x->shape[2] * x->shape[3]);
}

Tensor *ag_channel_slice(Graph *g, Tensor *x, int c0, int n) {
  AG_INPUTS(g, x);
  CHECK(x->ndim == 4 && c0 >= 0 && n > 0 && c0 + n <= x->shape[1]);
  Tensor *y = new4(g, x->shape[0], n, x->shape[2], x->shape[3]);
  BK(g, channel_slice_forward, y->data, x->data, x->shape[0], x->shape[1], c0, n, x->shape[2] * x->shape[3]);
  GraphNode *node = AG_RECORD(g, "channel_slice", channel_slice_bwd, y, x);
  if (node) {
    SliceSaved *s = arena_alloc(&g->arena, sizeof *s);
    s->c0 = c0;
    node->saved = s;
  }
  return y;
}

static void upsample_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0];
  BK(g, upsample_nearest2x_backward, graph_grad(g, x), n->out->grad, x->shape[0] * x->shape[1], x->shape[2], x->shape[3]);
}

Tensor *ag_upsample_nearest2x(Graph *g, Tensor *x) {
  AG_INPUTS(g, x);
  CHECK(x->ndim == 4);
  Tensor *y = new4(g, x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3]);
  BK(g, upsample_nearest2x_forward, y->data, x->data, x->shape[0] * x->shape[1], x->shape[2], x->shape[3]);
  AG_RECORD(g, "upsample_nearest2x", upsample_bwd, y, x);
  return y;
}

typedef struct {
  Pool2dGeom geom;
  bool count_include_pad;
  BackendMem *argmax; /* int32 (B, C, Ho, Wo) */
} PoolSaved;

static Pool2dGeom pool_geom(const Tensor *x, int k, int stride, int pad) {
  CHECK(x->ndim == 4 && k > 0 && stride > 0 && pad >= 0 && 2 * pad <= k);
  Pool2dGeom geom = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], k, stride, pad};
  CHECK(pool2d_out_h(&geom) > 0 && pool2d_out_w(&geom) > 0);
  return geom;
}

static GraphNode *record_pool(Graph *g, const char *name, BackwardFn fn, Tensor *y, Tensor *x, PoolSaved s) {
  GraphNode *n = AG_RECORD(g, name, fn, y, x);
  if (n) {
    n->saved = arena_alloc(&g->arena, sizeof s);
    memcpy(n->saved, &s, sizeof s);
  }
  return n;
}

static void avg_pool_bwd(Graph *g, GraphNode *n) {
  const PoolSaved *s = n->saved;
  BK(g, avg_pool2d_backward, graph_grad(g, n->in[0]), n->out->grad, &s->geom, s->count_include_pad);
}

Tensor *ag_avg_pool2d(Graph *g, Tensor *x, int k, int stride, int pad, bool count_include_pad) {
  AG_INPUTS(g, x);
  PoolSaved s = {pool_geom(x, k, stride, pad), count_include_pad, NULL};
  Tensor *y = new4(g, x->shape[0], x->shape[1], pool2d_out_h(&s.geom), pool2d_out_w(&s.geom));
  BK(g, avg_pool2d_forward, y->data, x->data, &s.geom, count_include_pad);
  record_pool(g, "avg_pool2d", avg_pool_bwd, y, x, s);
  return y;
}

static void max_pool_bwd(Graph *g, GraphNode *n) {
  const PoolSaved *s = n->saved;
  BK(g, max_pool2d_backward, graph_grad(g, n->in[0]), n->out->grad, s->argmax, &s->geom);
}

Tensor *ag_max_pool2d(Graph *g, Tensor *x, int k, int stride, int pad) {
  AG_INPUTS(g, x);
  PoolSaved s = {pool_geom(x, k, stride, pad), false, NULL};
  Tensor *y = new4(g, x->shape[0], x->shape[1], pool2d_out_h(&s.geom), pool2d_out_w(&s.geom));
  if (graph_needs_grad(g, &x, 1)) s.argmax = graph_data(g, y->numel * sizeof(int)); /* only the backward reads it */
  BK(g, max_pool2d_forward, y->data, s.argmax, x->data, &s.geom);
  record_pool(g, "max_pool2d", max_pool_bwd, y, x, s);
  return y;
}

static void global_avg_pool_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0];
  BK(g, global_avg_pool_backward, graph_grad(g, x), n->out->grad, x->shape[0], x->shape[1], x->shape[2] * x->shape[3]);
}

Tensor *ag_global_avg_pool(Graph *g, Tensor *x) {
  AG_INPUTS(g, x);
  CHECK(x->ndim == 4);
  Tensor *y = new4(g, x->shape[0], x->shape[1], 1, 1);
  BK(g, global_avg_pool_forward, y->data, x->data, x->shape[0], x->shape[1], x->shape[2] * x->shape[3]);
  AG_RECORD(g, "global_avg_pool", global_avg_pool_bwd, y, x);
  return y;
}

Tensor *ag_bilinear_resize(Graph *g, Tensor *x, int out_h, int out_w) {
  AG_INPUTS(g, x);
  AG_FORWARD_ONLY(g, "bilinear_resize has no backward", x);
  CHECK(x->ndim == 4 && out_h > 0 && out_w > 0);
  Tensor *y = new4(g, x->shape[0], x->shape[1], out_h, out_w);
  BK(g, bilinear_resize_forward, y->data, x->data, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], out_h, out_w);
  return y;
}

static void pool_tokens_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0], *pos = n->in[1];
  BK(g, pool_tokens_backward, grad_if_needed(g, x), grad_if_needed(g, pos), n->out->grad, x->shape[0], x->shape[1],
     x->shape[2] * x->shape[3]);
}

Tensor *ag_pool_tokens(Graph *g, Tensor *x, Tensor *pos) {
  AG_INPUTS(g, x, pos);
  const int HW = x->shape[2] * x->shape[3];
  CHECK(x->ndim == 4 && pos->ndim == 2 && pos->shape[0] == x->shape[1] && pos->shape[1] == HW + 1);
  Tensor *y = new4(g, x->shape[0], x->shape[1], 1, HW + 1);
  BK(g, pool_tokens_forward, y->data, x->data, pos->data, x->shape[0], x->shape[1], HW);
  AG_RECORD(g, "pool_tokens", pool_tokens_bwd, y, x, pos);
  return y;
}

static void first_token_bwd(Graph *g, GraphNode *n) {
  Tensor *x = n->in[0];
  BK(g, first_token_backward, graph_grad(g, x), n->out->grad, x->shape[0], x->shape[1], x->shape[2] * x->shape[3]);
}

Tensor *ag_first_token(Graph *g, Tensor *x) {
  AG_INPUTS(g, x);
  CHECK(x->ndim == 4);
  const int shape[2] = {x->shape[0], x->shape[1]};
  Tensor *y = graph_tensor(g, 2, shape);
  BK(g, first_token_forward, y->data, x->data, x->shape[0], x->shape[1], x->shape[2] * x->shape[3]);
  AG_RECORD(g, "first_token", first_token_bwd, y, x);
  return y;
}
