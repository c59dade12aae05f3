/* safetensors.c - bounds-checked safetensors reader and atomic writer; see safetensors.h. */
#include "io/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/file_read.h"

static const struct {
  const char *name;
  StDtype dtype;
  size_t size;
} DTYPES[] = {{"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
              {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"U8", ST_U8, 1},     {"I8", ST_OTHER, 1},
              {"I16", ST_OTHER, 2}, {"U16", ST_OTHER, 2}, {"U32", ST_OTHER, 4}, {"U64", ST_OTHER, 8},
              {"BOOL", ST_OTHER, 1}};

static int dtype_lookup(const char *name, StDtype *dtype, size_t *size) {
  for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
    if (strcmp(name, DTYPES[i].name) == 0) {
      *dtype = DTYPES[i].dtype;
      *size = DTYPES[i].size;
      return 0;
    }
  return -1;
}

void st_free(SafeTensors *st) {
  for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
  for (int i = 0; i < st->n_meta; i++) free(st->meta[i].key), free(st->meta[i].value);
  free(st->tensors);
  free(st->meta);
  free(st->buf);
  memset(st, 0, sizeof *st);
}

static int parse_metadata(SafeTensors *st, const cJSON *meta, char *err, size_t errlen) {
  if (!cJSON_IsObject(meta)) return errorf(err, errlen, "__metadata__ is not a JSON object");
  st->meta = xcalloc((size_t)cJSON_GetArraySize(meta), sizeof *st->meta);
  for (const cJSON *kv = meta->child; kv; kv = kv->next) {
    if (!cJSON_IsString(kv) || !kv->string) return errorf(err, errlen, "__metadata__ values must be strings");
    st->meta[st->n_meta].key = xstrdup(kv->string);
    st->meta[st->n_meta].value = xstrdup(kv->valuestring);
    st->n_meta++;
  }
  return 0;
}

static int parse_entry(StTensor *t, const cJSON *e, const uint8_t *data, size_t data_size, char *err,
                       size_t errlen) {
  const char *name = e->string;
  if (!cJSON_IsObject(e)) return errorf(err, errlen, "tensor '%s': entry is not an object", name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
    return errorf(err, errlen, "tensor '%s': needs string dtype, array shape and array data_offsets", name);
  size_t esize;
  if (strlen(dt->valuestring) >= sizeof t->dtype_name || dtype_lookup(dt->valuestring, &t->dtype, &esize) != 0)
    return errorf(err, errlen, "tensor '%s': unknown dtype '%.16s'", name, dt->valuestring);
  strcpy(t->dtype_name, dt->valuestring);
  t->ndim = cJSON_GetArraySize(sh);
  if (t->ndim > ST_MAX_DIMS) return errorf(err, errlen, "tensor '%s': %d dims (max %d)", name, t->ndim, ST_MAX_DIMS);
  size_t numel = 1;
  int d = 0;
  for (const cJSON *s = sh->child; s; s = s->next, d++) {
    if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 1e15 || floor(s->valuedouble) != s->valuedouble)
      return errorf(err, errlen, "tensor '%s': shape entries must be non-negative integers", name);
    t->shape[d] = (int64_t)s->valuedouble;
    if (t->shape[d] != 0 && numel > SIZE_MAX / (size_t)t->shape[d])
      return errorf(err, errlen, "tensor '%s': shape overflows", name);
    numel *= (size_t)t->shape[d];
  }
  t->numel = numel;
  if (cJSON_GetArraySize(off) != 2 || !cJSON_IsNumber(off->child) || !cJSON_IsNumber(off->child->next))
    return errorf(err, errlen, "tensor '%s': data_offsets must be [begin, end]", name);
  const double b = off->child->valuedouble, en = off->child->next->valuedouble;
  if (b < 0 || en < b || en > (double)data_size || floor(b) != b || floor(en) != en)
    return errorf(err, errlen, "tensor '%s': data_offsets [%.0f, %.0f] outside the %zu-byte data section", name, b,
                  en, data_size);
  t->nbytes = (size_t)en - (size_t)b;
  if (numel > SIZE_MAX / esize || t->nbytes != numel * esize)
    return errorf(err, errlen, "tensor '%s': %zu bytes of data for %zu elements of %s", name, t->nbytes, numel,
                  t->dtype_name);
  t->data = data + (size_t)b;
  return 0;
}

static int cmp_by_name(const void *a, const void *b) {
  return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

static int cmp_by_offset(const void *a, const void *b) {
  const StTensor *x = a, *y = b;
  return x->data < y->data ? -1 : x->data > y->data;
}

int st_parse(SafeTensors *st, uint8_t *buf, size_t size, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  st->buf = buf;
  st->size = size;
  if (size < 8) {
    st_free(st);
    return errorf(err, errlen, "file too short for a safetensors header (%zu bytes)", size);
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
  if (hlen > ST_MAX_HEADER_BYTES || hlen > size - 8) {
    st_free(st);
    return errorf(err, errlen, "header length %llu does not fit the %zu-byte file (truncated or not safetensors)",
                  (unsigned long long)hlen, size);
  }
  const uint8_t *data = buf + 8 + hlen;
  const size_t data_size = size - 8 - hlen;
  cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
  int rc = 0;
  if (!cJSON_IsObject(root)) {
    rc = errorf(err, errlen, "header is not a JSON object");
    goto done;
  }
  st->tensors = xcalloc((size_t)cJSON_GetArraySize(root), sizeof *st->tensors);
  for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
    if (!e->string) {
      rc = errorf(err, errlen, "header entry without a name");
    } else if (strcmp(e->string, "__metadata__") == 0) {
      rc = st->meta ? errorf(err, errlen, "__metadata__ appears twice") : parse_metadata(st, e, err, errlen);
    } else {
      StTensor *t = &st->tensors[st->n_tensors];
      rc = parse_entry(t, e, data, data_size, err, errlen);
      if (rc == 0) t->name = xstrdup(e->string), st->n_tensors++;
    }
  }
  if (rc == 0 && st->n_tensors > 1) { /* names must be unique and tensors must not overlap */
    StTensor *sorted = xmalloc((size_t)st->n_tensors * sizeof *sorted);
    memcpy(sorted, st->tensors, (size_t)st->n_tensors * sizeof *sorted);
    qsort(sorted, (size_t)st->n_tensors, sizeof *sorted, cmp_by_name);
    for (int i = 1; i < st->n_tensors && rc == 0; i++)
      if (strcmp(sorted[i - 1].name, sorted[i].name) == 0)
        rc = errorf(err, errlen, "tensor '%s' appears twice", sorted[i].name);
    qsort(sorted, (size_t)st->n_tensors, sizeof *sorted, cmp_by_offset);
    for (int i = 1; i < st->n_tensors && rc == 0; i++)
      if (sorted[i - 1].data + sorted[i - 1].nbytes > sorted[i].data)
        rc = errorf(err, errlen, "tensors '%s' and '%s' overlap", sorted[i - 1].name, sorted[i].name);
    free(sorted);
  }
done:
  cJSON_Delete(root);
  if (rc != 0) st_free(st);
  return rc;
}

int st_load(SafeTensors *st, const char *path, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  uint8_t *buf;
  size_t size;
  if (file_read_all(path, 0, &buf, &size, err, errlen)) return -1;
  char inner[512];
  if (st_parse(st, buf, size, inner, sizeof inner) != 0)
    return errorf(err, errlen, "%s: not a valid safetensors file: %s", path, inner);
  return 0;
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
  for (int i = 0; i < st->n_tensors; i++)
    if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
  return NULL;
}

const char *st_meta_get(const SafeTensors *st, const char *key) {
  for (int i = 0; i < st->n_meta; i++)
    if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
  return NULL;
}

static float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  float v;
  if (exp == 0) v = ldexpf((float)mant, -24);                    /* zero / subnormal */
  else if (exp == 31) v = mant ? NAN : INFINITY;                 /* inf / nan */
  else v = ldexpf((float)(mant | 0x400), exp - 25);              /* normal */
  uint32_t bits;
  memcpy(&bits, &v, 4);
  bits |= sign;
  memcpy(&v, &bits, 4);
  return v;
}

int st_tensor_to_f32(const StTensor *t, float *out, char *err, size_t errlen) {
  const uint8_t *p = t->data;
  switch (t->dtype) {
    case ST_F32: memcpy(out, p, t->numel * 4); break; /* little-endian host */
    case ST_F16:
      for (size_t i = 0; i < t->numel; i++) out[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
      break;
    case ST_BF16:
      for (size_t i = 0; i < t->numel; i++) {
        const uint32_t bits = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
        memcpy(&out[i], &bits, 4);
      }
      break;
    case ST_F64:
      for (size_t i = 0; i < t->numel; i++) {
        double d;
        memcpy(&d, p + 8 * i, 8);
        out[i] = fabs(d) <= FLT_MAX ? (float)d : (float)(d * INFINITY); /* out of range: +-inf (NaN stays NaN) */
      }
      break;
    default:
      return errorf(err, errlen, "tensor '%s' has dtype %s; expected a floating-point type", t->name, t->dtype_name);
  }
  for (size_t i = 0; i < t->numel; i++)
    if (!isfinite(out[i]))
      return errorf(err, errlen, "tensor '%s' holds a non-finite value (%g at index %zu)", t->name, out[i], i);
  return 0;
}

/* ---- writer ---- */

void st_writer_init(StWriter *w) { memset(w, 0, sizeof *w); }

void st_writer_free(StWriter *w) {
  for (int i = 0; i < w->n; i++) free(w->entries[i].name);
  for (int i = 0; i < w->n_meta; i++) free(w->meta[i].key), free(w->meta[i].value);
  free(w->entries);
  free(w->meta);
  memset(w, 0, sizeof *w);
}

void st_writer_add_f32(StWriter *w, const char *name, int ndim, const int64_t *shape, const float *data) {
  CHECK(ndim >= 0 && ndim <= ST_MAX_DIMS);
  if (w->n == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 64;
    w->entries = xrealloc(w->entries, (size_t)w->cap * sizeof *w->entries);
  }
  StWriterEntry *e = &w->entries[w->n++];
  e->name = xstrdup(name);
  e->ndim = ndim;
  for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
  e->data = data;
  e->read = NULL;
  e->ctx = NULL;
}

void st_writer_add_f32_from(StWriter *w, const char *name, int ndim, const int64_t *shape,
                            void (*read)(void *ctx, float *out), void *ctx) {
  st_writer_add_f32(w, name, ndim, shape, NULL);
  w->entries[w->n - 1].read = read;
  w->entries[w->n - 1].ctx = ctx;
}

void st_writer_set_meta(StWriter *w, const char *key, const char *value) {
  for (int i = 0; i < w->n_meta; i++)
    if (strcmp(w->meta[i].key, key) == 0) {
      free(w->meta[i].value);
      w->meta[i].value = xstrdup(value);
      return;
    }
  if (w->n_meta == w->cap_meta) {
    w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 8;
    w->meta = xrealloc(w->meta, (size_t)w->cap_meta * sizeof *w->meta);
  }
  w->meta[w->n_meta].key = xstrdup(key);
  w->meta[w->n_meta].value = xstrdup(value);
  w->n_meta++;
}

static size_t entry_numel(const StWriterEntry *e) {
  size_t n = 1;
  for (int i = 0; i < e->ndim; i++) n *= (size_t)e->shape[i];
  return n;
}

static char *build_header(const StWriter *w, size_t *len_out) {
  cJSON *root = cJSON_CreateObject();
  if (w->n_meta) {
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    for (int i = 0; i < w->n_meta; i++) cJSON_AddStringToObject(meta, w->meta[i].key, w->meta[i].value);
  }
  size_t offset = 0;
  for (int i = 0; i < w->n; i++) {
    const StWriterEntry *e = &w->entries[i];
    cJSON *t = cJSON_AddObjectToObject(root, e->name);
    cJSON_AddStringToObject(t, "dtype", "F32");
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
    const size_t nbytes = entry_numel(e) * sizeof(float);
    cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(offset + nbytes)));
    offset += nbytes;
  }
  char *json = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  CHECK(json != NULL);
  /* pad with spaces so the data section is 8-byte aligned */
  const size_t raw = strlen(json), padded = (raw + 8 + 7) / 8 * 8 - 8;
  char *out = xmalloc(padded + 1);
  memcpy(out, json, raw);
  memset(out + raw, ' ', padded - raw);
  out[padded] = '\0';
  free(json);
  *len_out = padded;
  return out;
}

/* Open the temporary and write the length prefix and header. */
static int writer_begin(const StWriter *w, const char *path, AtomicFile *af, char *err, size_t errlen) {
  size_t hlen;
  char *header = build_header(w, &hlen);
  if (atomic_file_open(af, path, err, errlen)) {
    free(header);
    return -1;
  }
  uint8_t len_le[8];
  for (int i = 0; i < 8; i++) len_le[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
  const int ok = fwrite(len_le, 1, 8, af->f) == 8 && fwrite(header, 1, hlen, af->f) == hlen;
  free(header);
  if (!ok) return atomic_file_commit(af, 0, err, errlen);
  return 0;
}

int st_writer_save(const StWriter *w, const char *path, char *err, size_t errlen) {
  AtomicFile af;
  if (writer_begin(w, path, &af, err, errlen)) return -1;
  size_t staged = 0; /* the largest tensor produced by a read callback */
  for (int i = 0; i < w->n; i++)
    if (w->entries[i].read && entry_numel(&w->entries[i]) > staged) staged = entry_numel(&w->entries[i]);
  float *buf = staged ? xmalloc(staged * sizeof(float)) : NULL;
  int ok = 1;
  for (int i = 0; i < w->n && ok; i++) {
    const StWriterEntry *e = &w->entries[i];
    const size_t n = entry_numel(e);
    if (e->read) e->read(e->ctx, buf);
    ok = fwrite(e->read ? buf : e->data, sizeof(float), n, af.f) == n;
  }
  free(buf);
  return atomic_file_commit(&af, ok, err, errlen);
}

int st_stream_open(StStream *s, const char *path, const char *name, int ndim, const int64_t *shape, char *err,
                   size_t errlen) {
  StWriter w;
  st_writer_init(&w);
  st_writer_add_f32(&w, name, ndim, shape, NULL);
  s->remaining = entry_numel(&w.entries[0]);
  const int rc = writer_begin(&w, path, &s->file, err, errlen);
  st_writer_free(&w);
  return rc;
}

int st_stream_write(StStream *s, const float *data, size_t n) {
  if (n > s->remaining || fwrite(data, sizeof(float), n, s->file.f) != n) return -1;
  s->remaining -= n;
  return 0;
}

int st_stream_close(StStream *s, int ok, char *err, size_t errlen) {
  return atomic_file_commit(&s->file, ok && s->remaining == 0, err, errlen);
}
