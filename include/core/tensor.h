/* tensor.h - contiguous float32 tensors of up to 4 dims (NCHW, as PyTorch), in a backend's memory.
 *
 * No strides, no broadcasting: each op states the shapes it accepts and checks them. `data` and
 * `grad` are borrowed addresses in the memory of `backend` (backend/backend.h): into a graph's data
 * arena for activations, into the flat parameter buffers for parameters. `grad` stays NULL until a
 * backward pass writes to it.
 *
 * The rule of the backend seam: only the kernels (src/ops/) and the backend implementations
 * (src/backend/) read or write tensor memory. BackendMem is an incomplete type, so code above the
 * seam cannot dereference it (a compile error, on every backend); it moves data with the backend's
 * upload/download/copy and computes with the backend's ops. scripts/check_layers.sh, run by
 * .ci/run, rejects casts that would get around it.
 */
#ifndef DIFFUSE_CORE_TENSOR_H
#define DIFFUSE_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>

#define TENSOR_MAX_DIMS 4

/* An address in some backend's memory (a host pointer for the CPU backend, a device pointer for a
 * GPU one). Never dereferenced above the seam. */
typedef struct BackendMem BackendMem;
typedef struct Backend Backend;

typedef struct {
  BackendMem *data;
  BackendMem *grad;
  const Backend *backend; /* holds data and grad */
  int ndim;
  int shape[TENSOR_MAX_DIMS];
  size_t numel;
  bool requires_grad;
} Tensor;

/* The address `floats` float32 elements past p (address arithmetic only: nothing is read). */
static inline BackendMem *mem_floats_at(const BackendMem *p, size_t floats) {
  return (BackendMem *)((const char *)p + floats * sizeof(float));
}

/* Fill in shape/numel of *t; data, grad and backend are left untouched. */
void tensor_set_shape(Tensor *t, int ndim, const int *shape);
bool tensor_same_shape(const Tensor *a, const Tensor *b);

#endif
