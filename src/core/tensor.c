/* tensor.c - shape helpers for Tensor. */
#include "core/tensor.h"

#include "core/error.h"

void tensor_set_shape(Tensor *t, int ndim, const int *shape) {
  CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS);
  t->ndim = ndim;
  t->numel = 1;
  for (int i = 0; i < TENSOR_MAX_DIMS; i++) {
    t->shape[i] = i < ndim ? shape[i] : 1;
    if (i < ndim) {
      CHECK(shape[i] >= 0);
      t->numel *= (size_t)shape[i];
    }
  }
}

bool tensor_same_shape(const Tensor *a, const Tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}
