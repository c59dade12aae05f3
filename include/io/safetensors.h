/* safetensors.h - read and write the safetensors format (https://github.com/huggingface/safetensors).
 *
 * Layout: u64 little-endian header length N, N bytes of JSON header, then the data section.
 * The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data section) and may hold "__metadata__", a map of strings to strings.
 * Parsing treats the file as hostile: every size and offset is bounds-checked, tensors must not
 * overlap, and errors are returned as messages (never an abort), so the parser can be fuzzed.
 */
#ifndef DIFFUSE_IO_SAFETENSORS_H
#define DIFFUSE_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "io/atomic_file.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER_BYTES (100u * 1024u * 1024u)

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_U8, ST_OTHER } StDtype;

typedef struct {
  char *name;
  StDtype dtype;
  char dtype_name[8];
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  size_t numel;
  const uint8_t *data; /* into SafeTensors.buf */
  size_t nbytes;
} StTensor;

typedef struct {
  char *key, *value;
} StMeta;

typedef struct {
  uint8_t *buf; /* whole file */
  size_t size;
  StTensor *tensors;
  int n_tensors;
  StMeta *meta;
  int n_meta;
} SafeTensors;

/* Parse a file image; takes ownership of buf (freed by st_free, also on error). 0 or -1 + err. */
int st_parse(SafeTensors *st, uint8_t *buf, size_t size, char *err, size_t errlen);
int st_load(SafeTensors *st, const char *path, char *err, size_t errlen);
void st_free(SafeTensors *st);

const StTensor *st_find(const SafeTensors *st, const char *name);
const char *st_meta_get(const SafeTensors *st, const char *key);
/* Copy a tensor into float32 (F32, F16, BF16 and F64 are converted). A NaN or infinite value (also
 * an F64 beyond float range) is an error naming the tensor: nothing diffuse reads may hold one.
 * 0 or -1 + err. */
int st_tensor_to_f32(const StTensor *t, float *out, char *err, size_t errlen);

/* ---- writing ---- */

typedef struct {
  char *name;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  const float *data; /* borrowed until st_writer_save returns; or NULL and: */
  void (*read)(void *ctx, float *out); /* fills the tensor's floats when it is written */
  void *ctx;
} StWriterEntry;

typedef struct {
  StWriterEntry *entries;
  int n, cap;
  StMeta *meta;
  int n_meta, cap_meta;
} StWriter;

void st_writer_init(StWriter *w);
void st_writer_free(StWriter *w);
void st_writer_add_f32(StWriter *w, const char *name, int ndim, const int64_t *shape, const float *data);
/* A tensor whose floats are produced while the file is written (read(ctx, buf) fills them), so a
 * large set of tensors in device memory is saved through one host buffer the size of the largest. */
void st_writer_add_f32_from(StWriter *w, const char *name, int ndim, const int64_t *shape,
                            void (*read)(void *ctx, float *out), void *ctx);
void st_writer_set_meta(StWriter *w, const char *key, const char *value);
/* Atomic (io/atomic_file.h): a temporary beside PATH, flushed, fsynced, renamed over PATH. 0 or -1 + err. */
int st_writer_save(const StWriter *w, const char *path, char *err, size_t errlen);

/* One F32 tensor written in pieces (samples batch by batch): open writes the header, write appends
 * floats in order, close commits (atomically, as st_writer_save) only when ok and every float of the
 * shape was written, else removes the temporary. */
typedef struct {
  AtomicFile file;
  size_t remaining; /* floats still to write */
} StStream;

int st_stream_open(StStream *s, const char *path, const char *name, int ndim, const int64_t *shape, char *err,
                   size_t errlen);
int st_stream_write(StStream *s, const float *data, size_t n); /* 0, or -1 (write error, or too many floats) */
int st_stream_close(StStream *s, int ok, char *err, size_t errlen);

#endif
