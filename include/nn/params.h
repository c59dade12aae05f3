/* params.h - the parameter table: every trainable tensor of a model in one flat buffer.
 *
 * Parameters are registered by name (the PyTorch state-dict key) and shape, then
 * params_finalize() allocates `data` and `grad` (and, on request, the optimizer moments and EMA
 * buffers) with one contiguous layout, so zero-grad, AdamW, EMA, clipping and checkpoint I/O are
 * single loops over `total` floats. The buffers are in the memory of the table's backend: read and
 * write one parameter from the host with params_read / params_write.
 */
#ifndef DIFFUSE_NN_PARAMS_H
#define DIFFUSE_NN_PARAMS_H

#include <stddef.h>

#include "backend/backend.h"
#include "core/tensor.h"

#define PARAM_NAME_MAX 128

typedef struct {
  char name[PARAM_NAME_MAX];
  int ndim;
  int shape[TENSOR_MAX_DIMS];
  size_t offset, numel;
} ParamInfo;

typedef struct {
  ParamInfo *info;
  int count, cap;
  size_t total;                /* floats */
  const Backend *backend;      /* holds the buffers below */
  BackendMem *data, *grad;     /* allocated by params_finalize */
  BackendMem *adam_m, *adam_v; /* allocated by params_alloc_optimizer */
  BackendMem *ema;             /* allocated by params_alloc_ema */
  Tensor *tensors;        /* views into data/grad, one per parameter */
} ParamTable;

void params_init(ParamTable *p);
void params_free(ParamTable *p);
/* Returns the parameter's index. Names must be unique. */
int params_add(ParamTable *p, const char *name, int ndim, const int *shape);
/* Allocate the weights (zeroed) and, unless with_grad is false (inference), the gradients. */
void params_finalize(ParamTable *p, const Backend *backend, bool with_grad);
void params_alloc_optimizer(ParamTable *p); /* zeroed moments */
void params_alloc_ema(ParamTable *p);       /* initialised to a copy of data */
Tensor *params_tensor(ParamTable *p, int index);
int params_find(const ParamTable *p, const char *name); /* -1 if absent */
void params_zero_grad(ParamTable *p);
/* Parameter `index` of a flat buffer of this table (data, ema, adam_m, ...) to or from the host
 * (numel floats). */
void params_read(const ParamTable *p, const BackendMem *buf, int index, float *host);
void params_write(ParamTable *p, BackendMem *buf, int index, const float *host);
/* Set every element of parameter `index` of the weights to v. */
void params_fill(ParamTable *p, int index, float v);
/* Whether backward passes compute parameter gradients (on by default); off for input-only VJPs. */
void params_set_requires_grad(ParamTable *p, bool on);
/* Exchange the weights and EMA buffers (tensors follow), e.g. to sample with the EMA weights;
 * calling it twice restores the original state. */
void params_swap_ema(ParamTable *p);

#endif
