/* params.c - flat parameter table; see params.h. */
#include "nn/params.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define PARAM_ALIGN_FLOATS 16 /* each parameter starts on a 64-byte boundary */

void params_init(ParamTable *p) { memset(p, 0, sizeof *p); }

void params_free(ParamTable *p) {
  free(p->info);
  BackendMem *buffers[5] = {p->data, p->grad, p->adam_m, p->adam_v, p->ema};
  for (int i = 0; i < 5; i++)
    if (buffers[i]) p->backend->ops->free(p->backend, buffers[i]);
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

static BackendMem *flat_zeros(const ParamTable *p, const char *what) {
  const size_t bytes = (p->total ? p->total : 1) * sizeof(float);
  BackendMem *b = backend_alloc_or_exit(p->backend, bytes, what);
  p->backend->ops->memset(p->backend, b, 0, bytes);
  return b;
}

void params_finalize(ParamTable *p, const Backend *backend, bool with_grad) {
  CHECK(!p->data);
  p->backend = backend;
  p->data = flat_zeros(p, "the model's weights");
  p->grad = with_grad ? flat_zeros(p, "the weight gradients") : NULL;
  p->tensors = xcalloc((size_t)p->count, sizeof *p->tensors);
  for (int i = 0; i < p->count; i++) {
    Tensor *t = &p->tensors[i];
    tensor_set_shape(t, p->info[i].ndim, p->info[i].shape);
    t->data = mem_floats_at(p->data, p->info[i].offset);
    t->grad = with_grad ? mem_floats_at(p->grad, p->info[i].offset) : NULL;
    t->backend = backend;
    t->requires_grad = with_grad;
  }
}

void params_alloc_optimizer(ParamTable *p) {
  CHECK(p->data && !p->adam_m);
  p->adam_m = flat_zeros(p, "the AdamW moments");
  p->adam_v = flat_zeros(p, "the AdamW moments");
}

void params_alloc_ema(ParamTable *p) {
  CHECK(p->data && !p->ema);
  p->ema = flat_zeros(p, "the EMA weights");
  p->backend->ops->copy(p->backend, p->ema, p->data, p->total * sizeof(float));
}

Tensor *params_tensor(ParamTable *p, int index) {
  CHECK(p->tensors && index >= 0 && index < p->count);
  return &p->tensors[index];
}

void params_zero_grad(ParamTable *p) { p->backend->ops->memset(p->backend, p->grad, 0, p->total * sizeof(float)); }

void params_read(const ParamTable *p, const BackendMem *buf, int index, float *host) {
  CHECK(buf && index >= 0 && index < p->count);
  backend_download(p->backend, host, mem_floats_at(buf, p->info[index].offset), p->info[index].numel * sizeof(float));
}

void params_write(ParamTable *p, BackendMem *buf, int index, const float *host) {
  CHECK(buf && index >= 0 && index < p->count);
  backend_upload(p->backend, mem_floats_at(buf, p->info[index].offset), host, p->info[index].numel * sizeof(float));
}

void params_fill(ParamTable *p, int index, float v) {
  CHECK(index >= 0 && index < p->count);
  const size_t n = p->info[index].numel;
  float *host = xmalloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) host[i] = v;
  params_write(p, p->data, index, host);
  free(host);
}

void params_set_requires_grad(ParamTable *p, bool on) {
  for (int i = 0; i < p->count; i++) p->tensors[i].requires_grad = on && p->grad; /* none without a buffer */
}

void params_swap_ema(ParamTable *p) {
  CHECK(p->ema);
  BackendMem *t = p->data;
  p->data = p->ema;
  p->ema = t;
  for (int i = 0; i < p->count; i++) p->tensors[i].data = mem_floats_at(p->data, p->info[i].offset);
}
