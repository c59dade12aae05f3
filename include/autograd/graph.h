/* graph.h - reverse-mode autograd over coarse ops.
 *
 * A Graph is bound to one backend (backend/backend.h). It keeps its metadata (tensors, tape nodes,
 * op attributes) in a host arena and its activations in an arena of the backend's memory, and it
 * calls kernels only through the backend's op table, so it runs unchanged on any backend. Each
 * ag_* function (functions.h) computes its output with a forward kernel and, when grad mode is on
 * and some input requires a
 * gradient, records a node holding its inputs, output and whatever its backward kernel needs.
 * graph_backward walks the tape in reverse; gradients accumulate with +=, so fan-out needs no
 * special case. Gradients w.r.t. inputs work like those w.r.t. parameters: mark the input
 * tensor requires_grad. graph_reset frees all activations at once (no malloc in steady state).
 */
#ifndef DIFFUSE_AUTOGRAD_GRAPH_H
#define DIFFUSE_AUTOGRAD_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/arena.h"
#include "core/tensor.h"

typedef struct Graph Graph;
typedef struct GraphNode GraphNode;
typedef void (*BackwardFn)(Graph *g, GraphNode *node);

#define GRAPH_MAX_INPUTS 5

struct GraphNode {
  GraphNode *prev;
  BackwardFn backward;
  const char *name; /* op name, for diagnostics and profiling */
  Tensor *out;
  Tensor *in[GRAPH_MAX_INPUTS];
  void *saved; /* op-specific state in the graph arena */
};

/* Per-op time of training steps (ops are timed as they are recorded, so with gradients on): an op's
 * forward time is the wall time since the previous recorded op, its backward the time of its
 * backward kernel. Enable with graph.profile = &p (zeroed); graph_reset starts the clock. */
#define GRAPH_PROFILE_MAX 48
typedef struct {
  const char *name;
  double forward_s, backward_s;
  double flops; /* forward multiply-adds x2 counted by the op (g->flops), 0 for pointwise ops */
  long calls;
} GraphProfileEntry;
typedef struct {
  double last;       /* clock at the previous recorded op */
  double last_flops; /* g->flops at the previous recorded op */
  GraphProfileEntry entries[GRAPH_PROFILE_MAX];
  int n;
} GraphProfile;

struct Graph {
  const Backend *backend; /* holds every tensor this graph creates, and runs its ops */
  Arena arena;            /* host: Tensor structs, nodes, saved attributes */
  Arena data;             /* backend memory: activations and what backward kernels keep */
  GraphNode *last;
  bool grad_enabled;
  bool training;          /* dropout active */
  uint64_t dropout_seed;  /* set per step by the trainer */
  uint64_t dropout_calls; /* stream counter, reset by graph_reset */
  uint64_t first_sample;  /* index of this batch's first sample in the full batch (dropout masks are
                             per sample, so gradient accumulation draws what one large batch would) */
  double flops;           /* multiply-adds x2 of conv/linear/attention forwards since the last reset */
  GraphProfile *profile;  /* NULL: no timing */
  BackendMem *scratch;    /* per-op temporary memory (im2col columns), see graph_scratch */
  size_t scratch_cap;
  struct GraphGradBuffer *grad_buffers; /* see graph_grad */
  int n_grad_buffers, cap_grad_buffers;
};

/* arena_bytes: the first size of the data arena (it grows to the high-water mark). */
void graph_init(Graph *g, const Backend *backend, size_t arena_bytes);
void graph_free(Graph *g);
/* Drop the tape and all activations. Tensors created by this graph become invalid. */
void graph_reset(Graph *g);

/* A new tensor whose data lives in the graph's data arena (uninitialised / zeroed / a copy of
 * numel host floats). */
Tensor *graph_tensor(Graph *g, int ndim, const int *shape);
Tensor *graph_tensor_zeros(Graph *g, int ndim, const int *shape);
Tensor *graph_tensor_upload(Graph *g, int ndim, const int *shape, const float *host);
/* Wrap memory of the graph's backend (a parameter, a view of another tensor) as a tensor. */
Tensor *graph_wrap(Graph *g, BackendMem *data, int ndim, const int *shape, bool requires_grad);
/* Backend memory in the data arena, until graph_reset: `bytes` (masks, indices) or n floats. */
BackendMem *graph_data(Graph *g, size_t bytes);
static inline BackendMem *graph_floats(Graph *g, size_t n) { return graph_data(g, n * sizeof(float)); }
/* Bytes the graph's arenas reached (activations and metadata), the measure of a pass's memory. */
size_t graph_high_water(const Graph *g);

/* Temporary backend memory for one op call (n floats, uninitialised): valid until the next call;
 * grows to the largest request once, then is reused, so steady-state steps allocate nothing. */
BackendMem *graph_scratch(Graph *g, size_t n);

/* Grad-off memory reuse: everything a block of layers allocates after graph_mark is dropped by
 * graph_keep_only, which moves the block's output down to the mark and returns it. Only while
 * nothing is recorded (gradients off or no input needs one); otherwise, or when the arena had to
 * chain a new block meanwhile, the output is returned as it is. Tensors created after the mark
 * other than `out` become invalid. Sampling the CIFAR-10 U-Net then holds one block's activations
 * and the skip connections instead of every activation of the forward pass. */
typedef struct {
  ArenaMark arena, data;
  const GraphNode *last;
} GraphMark;
GraphMark graph_mark(const Graph *g);
Tensor *graph_keep_only(Graph *g, GraphMark m, Tensor *out);

/* t->grad, zeroed on first use. Gradient buffers come from a pool owned by the graph: the backward
 * sweep returns an op output's gradient to it as soon as that op's backward has run (every consumer
 * has accumulated into it by then) and sets t->grad to NULL, so the sweep holds a few activation
 * gradients at a time rather than one per activation (CIFAR-10 U-Net training step at batch 8: peak
 * RSS 1853 -> 1452 MiB). Gradients of tensors no recorded op produced (inputs) stay until graph_reset. */
BackendMem *graph_grad(Graph *g, Tensor *t);

/* Backward from a scalar (numel 1) with seed gradient 1. */
void graph_backward(Graph *g, Tensor *loss);
/* Backward from any tensor with the given upstream gradient (out->numel floats in the graph's
 * backend memory): a vector-Jacobian product. */
void graph_backward_from(Graph *g, Tensor *out, const BackendMem *grad_out);

/* Used by ops: true when an op with these inputs must be recorded. */
bool graph_needs_grad(const Graph *g, Tensor *const *inputs, int n_inputs);
/* Record a node; the output's requires_grad is set. Returns the node for the op to fill `saved`. */
GraphNode *graph_record(Graph *g, const char *name, BackwardFn backward, Tensor *out, Tensor *const *inputs,
                        int n_inputs);

#endif
