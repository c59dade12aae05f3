/* tensor.h - contiguous float32 tensors of up to 4 dims (NCHW, as PyTorch).
 *
 * No strides, no broadcasting: each op states the shapes it accepts and checks them. `data` and
 * `grad` are borrowed pointers: into a graph's arena for activations, into the flat parameter
 * buffers for parameters. `grad` stays NULL until a backward pass writes to it.
 */
#ifndef DIFFUSE_CORE_TENSOR_H
#define DIFFUSE_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>

#define TENSOR_MAX_DIMS 4

typedef struct {
  float *data;
  float *grad;
  int ndim;
  int shape[TENSOR_MAX_DIMS];
  size_t numel;
  bool requires_grad;
} Tensor;

/* Fill in shape/numel of *t; data and grad are left untouched. */
void tensor_set_shape(Tensor *t, int ndim, const int *shape);
bool tensor_same_shape(const Tensor *a, const Tensor *b);

#endif
