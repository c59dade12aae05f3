/* params.c - flat parameter table; see params.h. */
#include "nn/params.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define PARAM_ALIGN_FLOATS 16 /* each parameter starts on a 64-byte boundary */

void params_init(ParamTable *p) { memset(p, 0, sizeof *p); }

void params_free(ParamTable *p) {
  free(p->info);
  free(p->data);
  free(p->grad);
  free(p->adam_m);
  free(p->adam_v);
  free(p->ema);
  free(p->tensors);
  memset(p, 0, sizeof *p);
}

int params_find(const ParamTable *p, const char *name) {
  for (int i = 0; i < p->count; i++)
    if (strcmp(p->info[i].name, name) == 0) return i;
  return -1;
}

int params_add(ParamTable *p, const char *name, int ndim, const int *shape) {
  CHECK(!p->data && "params_add after params_finalize");
  CHECK(strlen(name) < PARAM_NAME_MAX && params_find(p, name) < 0);
  CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS);
  if (p->count == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 64;
    p->info = xrealloc(p->info, (size_t)p->cap * sizeof *p->info);
  }
  ParamInfo *pi = &p->info[p->count];
  memset(pi, 0, sizeof *pi);
  strcpy(pi->name, name);
  pi->ndim = ndim;
  pi->numel = 1;
  for (int i = 0; i < ndim; i++) pi->shape[i] = shape[i], pi->numel *= (size_t)shape[i];
  pi->offset = p->total;
  p->total += (pi->numel + PARAM_ALIGN_FLOATS - 1) / PARAM_ALIGN_FLOATS * PARAM_ALIGN_FLOATS;
  return p->count++;
}

static float *flat_zeros(size_t n) {
  float *b = xmalloc_aligned(64, n * sizeof(float));
  memset(b, 0, n * sizeof(float));
  return b;
}

void params_finalize(ParamTable *p) {
  CHECK(!p->data);
  p->data = flat_zeros(p->total);
  p->grad = flat_zeros(p->total);
  p->tensors = xcalloc((size_t)p->count, sizeof *p->tensors);
  for (int i = 0; i < p->count; i++) {
    Tensor *t = &p->tensors[i];
    tensor_set_shape(t, p->info[i].ndim, p->info[i].shape);
    t->data = p->data + p->info[i].offset;
    t->grad = p->grad + p->info[i].offset;
    t->requires_grad = true;
  }
}

void params_alloc_optimizer(ParamTable *p) {
  CHECK(p->data && !p->adam_m);
  p->adam_m = flat_zeros(p->total);
  p->adam_v = flat_zeros(p->total);
}

void params_alloc_ema(ParamTable *p) {
  CHECK(p->data && !p->ema);
  p->ema = flat_zeros(p->total);
  memcpy(p->ema, p->data, p->total * sizeof(float));
}

Tensor *params_tensor(ParamTable *p, int index) {
  CHECK(p->tensors && index >= 0 && index < p->count);
  return &p->tensors[index];
}

void params_zero_grad(ParamTable *p) { memset(p->grad, 0, p->total * sizeof(float)); }

void params_set_requires_grad(ParamTable *p, bool on) {
  for (int i = 0; i < p->count; i++) p->tensors[i].requires_grad = on;
}

void params_swap_ema(ParamTable *p) {
  CHECK(p->ema);
  float *t = p->data;
  p->data = p->ema;
  p->ema = t;
  for (int i = 0; i < p->count; i++) p->tensors[i].data = p->data + p->info[i].offset;
}
