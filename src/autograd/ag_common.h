/* ag_common.h - helpers shared by the ag_*.c files (private to autograd/). */
#ifndef DIFFUSE_AUTOGRAD_AG_COMMON_H
#define DIFFUSE_AUTOGRAD_AG_COMMON_H

#include "autograd/graph.h"
#include "core/error.h"

/* Call op `op` of the graph's backend: BK(g, silu_forward, y->data, x->data, n). */
#define BK(g, op, ...) ((g)->backend->ops->op((g)->backend, __VA_ARGS__))

/* Gradient buffer of an input when it wants one, else NULL (kernels skip NULL outputs). */
static inline BackendMem *grad_if_needed(Graph *g, Tensor *t) {
  return (t && t->requires_grad) ? graph_grad(g, t) : NULL;
}

static inline BackendMem *data_or_null(const Tensor *t) { return t ? t->data : NULL; }

static inline Tensor *new_like(Graph *g, const Tensor *x) { return graph_tensor(g, x->ndim, x->shape); }

static inline Tensor *new4(Graph *g, int a, int b, int c, int d) {
  const int s[4] = {a, b, c, d};
  return graph_tensor(g, 4, s);
}

/* Every input lives on the graph's backend (a tensor of another backend is a programming error). */
static inline void check_backends(const Graph *g, Tensor *const *inputs, int n) {
  for (int i = 0; i < n; i++) CHECK(!inputs[i] || inputs[i]->backend == g->backend);
}
#define AG_COUNT(...) (int)(sizeof((Tensor *[]){__VA_ARGS__}) / sizeof(Tensor *))
#define AG_INPUTS(g, ...) check_backends((g), (Tensor *const[]){__VA_ARGS__}, AG_COUNT(__VA_ARGS__))

/* Record if needed; evaluates to the node or NULL. */
#define AG_RECORD(g, name, fn, out, ...)                                                                        \
  (graph_needs_grad((g), (Tensor *const[]){__VA_ARGS__}, AG_COUNT(__VA_ARGS__))                                 \
       ? graph_record((g), (name), (fn), (out), (Tensor *const[]){__VA_ARGS__}, AG_COUNT(__VA_ARGS__))          \
       : NULL)

/* Ops without a backward refuse to run where a gradient would be silently lost. */
#define AG_FORWARD_ONLY(g, opname, ...) \
  CHECK(!graph_needs_grad((g), (Tensor *const[]){__VA_ARGS__}, AG_COUNT(__VA_ARGS__)) && opname)

#endif
