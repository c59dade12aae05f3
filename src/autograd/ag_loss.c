/* ag_loss.c - autograd wrappers for the scalar losses (MSE, weighted MSE, the learned-variance bound) (the loss and its seed gradient are one
 * float in backend memory). */
#include "ag_common.h"
#include "autograd/functions.h"
#include "core/gaussian.h"

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

typedef struct {
  bool grad_mean;
} VlbSaved;

static void vlb_bwd(Graph *g, GraphNode *n) {
  Tensor *net = n->in[0], *xt = n->in[1], *x0 = n->in[2], *coef = n->in[3];
  const VlbSaved *s = n->saved;
  BK(g, vlb_backward, graph_grad(g, net), n->out->grad, net->data, xt->data, x0->data, coef->data, net->shape[0],
     net->shape[1] / 2, net->shape[2] * net->shape[3], s->grad_mean);
}

Tensor *ag_vlb_loss(Graph *g, Tensor *net, Tensor *xt, Tensor *x0, Tensor *coef, bool grad_mean, Tensor **terms) {
  AG_INPUTS(g, net, xt, x0, coef);
  CHECK(net->ndim == 4 && net->shape[1] % 2 == 0 && tensor_same_shape(xt, x0) && xt->ndim == 4);
  const int B = net->shape[0], C = net->shape[1] / 2, HW = net->shape[2] * net->shape[3];
  CHECK(xt->shape[0] == B && xt->shape[1] == C && xt->shape[2] * xt->shape[3] == HW);
  CHECK(coef->numel == (size_t)B * VLB_COEFS && !xt->requires_grad && !x0->requires_grad && !coef->requires_grad);
  Tensor *y = scalar(g), *per_sample = graph_tensor(g, 1, &B);
  BK(g, vlb_forward, y->data, per_sample->data, net->data, xt->data, x0->data, coef->data, B, C, HW);
  GraphNode *node = AG_RECORD(g, "vlb", vlb_bwd, y, net, xt, x0, coef);
  if (node) {
    VlbSaved *s = arena_alloc(&g->arena, sizeof *s);
    s->grad_mean = grad_mean;
    node->saved = s;
  }
  if (terms) *terms = per_sample;
  return y;
}

typedef struct {
  BackendMem *labels; /* int32, backend memory */
} CrossEntropySaved;

static void cross_entropy_bwd(Graph *g, GraphNode *n) {
  Tensor *logits = n->in[0];
  const CrossEntropySaved *s = n->saved;
  BK(g, cross_entropy_backward, graph_grad(g, logits), n->out->grad, logits->data, s->labels, logits->shape[0],
     logits->shape[1]);
}

Tensor *ag_cross_entropy(Graph *g, Tensor *logits, const int *labels) {
  AG_INPUTS(g, logits);
  CHECK(logits->ndim == 2);
  const int B = logits->shape[0], K = logits->shape[1];
  for (int b = 0; b < B; b++) CHECK(labels[b] >= 0 && labels[b] < K);
  BackendMem *dev_labels = graph_data(g, (size_t)B * sizeof(int));
  backend_upload(g->backend, dev_labels, labels, (size_t)B * sizeof(int));
  Tensor *y = scalar(g);
  BK(g, cross_entropy_forward, y->data, logits->data, dev_labels, B, K);
  GraphNode *n = AG_RECORD(g, "cross_entropy", cross_entropy_bwd, y, logits);
  if (n) {
    CrossEntropySaved *s = arena_alloc(&g->arena, sizeof *s);
    s->labels = dev_labels;
    n->saved = s;
  }
  return y;
}
