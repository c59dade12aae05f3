/* dataset.c - image folder, CIFAR-10 binary, (gzipped) IDX and procedural datasets decoded into
 * one uint8 cache; see dataset.h.
 *
 * gzip (RFC 1952) is parsed here: header flags FEXTRA / FNAME / FCOMMENT / FHCRC are skipped, the
 * raw deflate stream is inflated by stb_image's zlib decoder into a buffer of exactly the trailer's
 * ISIZE, and the trailer's ISIZE and CRC-32 are checked. IDX (LeCun et al., MNIST): big-endian
 * magic 0x00000803 (uint8, 3 dims: n, rows, cols) for images and 0x00000801 for labels.
 * All files are hostile: every header size is checked against the file length before use.
 * Folder images are read whole and decoded from memory by image_decode (only PNG, JPEG, BMP and
 * TGA, within image.h's size limits); the folder walk visits each real directory once.
 */
#include "io/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stb_image.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/rng.h"
#include "io/crc32.h"
#include "io/file_read.h"
#include "io/image.h"

#define MAX_RESOLUTION 4096
#define MAX_DIR_DEPTH 64
#define DECODE_CHUNK 1024 /* folder images decoded per parallel round */
#define CIFAR_RECORD 3073
#define CIFAR_SIDE 32
#define RNG_STREAM_PROCEDURAL 0x50524f4300000000ull /* "PROC" << 32 | image index */

static const char SKIP_BAD_HINT[] = "fix or remove it, or use --skip-bad to skip unreadable images";

const char *dataset_kind_name(DatasetKind kind) {
  switch (kind) {
    case DATASET_AUTO: return "auto";
    case DATASET_FOLDER: return "folder";
    case DATASET_CIFAR10_BIN: return "cifar10-bin";
    case DATASET_IDX: return "idx";
    case DATASET_PROCEDURAL: return "procedural";
  }
  return "unknown";
}

void dataset_free(Dataset *d) {
  if (d->class_names)
    for (int i = 0; i < d->num_classes; i++) free(d->class_names[i]);
  free(d->class_names);
  free(d->pixels);
  free(d->labels);
  if (d->paths)
    for (int i = 0; i < d->n; i++) free(d->paths[i]);
  free(d->paths);
  free(d->stream_buf);
  free(d->stream_status);
  free(d->stream_idx);
  memset(d, 0, sizeof *d);
}

/* ---- small helpers ---- */

static char *path_join(const char *dir, const char *name) {
  const size_t a = strlen(dir), b = strlen(name);
  char *p = xmalloc(a + b + 2);
  memcpy(p, dir, a);
  size_t o = a;
  if (a > 0 && dir[a - 1] != '/') p[o++] = '/';
  memcpy(p + o, name, b + 1);
  return p;
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Names in dir (unsorted), without hidden entries ("." prefix). 0 or -1 + err. */
static int list_dir(const char *dir, char ***names_out, int *n_out, char *err, size_t errlen) {
  *names_out = NULL;
  *n_out = 0;
  DIR *dp = opendir(dir);
  if (!dp) return errorf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
  char **names = NULL;
  int n = 0, cap = 0;
  for (struct dirent *e; (e = readdir(dp)) != NULL;) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) cap = cap ? 2 * cap : 64, names = xrealloc(names, (size_t)cap * sizeof *names);
    names[n++] = xstrdup(e->d_name);
  }
  closedir(dp);
  *names_out = names;
  *n_out = n;
  return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_dir_sorted(const char *dir, char ***names, int *n, char *err, size_t errlen) {
  if (list_dir(dir, names, n, err, errlen)) return -1;
  if (*n > 1) qsort(*names, (size_t)*n, sizeof **names, cmp_name);
  return 0;
}

static void free_names(char **names, int n) {
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* 1 if some entry of dir satisfies match. */
static int dir_has(const char *dir, bool (*match)(const char *)) {
  char **names;
  int n, found = 0;
  if (list_dir(dir, &names, &n, NULL, 0)) return 0;
  for (int i = 0; i < n && !found; i++) found = match(names[i]);
  free_names(names, n);
  return found;
}

/* ---- one image into the cache ---- */

/* Center-crop, convert channels and fit a strided source image (see image_copy_planar) into
 * dst (C, R, R). -1 if the image is smaller than the crop. */
static int store_image(uint8_t *dst, const DatasetOptions *opt, const uint8_t *src, int src_c, ptrdiff_t cs,
                       ptrdiff_t ys, ptrdiff_t xs, int h, int w) {
  const int C = opt->channels, R = opt->resolution, crop = opt->center_crop;
  if (crop > 0) {
    if (crop > h || crop > w) return -1;
    src += (ptrdiff_t)((h - crop) / 2) * ys + (ptrdiff_t)((w - crop) / 2) * xs;
    h = w = crop;
  }
  if (h == R && w == R) {
    image_copy_planar(dst, C, src, src_c, cs, ys, xs, h, w);
    return 0;
  }
  uint8_t *tmp = xmalloc((size_t)C * h * w);
  image_copy_planar(tmp, C, src, src_c, cs, ys, xs, h, w);
  image_fit(dst, tmp, C, h, w, R);
  free(tmp);
  return 0;
}

static int crop_error(const char *what, int h, int w, int crop, char *err, size_t errlen) {
  return errorf(err, errlen, "%s: image is %dx%d, smaller than center_crop %d (lower center_crop)", what, w, h, crop);
}

/* 1 if n decoded images exceed opt->cache_limit_bytes (never with limit 0). */
static bool over_cache_limit(const DatasetOptions *opt, size_t n) {
  const size_t img = (size_t)opt->channels * opt->resolution * opt->resolution;
  return opt->cache_limit_bytes && n * img > opt->cache_limit_bytes;
}

/* IDX and CIFAR-10 are only cached, never streamed: an error naming the config keys if n images
 * would exceed the cache limit. */
static int check_cache_limit(const char *path, const DatasetOptions *opt, size_t n, char *err, size_t errlen) {
  if (!over_cache_limit(opt, n)) return 0;
  const int R = opt->resolution, C = opt->channels;
  const size_t need = n * C * R * R, limit = opt->cache_limit_bytes;
  char need_s[32], limit_s[32];
  return errorf(err, errlen,
                "%s: caching %zu images at %dx%d with %d channel%s needs %zu bytes (%s), above the cache limit of %zu "
                "bytes (%s); set data.max_images to load fewer images or raise data.cache_mb",
                path, n, R, R, C, C == 1 ? "" : "s", need, format_bytes(need_s, sizeof need_s, (double)need), limit,
                format_bytes(limit_s, sizeof limit_s, (double)limit));
}

/* ---- gzip ---- */

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int gunzip(const char *path, const uint8_t *in, size_t n, uint8_t **out, size_t *out_n, char *err,
                  size_t errlen) {
  enum { FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16 };
  *out = NULL;
  *out_n = 0;
  if (n < 18) return errorf(err, errlen, "%s: truncated gzip file (%zu bytes)", path, n);
  if (in[2] != 8) return errorf(err, errlen, "%s: gzip compression method %d is not deflate", path, in[2]);
  const uint8_t flg = in[3];
  if (flg & 0xE0) return errorf(err, errlen, "%s: gzip header has reserved flags 0x%02x set (corrupt)", path, flg);
  size_t p = 10;
  const size_t end = n - 8; /* the trailer: CRC-32, ISIZE */
  if (flg & FEXTRA) {
    if (end - p < 2) goto truncated;
    const size_t xlen = (size_t)in[p] | (size_t)in[p + 1] << 8;
    p += 2;
    if (end - p < xlen) goto truncated;
    p += xlen;
  }
  for (int field = FNAME; field <= FCOMMENT; field <<= 1)
    if (flg & field) {
      const uint8_t *z = memchr(in + p, 0, end - p);
      if (!z) goto truncated;
      p = (size_t)(z - in) + 1;
    }
  if (flg & FHCRC) {
    if (end - p < 2) goto truncated;
    p += 2;
  }
  if (end - p < 2) goto truncated; /* the shortest deflate stream is 2 bytes */
  const size_t deflate_len = end - p;
  const uint32_t want_crc = le32(in + end), isize = le32(in + end + 4);
  /* The ratio first: a truncated file's "trailer" is deflate data, whose ISIZE is often > 2 GiB. */
  if ((double)isize > 1032.0 * (double)deflate_len + 64.0) /* deflate expands by at most 1032:1 */
    return errorf(err, errlen, "%s: gzip trailer claims %u bytes from %zu compressed bytes (corrupt or truncated)",
                  path, isize, deflate_len);
  if (n - p > INT_MAX || isize > INT_MAX)
    return errorf(err, errlen, "%s: gzip member too large (limit 2 GiB)", path);
  if (isize == 0) return errorf(err, errlen, "%s: gzip file decompresses to nothing", path);
  *out = xmalloc(isize);
  /* The input handed to stb includes the 8-byte trailer: stb 2.27's Huffman decoder fails when fewer
   * than 16 bits remain at the end of its input, even if the stream ends there; it stops at the final
   * block, so the trailer is only look-ahead. */
  const int got = stbi_zlib_decode_noheader_buffer((char *)*out, (int)isize, (const char *)in + p, (int)(n - p));
  int rc = 0;
  if (got < 0)
    rc = errorf(err, errlen, "%s: corrupt or truncated gzip data (%s)", path,
                stbi_failure_reason() ? stbi_failure_reason() : "?");
  else if ((uint32_t)got != isize)
    rc = errorf(err, errlen, "%s: gzip data inflates to %d bytes but the trailer says %u (truncated, corrupt or multi-member gzip)",
                path, got, isize);
  else if (crc32_of(*out, isize) != want_crc)
    rc = errorf(err, errlen, "%s: gzip CRC-32 mismatch (corrupt file)", path);
  if (rc) {
    free(*out);
    *out = NULL;
    return rc;
  }
  *out_n = isize;
  return 0;
truncated:
  return errorf(err, errlen, "%s: truncated gzip header", path);
}

/* Read a file, inflating it if it starts with the gzip magic 1f 8b. */
static int read_maybe_gzip(const char *path, uint8_t **buf, size_t *size, char *err, size_t errlen) {
  if (file_read_all(path, 0, buf, size, err, errlen)) return -1;
  if (*size >= 2 && (*buf)[0] == 0x1f && (*buf)[1] == 0x8b) {
    uint8_t *raw = *buf;
    const int rc = gunzip(path, raw, *size, buf, size, err, errlen);
    free(raw);
    return rc;
  }
  return 0;
}

/* ---- IDX ---- */

typedef struct {
  uint8_t *buf;
  size_t size;
  const uint8_t *data;
  uint32_t dims[3];
} IdxFile;

static int idx_open(IdxFile *f, const char *path, int ndim, char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  if (read_maybe_gzip(path, &f->buf, &f->size, err, errlen)) return -1;
  const char *what = ndim == 3 ? "image" : "label";
  const uint32_t want = 0x800u | (uint32_t)ndim;
  const size_t header = 4 + 4 * (size_t)ndim;
  int rc = 0;
  if (f->size < 4) {
    rc = errorf(err, errlen, "%s: too short for an IDX header (%zu bytes)", path, f->size);
  } else if (be32(f->buf) != want) {
    rc = errorf(err, errlen, "%s: not an IDX %s file (magic 0x%08x, expected 0x%08x)", path, what, be32(f->buf), want);
  } else if (f->size < header) {
    rc = errorf(err, errlen, "%s: truncated IDX header (%zu bytes)", path, f->size);
  } else {
    const size_t avail = f->size - header;
    size_t total = 1;
    for (int i = 0; i < ndim && rc == 0; i++) {
      f->dims[i] = be32(f->buf + 4 + 4 * i);
      if (f->dims[i] == 0 || f->dims[i] > INT_MAX)
        rc = errorf(err, errlen, "%s: IDX dimension %d is %u", path, i, f->dims[i]);
      else if (total > avail / f->dims[i])
        rc = errorf(err, errlen, "%s: truncated: the header's dimensions need more than the %zu data bytes present",
                    path, avail);
      else
        total *= f->dims[i];
    }
    if (rc == 0 && total != avail)
      rc = errorf(err, errlen, "%s: the header's dimensions need %zu data bytes but the file has %zu (%s)", path,
                  total, avail, total > avail ? "truncated" : "trailing bytes");
  }
  if (rc) {
    free(f->buf);
    memset(f, 0, sizeof *f);
    return rc;
  }
  f->data = f->buf + header;
  return 0;
}

/* PATH or PATH.gz, whichever exists (NULL if neither). */
static char *existing_maybe_gz(const char *path) {
  if (is_file(path)) return xstrdup(path);
  char *gz = xmalloc(strlen(path) + 4);
  strcpy(gz, path);
  strcat(gz, ".gz");
  if (is_file(gz)) return gz;
  free(gz);
  return NULL;
}

static bool is_idx3_name(const char *name) {
  return ends_with(name, "-images-idx3-ubyte") || ends_with(name, "-images-idx3-ubyte.gz");
}

/* The labels file beside an images file: "images-idx3" -> "labels-idx1" in the base name. */
static char *idx_labels_path(const char *images_path) {
  const char *base = strrchr(images_path, '/');
  base = base ? base + 1 : images_path;
  const char *at = NULL;
  for (const char *s = base; (s = strstr(s, "images-idx3")) != NULL; s++) at = s;
  if (!at) return NULL;
  char *p = xstrdup(images_path);
  memcpy(p + (at - images_path), "labels-idx1", 11);
  if (ends_with(p, ".gz")) p[strlen(p) - 3] = '\0';
  char *found = existing_maybe_gz(p);
  free(p);
  return found;
}

static int load_idx(Dataset *d, const DatasetOptions *opt, const char *path, char *err, size_t errlen) {
  char *images_path = NULL, *labels_path = NULL;
  if (is_dir(path)) {
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", opt->train_split ? "train" : "t10k");
    char *p = path_join(path, name);
    images_path = existing_maybe_gz(p);
    if (!images_path) {
      const int rc = errorf(err, errlen, "%s: no %s[.gz] for the %s split", path, name,
                            opt->train_split ? "train" : "test");
      free(p);
      return rc;
    }
    free(p);
  } else {
    images_path = xstrdup(path);
  }
  if (opt->with_labels && !(labels_path = idx_labels_path(images_path))) {
    const int rc = errorf(err, errlen, "%s: no labels file beside it (expected the name with images-idx3 -> labels-idx1)",
                          images_path);
    free(images_path);
    return rc;
  }

  IdxFile im = {0}, lb = {0};
  int rc = idx_open(&im, images_path, 3, err, errlen);
  if (rc == 0 && labels_path) {
    rc = idx_open(&lb, labels_path, 1, err, errlen);
    if (rc == 0 && lb.dims[0] != im.dims[0])
      rc = errorf(err, errlen, "%s: %u labels but %s has %u images", labels_path, lb.dims[0], images_path,
                  im.dims[0]);
  }
  const int h = (int)im.dims[1], w = (int)im.dims[2];
  if (rc == 0 && opt->center_crop && (opt->center_crop > h || opt->center_crop > w))
    rc = crop_error(images_path, h, w, opt->center_crop, err, errlen);
  const int total = (int)im.dims[0];
  const int n = opt->max_images && opt->max_images < total ? opt->max_images : total;
  if (rc == 0) rc = check_cache_limit(images_path, opt, (size_t)n, err, errlen);
  if (rc == 0) {
    const size_t img = (size_t)opt->channels * opt->resolution * opt->resolution, src_img = (size_t)h * w;
    d->n = n;
    const int eh = opt->center_crop ? opt->center_crop : h, ew = opt->center_crop ? opt->center_crop : w;
    if (eh == ew && image_fit_pads(eh, ew, opt->resolution)) d->padded_from = eh;
    d->pixels = xmalloc((size_t)n * img);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
      store_image(d->pixels + i * img, opt, im.data + i * src_img, 1, 0, w, 1, h, w);
    if (labels_path) {
      d->labels = xmalloc((size_t)n * sizeof *d->labels);
      for (int i = 0; i < n; i++) d->labels[i] = lb.data[i];
      for (int i = 0; i < total; i++)
        if (lb.data[i] + 1 > d->num_classes) d->num_classes = lb.data[i] + 1;
    }
  }
  free(im.buf);
  free(lb.buf);
  free(images_path);
  free(labels_path);
  return rc;
}

/* ---- CIFAR-10 binary ---- */

static bool is_cifar_name(const char *name) {
  return strcmp(name, "test_batch.bin") == 0 || (strncmp(name, "data_batch_", 11) == 0 && ends_with(name, ".bin"));
}

/* path, or its cifar-10-batches-bin sub-folder, if it holds CIFAR-10 batches; else NULL. */
static char *cifar_dir(const char *path) {
  if (dir_has(path, is_cifar_name)) return xstrdup(path);
  char *sub = path_join(path, "cifar-10-batches-bin");
  if (is_dir(sub) && dir_has(sub, is_cifar_name)) return sub;
  free(sub);
  return NULL;
}

static int load_cifar(Dataset *d, const DatasetOptions *opt, const char *path, char *err, size_t errlen) {
  if (opt->center_crop > CIFAR_SIDE) return crop_error(path, CIFAR_SIDE, CIFAR_SIDE, opt->center_crop, err, errlen);
  char *dir = cifar_dir(path);
  if (!dir) return errorf(err, errlen, "%s: no CIFAR-10 binary batches (data_batch_1.bin ... or test_batch.bin) here",
                          path);
  const int n_files = opt->train_split ? 5 : 1;
  char *files[5];
  for (int i = 0; i < n_files; i++) {
    char name[32];
    if (opt->train_split) snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
    else snprintf(name, sizeof name, "test_batch.bin");
    files[i] = path_join(dir, name);
  }
  free(dir);
  /* sizes first, so the cache is allocated once */
  int rc = 0;
  size_t total = 0;
  for (int i = 0; i < n_files && rc == 0; i++) {
    struct stat st;
    if (stat(files[i], &st) != 0) rc = errorf(err, errlen, "%s: cannot open: %s", files[i], strerror(errno));
    else if (st.st_size == 0 || st.st_size % CIFAR_RECORD != 0)
      rc = errorf(err, errlen, "%s: %lld bytes is not a positive multiple of the %d-byte CIFAR-10 record", files[i],
                  (long long)st.st_size, CIFAR_RECORD);
    else total += (size_t)st.st_size / CIFAR_RECORD;
  }
  if (rc == 0 && total > INT_MAX) rc = errorf(err, errlen, "%s: too many images", path);
  const size_t n = rc ? 0 : opt->max_images && (size_t)opt->max_images < total ? (size_t)opt->max_images : total;
  const size_t img = (size_t)opt->channels * opt->resolution * opt->resolution;
  if (rc == 0) rc = check_cache_limit(path, opt, n, err, errlen);
  if (rc == 0) {
    d->pixels = xmalloc(n * img);
    if (opt->with_labels) d->labels = xmalloc(n * sizeof *d->labels), d->num_classes = 10;
  }
  for (int f = 0; f < n_files && rc == 0 && (size_t)d->n < n; f++) {
    uint8_t *buf;
    size_t size;
    if ((rc = file_read_all(files[f], 0, &buf, &size, err, errlen))) break;
    if (size % CIFAR_RECORD != 0) { /* changed since stat */
      rc = errorf(err, errlen, "%s: %zu bytes is not a multiple of %d", files[f], size, CIFAR_RECORD);
    } else {
      const int base = d->n;
      const int records = (int)(size / CIFAR_RECORD), take = (size_t)(base + records) > n ? (int)n - base : records;
      for (int r = 0; r < take && rc == 0; r++)
        if (buf[(size_t)r * CIFAR_RECORD] > 9)
          rc = errorf(err, errlen, "%s: record %d has label %d; CIFAR-10 labels are 0..9 (is this CIFAR-100?)",
                      files[f], r, buf[(size_t)r * CIFAR_RECORD]);
      if (rc == 0) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < take; r++)
          store_image(d->pixels + (size_t)(base + r) * img, opt, buf + (size_t)r * CIFAR_RECORD + 1, 3,
                      CIFAR_SIDE * CIFAR_SIDE, CIFAR_SIDE, 1, CIFAR_SIDE, CIFAR_SIDE);
        if (d->labels)
          for (int r = 0; r < take; r++) d->labels[base + r] = buf[(size_t)r * CIFAR_RECORD];
        d->n = base + take;
      }
    }
    free(buf);
  }
  for (int i = 0; i < n_files; i++) free(files[i]);
  return rc;
}

/* ---- image folder ---- */

typedef struct {
  char *path;
  int cls; /* index of the top-level sub-folder, -1 for files directly in the root */
} FileEntry;

typedef struct {
  FileEntry *v;
  int n, cap;
} FileList;

static bool has_image_ext(const char *name) {
  static const char *const EXT[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga"};
  const char *dot = strrchr(name, '.');
  if (!dot) return false;
  for (size_t i = 0; i < sizeof EXT / sizeof EXT[0]; i++)
    if (strcasecmp(dot, EXT[i]) == 0) return true;
  return false;
}

static void file_list_push(FileList *l, char *path, int cls) {
  if (l->n == l->cap) l->cap = l->cap ? 2 * l->cap : 256, l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
  l->v[l->n++] = (FileEntry){path, cls};
}

/* Keeps `target` (< l->n) entries spread evenly over the sorted list, entry i n / target for i < target,
 * and frees the others: a folder sorted by class then gives every class its share, where a prefix
 * would give the first classes only. */
static void file_list_spread(FileList *l, int target) {
  int kept = 0;
  for (int j = 0; j < l->n; j++) {
    if (kept < target && j == (int)((long long)kept * l->n / target)) l->v[kept++] = l->v[j];
    else free(l->v[j].path);
  }
  l->n = kept;
}

/* A set of directories by (st_dev, st_ino): open addressing with linear probing, at most half full. */
typedef struct {
  dev_t dev;
  ino_t ino;
  bool used;
} DirId;

typedef struct {
  DirId *slots; /* (cap), cap a power of two or 0 */
  size_t n, cap;
} DirSet;

/* The slot holding (dev, ino), or the empty slot where it belongs. */
static DirId *dir_set_slot(DirId *slots, size_t cap, dev_t dev, ino_t ino) {
  size_t i = ((uint64_t)dev * 0x9E3779B97F4A7C15ull ^ (uint64_t)ino * 0xC2B2AE3D27D4EB4Full) & (cap - 1);
  while (slots[i].used && (slots[i].dev != dev || slots[i].ino != ino)) i = (i + 1) & (cap - 1);
  return &slots[i];
}

/* Add (dev, ino); false if it was already there. */
static bool dir_set_add(DirSet *s, dev_t dev, ino_t ino) {
  if (2 * (s->n + 1) > s->cap) {
    const size_t cap = s->cap ? 2 * s->cap : 64;
    DirId *slots = xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < s->cap; i++)
      if (s->slots[i].used) *dir_set_slot(slots, cap, s->slots[i].dev, s->slots[i].ino) = s->slots[i];
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
  }
  DirId *slot = dir_set_slot(s->slots, s->cap, dev, ino);
  if (slot->used) return false;
  *slot = (DirId){dev, ino, true};
  s->n++;
  return true;
}

/* What a folder walk finds: image files in sorted depth-first order, and the top-level sub-folders. */
typedef struct {
  FileList files;
  char **dirs; /* names of the top-level sub-folders, sorted; FileEntry.cls indexes them */
  int n_dirs;
  DirSet walked; /* every directory entered so far, those on the current path included */
} FolderScan;

/* Append the image files under dir to scan with class cls; at the top level (depth 0) each
 * sub-folder is recorded and its files get its index. A directory already walked (reached again
 * through a symlink: a loop such as `a -> .`, or a second name for a folder) is skipped silently,
 * so each real directory is walked once, where the sorted walk first meets it. */
static int walk(const char *dir, int cls, int depth, FolderScan *scan, char *err, size_t errlen) {
  if (depth > MAX_DIR_DEPTH) return errorf(err, errlen, "%s: folders nested more than %d levels deep", dir, MAX_DIR_DEPTH);
  struct stat dst;
  if (stat(dir, &dst) != 0) return errorf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
  if (!dir_set_add(&scan->walked, dst.st_dev, dst.st_ino)) return 0;
  char **names;
  int n;
  if (list_dir_sorted(dir, &names, &n, err, errlen)) return -1;
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    char *full = path_join(dir, names[i]);
    struct stat st;
    const int ok = stat(full, &st) == 0;
    if (ok && S_ISDIR(st.st_mode)) {
      int sub_cls = cls;
      if (depth == 0) {
        scan->dirs = xrealloc(scan->dirs, (size_t)(scan->n_dirs + 1) * sizeof *scan->dirs);
        scan->dirs[scan->n_dirs] = xstrdup(names[i]);
        sub_cls = scan->n_dirs++;
      }
      rc = walk(full, sub_cls, depth + 1, scan, err, errlen);
      free(full);
    } else if ((!ok || S_ISREG(st.st_mode)) && has_image_ext(names[i])) {
      file_list_push(&scan->files, full, cls); /* a dangling link fails at decoding, as unreadable */
    } else {
      free(full);
    }
  }
  free_names(names, n);
  return rc;
}

static void folder_scan_free(FolderScan *scan) {
  free(scan->walked.slots);
  free_names(scan->dirs, scan->n_dirs);
  for (int i = 0; i < scan->files.n; i++) free(scan->files.v[i].path);
  free(scan->files.v);
}

typedef enum { DECODE_OK, DECODE_BAD, DECODE_CROP_TOO_SMALL } DecodeResult;

typedef struct {
  DecodeResult result;
  int w, h;       /* the decoded image's size */
  char why[192];  /* DECODE_BAD: what is wrong with the file */
} DecodeStatus;

/* Read, decode (image_decode: only PNG, JPEG, BMP, and TGA for files named .tga) and store one
 * image file into dst (C, R, R). */
static void decode_file(uint8_t *dst, const char *path, const DatasetOptions *opt, DecodeStatus *s) {
  s->result = DECODE_BAD;
  s->w = s->h = 0;
  uint8_t *buf, *rgb;
  size_t n;
  if (file_read_whole(path, IMAGE_MAX_FILE_BYTES, &buf, &n, s->why, sizeof s->why)) return;
  const char *dot = strrchr(path, '.');
  const bool tga_name = dot && strcasecmp(dot, ".tga") == 0;
  const int rc = image_decode(buf, n, tga_name, &rgb, &s->w, &s->h, s->why, sizeof s->why);
  free(buf);
  if (rc) return;
  const bool stored = store_image(dst, opt, rgb, 3, 1, (ptrdiff_t)s->w * 3, 3, s->h, s->w) == 0;
  s->result = stored ? DECODE_OK : DECODE_CROP_TOO_SMALL;
  image_decode_free(rgb);
}

/* The error for a file that did not decode: too small for the crop, or unreadable (skip_bad skips these). */
static int decode_error(const char *path, const DecodeStatus *s, int center_crop, char *err, size_t errlen) {
  if (s->result == DECODE_CROP_TOO_SMALL) return crop_error(path, s->h, s->w, center_crop, err, errlen);
  return errorf(err, errlen, "%s: cannot decode image (%s); %s", path, s->why, SKIP_BAD_HINT);
}

static int load_folder(Dataset *d, const DatasetOptions *opt, const char *path, char *err, size_t errlen) {
  FolderScan scan = {0};
  int rc = walk(path, -1, 0, &scan, err, errlen);
  if (rc == 0 && scan.files.n == 0)
    rc = errorf(err, errlen, "%s: no images (.png .jpg .jpeg .bmp .tga) found in this folder or its sub-folders",
                path);
  FileList files = scan.files;
  /* classes: the top-level sub-folders that hold images, in sorted order */
  int *class_of_dir = NULL;
  if (rc == 0 && opt->with_labels) {
    class_of_dir = xmalloc((size_t)(scan.n_dirs + 1) * sizeof *class_of_dir);
    for (int i = 0; i < scan.n_dirs; i++) class_of_dir[i] = -1;
    for (int i = 0; i < files.n && rc == 0; i++) {
      if (files.v[i].cls < 0)
        rc = errorf(err, errlen, "%s: labels come from class sub-folders, but this image is directly in %s",
                    files.v[i].path, path);
      else
        class_of_dir[files.v[i].cls] = 0;
    }
    if (rc == 0) {
      d->class_names = xmalloc((size_t)(scan.n_dirs + 1) * sizeof *d->class_names);
      for (int i = 0; i < scan.n_dirs; i++)
        if (class_of_dir[i] == 0) {
          class_of_dir[i] = d->num_classes;
          d->class_names[d->num_classes++] = xstrdup(scan.dirs[i]);
        }
    }
  }
  /* after the classes, which come from every file */
  if (rc == 0 && opt->max_images && opt->max_images < files.n) file_list_spread(&scan.files, opt->max_images);
  files = scan.files;
  const int target = files.n;
  const size_t img = (size_t)opt->channels * opt->resolution * opt->resolution;
  if (rc == 0 && over_cache_limit(opt, (size_t)target)) {
    d->paths = xmalloc((size_t)target * sizeof *d->paths);
    if (opt->with_labels) d->labels = xmalloc((size_t)target * sizeof *d->labels);
    for (int i = 0; i < target; i++) {
      d->paths[i] = files.v[i].path;
      files.v[i].path = NULL; /* now owned by d */
      if (d->labels) d->labels[i] = class_of_dir[files.v[i].cls];
    }
    d->n = target;
    d->decode = *opt;
    d->decode.path = NULL;
  } else if (rc == 0) {
    d->pixels = xmalloc((size_t)target * img);
    if (opt->with_labels) d->labels = xmalloc((size_t)target * sizeof *d->labels);
    DecodeStatus *status = xmalloc(DECODE_CHUNK * sizeof *status);
    int next = 0; /* next file to decode */
    while (rc == 0 && d->n < target && next < files.n) {
      int len = target - d->n;
      if (len > files.n - next) len = files.n - next;
      if (len > DECODE_CHUNK) len = DECODE_CHUNK;
      uint8_t *slots = d->pixels + (size_t)d->n * img; /* file next + k decodes into slot k */
#pragma omp parallel for schedule(dynamic, 1)
      for (int k = 0; k < len; k++) decode_file(slots + k * img, files.v[next + k].path, opt, &status[k]);
      int kept = 0;
      for (int k = 0; k < len && rc == 0; k++) {
        const DecodeStatus *s = &status[k];
        const FileEntry *f = &files.v[next + k];
        if (s->result == DECODE_CROP_TOO_SMALL || (s->result == DECODE_BAD && !opt->skip_bad)) {
          rc = decode_error(f->path, s, opt->center_crop, err, errlen);
        } else if (s->result == DECODE_BAD) {
          d->skipped++;
        } else {
          if (kept != k) memcpy(slots + kept * img, slots + k * img, img);
          if (d->labels) d->labels[d->n + kept] = class_of_dir[f->cls];
          kept++;
        }
      }
      d->n += kept;
      next += len;
    }
    free(status);
    if (rc == 0 && d->n == 0)
      rc = errorf(err, errlen, "%s: none of the %d images could be decoded (all skipped)", path, files.n);
    if (rc == 0 && d->n < target) { /* give back the slots of skipped files */
      d->pixels = xrealloc(d->pixels, (size_t)d->n * img);
      if (d->labels) d->labels = xrealloc(d->labels, (size_t)d->n * sizeof *d->labels);
    }
  }
  free(class_of_dir);
  folder_scan_free(&scan);
  return rc;
}

int dataset_folder_image_size(const char *path, int *w, int *h, char *err, size_t errlen) {
  FolderScan scan = {0};
  int rc = walk(path, -1, 0, &scan, err, errlen);
  if (rc == 0) {
    rc = errorf(err, errlen, "%s: no readable image (.png .jpg .jpeg .bmp .tga) in this folder", path);
    const DatasetOptions probe = {.channels = 3, .resolution = 1}; /* only the size matters */
    uint8_t pixel[3];
    for (int i = 0; i < scan.files.n && rc != 0; i++) {
      DecodeStatus s;
      decode_file(pixel, scan.files.v[i].path, &probe, &s);
      if (s.result == DECODE_OK) *w = s.w, *h = s.h, rc = 0;
    }
  }
  folder_scan_free(&scan);
  return rc;
}

/* ---- procedural ---- */

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Image i: a random background and 1..3 soft shapes (Gaussian blobs or rectangles with soft
 * edges) of random colours, alpha-blended in order; every number is rng_uniform(seed, stream i, k). */
static int procedural_image(uint8_t *dst, int C, int R, uint64_t seed, uint64_t i, float *rgb /* (3, R, R) */) {
  const uint64_t stream = RNG_STREAM_PROCEDURAL | i;
  uint64_t k = 0;
#define U() rng_uniform(seed, stream, k++)
  const size_t plane = (size_t)R * R;
  for (int c = 0; c < 3; c++) {
    const float bg = U();
    for (size_t p = 0; p < plane; p++) rgb[c * plane + p] = bg;
  }
  int shapes = 1 + (int)(U() * 3.0f);
  if (shapes > 3) shapes = 3;
  for (int s = 0; s < shapes; s++) {
    const int rect = U() < 0.5f;
    float col[3];
    for (int c = 0; c < 3; c++) col[c] = U();
    const float cx = (0.2f + 0.6f * U()) * R, cy = (0.2f + 0.6f * U()) * R, size = (0.1f + 0.2f * U()) * R;
    const float hw = size * (0.6f + 0.8f * U()), hh = size * (0.6f + 0.8f * U()), soft = 0.05f * R + 0.5f;
    for (int y = 0; y < R; y++)
      for (int x = 0; x < R; x++) {
        const float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
        const float a = rect ? sigmoidf((hw - fabsf(dx)) / soft) * sigmoidf((hh - fabsf(dy)) / soft)
                             : expf(-(dx * dx + dy * dy) / (2.0f * size * size));
        for (int c = 0; c < 3; c++) {
          float *v = &rgb[c * plane + (size_t)y * R + x];
          *v += a * (col[c] - *v);
        }
      }
  }
#undef U
  for (size_t p = 0; p < plane; p++) {
    if (C == 3)
      for (int c = 0; c < 3; c++) dst[c * plane + p] = (uint8_t)lrintf(255.0f * rgb[c * plane + p]);
    else
      dst[p] = (uint8_t)lrintf(255.0f * (0.299f * rgb[p] + 0.587f * rgb[plane + p] + 0.114f * rgb[2 * plane + p]));
  }
  return shapes - 1;
}

static int load_procedural(Dataset *d, const DatasetOptions *opt, char *err, size_t errlen) {
  if (opt->procedural_count < 1)
    return errorf(err, errlen, "procedural dataset: procedural_count must be >= 1 (got %d)", opt->procedural_count);
  const int n = opt->max_images && opt->max_images < opt->procedural_count ? opt->max_images : opt->procedural_count;
  const int C = opt->channels, R = opt->resolution;
  const size_t img = (size_t)C * R * R;
  d->n = n;
  d->pixels = xmalloc((size_t)n * img);
  if (opt->with_labels) d->labels = xmalloc((size_t)n * sizeof *d->labels), d->num_classes = 3;
#pragma omp parallel
  {
    float *rgb = xmalloc(3 * (size_t)R * R * sizeof *rgb);
#pragma omp for schedule(static)
    for (int i = 0; i < n; i++) {
      const int label = procedural_image(d->pixels + i * img, C, R, opt->seed, (uint64_t)i, rgb);
      if (d->labels) d->labels[i] = label;
    }
    free(rgb);
  }
  return 0;
}

/* ---- entry points ---- */

static int detect_kind(const char *path, DatasetKind *kind, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0) return errorf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
  if (S_ISREG(st.st_mode)) {
    *kind = DATASET_IDX;
  } else if (!S_ISDIR(st.st_mode)) {
    return errorf(err, errlen, "%s: not a directory or a regular file", path);
  } else {
    char *cifar = cifar_dir(path);
    *kind = cifar ? DATASET_CIFAR10_BIN : dir_has(path, is_idx3_name) ? DATASET_IDX : DATASET_FOLDER;
    free(cifar);
  }
  return 0;
}

int dataset_load(Dataset *d, const DatasetOptions *opt, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  if (opt->channels != 1 && opt->channels != 3)
    return errorf(err, errlen, "dataset: channels must be 1 or 3 (got %d)", opt->channels);
  if (opt->resolution < 1 || opt->resolution > MAX_RESOLUTION)
    return errorf(err, errlen, "dataset: resolution must be in [1, %d] (got %d)", MAX_RESOLUTION, opt->resolution);
  if (opt->center_crop < 0 || opt->center_crop > 65536)
    return errorf(err, errlen, "dataset: center_crop must be in [0, 65536] (got %d)", opt->center_crop);
  if (opt->max_images < 0) return errorf(err, errlen, "dataset: max_images must be >= 0 (got %d)", opt->max_images);
  DatasetKind kind = opt->kind;
  if (kind != DATASET_PROCEDURAL && (!opt->path || !opt->path[0]))
    return errorf(err, errlen, "dataset: no data path given");
  if (kind == DATASET_AUTO && detect_kind(opt->path, &kind, err, errlen)) return -1;
  int rc;
  switch (kind) {
    case DATASET_FOLDER: rc = load_folder(d, opt, opt->path, err, errlen); break;
    case DATASET_CIFAR10_BIN: rc = load_cifar(d, opt, opt->path, err, errlen); break;
    case DATASET_IDX: rc = load_idx(d, opt, opt->path, err, errlen); break;
    case DATASET_PROCEDURAL: rc = load_procedural(d, opt, err, errlen); break;
    default: rc = errorf(err, errlen, "dataset: unknown kind %d", (int)kind);
  }
  if (rc) {
    dataset_free(d);
    return -1;
  }
  d->kind = kind;
  d->C = opt->channels;
  d->H = d->W = opt->resolution;
  return 0;
}

static void image_to_floats(float *dst, const uint8_t *src, int C, int H, int W, bool mirror) {
  for (int r = 0; r < C * H; r++) {
    const uint8_t *sr = src + (size_t)r * W;
    float *o = dst + (size_t)r * W;
    if (mirror)
      for (int x = 0; x < W; x++) o[x] = sr[W - 1 - x] / 127.5f - 1.0f;
    else
      for (int x = 0; x < W; x++) o[x] = sr[x] / 127.5f - 1.0f;
  }
}

/* Streamed folder: decode the batch's files into stream_buf; with skip_bad a failed file is
 * replaced by the next readable one (idx + 1, idx + 2, ... wrapping), which is also what idx
 * then stands for in the labels. */
static int decode_stream_batch(Dataset *d, const int *batch_idx, int B, char *err, size_t errlen) {
  const size_t img = (size_t)d->C * d->H * d->W;
  if (B > d->stream_cap) { /* the first batch (or a larger one): nothing is allocated per step after */
    d->stream_buf = xrealloc(d->stream_buf, (size_t)B * img);
    d->stream_status = xrealloc(d->stream_status, (size_t)B * sizeof(DecodeStatus));
    d->stream_idx = xrealloc(d->stream_idx, (size_t)B * sizeof(int));
    d->stream_cap = B;
  }
  DecodeStatus *status = d->stream_status;
  int *idx = d->stream_idx;
  memcpy(idx, batch_idx, (size_t)B * sizeof *idx);
#pragma omp parallel for schedule(dynamic, 1)
  for (int b = 0; b < B; b++) decode_file(d->stream_buf + (size_t)b * img, d->paths[idx[b]], &d->decode, &status[b]);
  int rc = 0;
  for (int b = 0; b < B && rc == 0; b++) {
    for (int tries = 1; status[b].result != DECODE_OK && rc == 0; tries++) {
      if (status[b].result == DECODE_CROP_TOO_SMALL || !d->decode.skip_bad)
        rc = decode_error(d->paths[idx[b]], &status[b], d->decode.center_crop, err, errlen);
      else if (tries >= d->n) rc = errorf(err, errlen, "none of the %d images could be decoded (all skipped)", d->n);
      else {
        d->skipped++;
        idx[b] = (idx[b] + 1) % d->n;
        decode_file(d->stream_buf + (size_t)b * img, d->paths[idx[b]], &d->decode, &status[b]);
      }
    }
  }
  return rc;
}

int dataset_get_batch(Dataset *d, const int *idx, const uint8_t *flip, int B, float *out, int *labels_out, char *err,
                      size_t errlen) {
  CHECK(labels_out == NULL || d->labels != NULL);
  const int C = d->C, H = d->H, W = d->W;
  const size_t img = (size_t)C * H * W;
  for (int b = 0; b < B; b++) CHECK(idx[b] >= 0 && idx[b] < d->n);
  const int *used = idx;
  if (d->paths) { /* streamed: skip_bad may substitute images */
    if (decode_stream_batch(d, idx, B, err, errlen)) return -1;
    used = d->stream_idx;
  }
#pragma omp parallel for schedule(static) if ((size_t)B * img > 65536)
  for (int b = 0; b < B; b++) {
    const uint8_t *src = d->paths ? d->stream_buf + (size_t)b * img : d->pixels + (size_t)used[b] * img;
    image_to_floats(out + (size_t)b * img, src, C, H, W, flip && flip[b]);
  }
  if (labels_out)
    for (int b = 0; b < B; b++) labels_out[b] = d->labels[used[b]];
  return 0;
}
