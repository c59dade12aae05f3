/* ag_loss.c - autograd wrappers for the scalar MSE losses (the loss and its seed gradient are one
 * float in backend memory). */
#include "ag_common.h"
#include "autograd/functions.h"

static Tensor *scalar(Graph *g) {
  const int one = 1;
  return graph_tensor(g, 1, &one);
}

static void mse_bwd(Graph *g, GraphNode *n) {
  Tensor *a = n->in[0], *b = n->in[1];
  BK(g, mse_backward, grad_if_needed(g, a), grad_if_needed(g, b), n->out->grad, a->data, b->data, a->numel);
}

Tensor *ag_mse(Graph *g, Tensor *pred, Tensor *target) {
  AG_INPUTS(g, pred, target);
  CHECK(tensor_same_shape(pred, target));
  Tensor *y = scalar(g);
  BK(g, mse_forward, y->data, pred->data, target->data, pred->numel);
  AG_RECORD(g, "mse", mse_bwd, y, pred, target);
  return y;
}

static void weighted_mse_bwd(Graph *g, GraphNode *n) {
  Tensor *a = n->in[0], *b = n->in[1], *w = n->in[2];
  const int B = a->shape[0];
  BK(g, weighted_mse_backward, grad_if_needed(g, a), grad_if_needed(g, b), n->out->grad, a->data, b->data, w->data,
     B, a->numel / B);
}

Tensor *ag_weighted_mse(Graph *g, Tensor *pred, Tensor *target, Tensor *w) {
  AG_INPUTS(g, pred, target, w);
  CHECK(tensor_same_shape(pred, target) && w->numel == (size_t)pred->shape[0]);
  CHECK(!w->requires_grad);
  const int B = pred->shape[0];
  Tensor *y = scalar(g);
  BK(g, weighted_mse_forward, y->data, pred->data, target->data, w->data, B, pred->numel / B);
  AG_RECORD(g, "weighted_mse", weighted_mse_bwd, y, pred, target);
  if (g->last && g->last->out == y) g->last->in[2] = w;
  return y;
}
