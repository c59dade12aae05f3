/* npz.h - read and write NumPy .npz archives of float arrays (the pytorch-fid statistics format).
 *
 * An .npz is a ZIP archive of .npy files (NumPy format 1.0/2.0/3.0: magic "\x93NUMPY", version,
 * header length, a Python-dict header {'descr', 'fortran_order', 'shape'}, raw data). Reading
 * accepts stored and deflated members (np.savez and np.savez_compressed) with dtypes <f8 and <f4,
 * C order; values are returned as double. Writing produces np.savez's layout (stored members,
 * CRC-32, <f8 or <f4 per array, archives under 4 GiB: no ZIP64). The parser treats the file as hostile: every offset and size is bounds-checked.
 */
#ifndef DIFFUSE_IO_NPZ_H
#define DIFFUSE_IO_NPZ_H

#include <stddef.h>
#include <stdint.h>

#define NPZ_MAX_DIMS 4

typedef struct {
  int ndim;
  int64_t shape[NPZ_MAX_DIMS];
  size_t numel;
  double *data;
} NpzArray;

/* Read array `name` (without ".npy") from the archive image buf[0..size). 0; 1 + message when the
 * archive has no such array; -1 + message for anything else. */
int npz_read_buffer(const uint8_t *buf, size_t size, const char *name, NpzArray *out, char *err, size_t errlen);
/* The same from a file; messages name the file. */
int npz_read(const char *path, const char *name, NpzArray *out, char *err, size_t errlen);
void npz_array_free(NpzArray *a);

typedef struct {
  const char *name; /* member name without ".npy" */
  int ndim;
  int64_t shape[NPZ_MAX_DIMS];
  const double *data;    /* written as <f8, or */
  const float *data_f32; /* as <f4: exactly one of the two is set */
} NpzEntry;

/* Write the arrays as PATH atomically (temporary file + rename). 0, or -1 + message. */
int npz_write(const char *path, const NpzEntry *entries, int n, char *err, size_t errlen);

#endif
