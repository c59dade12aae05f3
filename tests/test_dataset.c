/* test_dataset.c - the image and dataset layer on small files written here: IDX raw and gzip
 * (stored blocks and real deflate) with labels and 28 -> 32 padding, hostile IDX/gzip files,
 * CIFAR-10 binary records, the cache limit of both, image folders with class sub-folders and a
 * corrupt file, image formats by content and hostile images (stb 2.27's crash and hang inputs,
 * decompression bombs), symlink loops, area resize, center crop, the procedural generator, and the
 * PNG grid writer. */
#include <dirent.h>
#include <math.h>
#include <stb_image.h>
#include <stb_image_write.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/image.h"
#include "test_util.h"

/* Exported by Debian's libstb (stb_image_write.h declares it only inside the implementation). */
unsigned char *stbi_zlib_compress(unsigned char *data, int data_len, int *out_len, int quality);

static char tmpdir[] = "/tmp/diffuse_test_dataset_XXXXXX";

static char *tpath(const char *rel) {
  static char buf[8][1024];
  static int k;
  char *p = buf[k++ % 8];
  snprintf(p, 1024, "%s/%s", tmpdir, rel);
  return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
  fclose(f);
}

static void rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char sub[2048];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      rm_rf(sub);
    }
    if (d) closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint32_t crc32_ref(const uint8_t *p, size_t n) { /* bitwise, independent of the library's table */
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}

/* IDX images (n, h, w) or labels (n): header + data in a new buffer. */
static uint8_t *idx_build(int ndim, const uint32_t *dims, const uint8_t *data, size_t *size) {
  size_t total = 1;
  for (int i = 0; i < ndim; i++) total *= dims[i];
  *size = 4 + 4 * (size_t)ndim + total;
  uint8_t *b = malloc(*size);
  put_be32(b, 0x800u | (uint32_t)ndim);
  for (int i = 0; i < ndim; i++) put_be32(b + 4 + 4 * i, dims[i]);
  memcpy(b + 4 + 4 * ndim, data, total);
  return b;
}

/* gzip member around a raw deflate stream; header with FEXTRA + FNAME + FCOMMENT + FHCRC when `fancy`. */
static uint8_t *gzip_wrap(const uint8_t *deflate, size_t dn, const uint8_t *data, size_t n, int fancy, size_t *out_n) {
  uint8_t *g = malloc(dn + 64);
  size_t p = 0;
  const uint8_t hdr[10] = {0x1f, 0x8b, 8, (uint8_t)(fancy ? 0x04 | 0x08 | 0x10 | 0x02 : 0), 0, 0, 0, 0, 0, 3};
  memcpy(g, hdr, 10);
  p = 10;
  if (fancy) {
    const uint8_t extra[] = {4, 0, 'A', 'B', 2, 0}; /* XLEN 4 */
    memcpy(g + p, extra, sizeof extra), p += sizeof extra;
    memcpy(g + p, "name.idx\0", 9), p += 9;
    memcpy(g + p, "a comment\0", 10), p += 10;
    g[p++] = 0x12, g[p++] = 0x34; /* header CRC16 (not checked by readers that skip it) */
  }
  memcpy(g + p, deflate, dn), p += dn;
  put_le32(g + p, crc32_ref(data, n)), p += 4;
  put_le32(g + p, (uint32_t)n), p += 4;
  *out_n = p;
  return g;
}

/* gzip with stored (uncompressed) deflate blocks of at most 65535 bytes. */
static uint8_t *gzip_stored(const uint8_t *data, size_t n, int fancy, size_t *out_n) {
  uint8_t *d = malloc(n + 5 * (n / 65535 + 1));
  size_t p = 0, off = 0;
  do {
    const size_t len = n - off > 65535 ? 65535 : n - off;
    d[p++] = off + len == n; /* BFINAL, BTYPE = 00, then byte-aligned */
    d[p++] = (uint8_t)len, d[p++] = (uint8_t)(len >> 8);
    d[p++] = (uint8_t)~len, d[p++] = (uint8_t)(~len >> 8);
    memcpy(d + p, data + off, len), p += len, off += len;
  } while (off < n);
  uint8_t *g = gzip_wrap(d, p, data, n, fancy, out_n);
  free(d);
  return g;
}

/* gzip with real (compressed) deflate from stb's zlib writer: strip the 2-byte zlib header and Adler-32. */
static uint8_t *gzip_deflate(const uint8_t *data, size_t n, size_t *out_n) {
  int zn = 0;
  unsigned char *z = stbi_zlib_compress((unsigned char *)data, (int)n, &zn, 8);
  uint8_t *g = gzip_wrap(z + 2, (size_t)zn - 6, data, n, 0, out_n);
  free(z);
  return g;
}

static DatasetOptions opts(const char *path, int res, int C) {
  return (DatasetOptions){.kind = DATASET_AUTO, .path = path, .resolution = res, .channels = C, .train_split = true};
}

static float u8f(int p) { return p / 127.5f - 1.0f; }

/* ---- IDX ---- */

#define IDX_N 100
static uint8_t idx_px(int i, int y, int x) { return (uint8_t)(1 + (i * 31 + y * 7 + x * 3) % 250); }

static void test_idx(void) {
  char err[1024];
  static uint8_t px[IDX_N * 28 * 28], lab[IDX_N];
  for (int i = 0; i < IDX_N; i++) {
    lab[i] = (uint8_t)(i * 7 % 10);
    for (int y = 0; y < 28; y++)
      for (int x = 0; x < 28; x++) px[(i * 28 + y) * 28 + x] = idx_px(i, y, x);
  }
  const uint32_t idims[3] = {IDX_N, 28, 28}, ldims[1] = {IDX_N};
  size_t isz, lsz;
  uint8_t *ib = idx_build(3, idims, px, &isz), *lb = idx_build(1, ldims, lab, &lsz);

  /* raw, directory with train-* files */
  mkdir(tpath("idx_raw"), 0755);
  write_bytes(tpath("idx_raw/train-images-idx3-ubyte"), ib, isz);
  write_bytes(tpath("idx_raw/train-labels-idx1-ubyte"), lb, lsz);
  DatasetOptions o = opts(tpath("idx_raw"), 32, 1);
  o.with_labels = true;
  Dataset d;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "raw IDX: %s", err);
  EXPECT(d.kind == DATASET_IDX && d.n == IDX_N && d.C == 1 && d.H == 32 && d.W == 32, "kind %d n %d %dx%dx%d",
         d.kind, d.n, d.C, d.H, d.W);
  EXPECT(d.labels && d.labels[3] == 1 && d.labels[9] == 3 && d.num_classes == 10, "labels / num_classes %d",
         d.num_classes);
  float out[2 * 32 * 32];
  int lo[2];
  const int idx[2] = {5, 5};
  const uint8_t flip[2] = {0, 1};
  EXPECT(dataset_get_batch(&d, idx, flip, 2, out, lo, err, sizeof err) == 0, "%s", err);
  EXPECT(out[0] == -1.0f && out[31] == -1.0f && out[32 * 31] == -1.0f && out[32 * 1 + 1] == -1.0f,
         "padded border is not -1");
  EXPECT(out[(2 + 4) * 32 + 2 + 9] == u8f(idx_px(5, 4, 9)), "copied pixel: got %g want %g", out[(2 + 4) * 32 + 11],
         u8f(idx_px(5, 4, 9)));
  EXPECT(out[32 * 32 + (2 + 4) * 32 + 31 - (2 + 9)] == u8f(idx_px(5, 4, 9)), "flipped pixel");
  EXPECT(lo[0] == 5 * 7 % 10 && lo[1] == lo[0], "batch labels %d %d", lo[0], lo[1]);
  dataset_free(&d);

  /* 3 channels: gray replicated; max_images */
  o.channels = 3;
  o.max_images = 7;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "raw IDX C=3: %s", err);
  EXPECT(d.n == 7 && d.C == 3, "max_images: n %d", d.n);
  if (d.n == 7) {
    const size_t plane = 32 * 32, at = (2 + 4) * 32 + 11;
    EXPECT(d.pixels[6 * 3 * plane + at] == idx_px(6, 4, 9) && d.pixels[6 * 3 * plane + plane + at] == idx_px(6, 4, 9) &&
               d.pixels[6 * 3 * plane + 2 * plane + at] == idx_px(6, 4, 9),
           "gray -> RGB replication");
  }
  dataset_free(&d);

  /* gzip, stored blocks (several, the file is > 64 KiB) with every header flag; test split */
  mkdir(tpath("idx_gz"), 0755);
  size_t gsz, glsz;
  uint8_t *g = gzip_stored(ib, isz, 1, &gsz), *gl = gzip_stored(lb, lsz, 0, &glsz);
  write_bytes(tpath("idx_gz/t10k-images-idx3-ubyte.gz"), g, gsz);
  write_bytes(tpath("idx_gz/t10k-labels-idx1-ubyte.gz"), gl, glsz);
  o = opts(tpath("idx_gz"), 32, 1);
  o.with_labels = true;
  o.train_split = false;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "gzip IDX: %s", err);
  EXPECT(d.n == IDX_N && d.labels && d.labels[9] == 3, "gzip IDX n %d", d.n);
  if (d.n == IDX_N)
    EXPECT(d.pixels[(IDX_N - 1) * 1024 + (2 + 4) * 32 + 2 + 9] == idx_px(IDX_N - 1, 4, 9), "gzip IDX pixels");
  dataset_free(&d);
  o.train_split = true; /* no train-* files there */
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "train-images-idx3-ubyte"),
         "missing split: '%s'", err);

  /* gzip, real deflate; the path of the images file itself, labels found beside it */
  free(g);
  g = gzip_deflate(ib, isz, &gsz);
  write_bytes(tpath("idx_gz/train-images-idx3-ubyte.gz"), g, gsz);
  write_bytes(tpath("idx_gz/train-labels-idx1-ubyte"), lb, lsz);
  o = opts(tpath("idx_gz/train-images-idx3-ubyte.gz"), 28, 1);
  o.with_labels = true;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "deflate IDX: %s", err);
  EXPECT(d.n == IDX_N && d.H == 28 && d.pixels && memcmp(d.pixels, px, sizeof px) == 0, "deflate IDX pixels differ");
  EXPECT(d.labels && d.labels[IDX_N - 1] == lab[IDX_N - 1], "deflate IDX labels");
  dataset_free(&d);

  /* ---- hostile files: every error names the file ---- */
  mkdir(tpath("bad"), 0755);
  const char *bad = tpath("bad/train-images-idx3-ubyte");
  o = opts(bad, 32, 1);
  uint8_t *cp = malloc(isz);
  memcpy(cp, ib, isz);
  cp[3] = 0x01; /* labels magic in an images file */
  write_bytes(bad, cp, isz);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, bad) && strstr(err, "magic"), "wrong magic: '%s'",
         err);
  write_bytes(bad, ib, isz - 10);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, bad) && strstr(err, "truncated"),
         "truncated: '%s'", err);
  write_bytes(bad, ib, 10);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, bad), "truncated header: '%s'", err);
  memcpy(cp, ib, isz);
  put_be32(cp + 4, 0xFFFFFFFFu); /* absurd count */
  write_bytes(bad, cp, isz);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, bad), "huge count: '%s'", err);
  memcpy(cp, ib, isz);
  put_be32(cp + 4, 0x10000000u), put_be32(cp + 8, 0x10000000u), put_be32(cp + 12, 0x10000000u); /* overflow */
  write_bytes(bad, cp, isz);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, bad), "overflowing dims: '%s'", err);
  /* label count mismatch */
  write_bytes(bad, ib, isz);
  const uint32_t ldims_short[1] = {IDX_N - 1};
  size_t lsz2;
  uint8_t *lb2 = idx_build(1, ldims_short, lab, &lsz2);
  write_bytes(tpath("bad/train-labels-idx1-ubyte"), lb2, lsz2);
  o.with_labels = true;
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "train-labels-idx1-ubyte") && strstr(err, bad),
         "label count mismatch: '%s'", err);
  unlink(tpath("bad/train-labels-idx1-ubyte"));
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, bad), "missing labels: '%s'", err);
  o.with_labels = false;
  /* gzip: bad CRC, wrong ISIZE, truncated, bad method */
  const char *badgz = tpath("bad/x-images-idx3-ubyte.gz");
  o.path = badgz;
  free(g);
  g = gzip_stored(ib, isz, 0, &gsz);
  uint8_t *gc = malloc(gsz);
  memcpy(gc, g, gsz);
  gc[gsz - 8] ^= 1;
  write_bytes(badgz, gc, gsz);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, badgz) && strstr(err, "CRC"), "bad CRC: '%s'", err);
  memcpy(gc, g, gsz);
  put_le32(gc + gsz - 4, (uint32_t)isz + 1);
  write_bytes(badgz, gc, gsz);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, badgz), "bad ISIZE: '%s'", err);
  memcpy(gc, g, gsz);
  put_le32(gc + gsz - 4, 0x7FFFFFFF);
  write_bytes(badgz, gc, gsz);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, badgz), "absurd ISIZE: '%s'", err);
  for (size_t cut = 1; cut < gsz; cut = cut * 3 + 1) {
    write_bytes(badgz, g, gsz - cut);
    EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, badgz) && strstr(err, "truncated"),
           "gzip cut by %zu: '%s'", cut, err);
  }
  /* truncated real deflate whose last 4 bytes (read as the trailer's ISIZE) exceed 2 GiB: truncation,
   * not "too large" */
  {
    size_t dsz;
    uint8_t *dz = gzip_deflate(ib, isz, &dsz);
    size_t keep = dsz / 2;
    while (keep > 20 && dz[keep - 1] < 0x80) keep--; /* ISIZE's top byte is the last byte kept */
    write_bytes(badgz, dz, keep);
    EXPECT(keep > 20 && dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, badgz) &&
               strstr(err, "truncated") && !strstr(err, "too large"),
           "truncated gzip with a huge stray ISIZE: '%s'", err);
    free(dz);
  }
  memcpy(gc, g, gsz);
  gc[2] = 7;
  write_bytes(badgz, gc, gsz);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, badgz), "bad method: '%s'", err);
  write_bytes(badgz, g, 12);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, badgz), "tiny gzip: '%s'", err);

  free(gc), free(g), free(gl), free(cp), free(ib), free(lb), free(lb2);
}

/* IDX is always cached: above cache_limit_bytes the load fails with a message naming the config keys
 * (it used to allocate regardless: 20M 1x1 images resized to 32x32 aborted in malloc). */
static void test_idx_cache_limit(void) {
  char err[1024];
  Dataset d;
  static uint8_t px[IDX_N];
  const uint32_t dims[3] = {IDX_N, 1, 1};
  size_t sz;
  uint8_t *b = idx_build(3, dims, px, &sz);
  mkdir(tpath("idx_big"), 0755);
  write_bytes(tpath("idx_big/train-images-idx3-ubyte"), b, sz);
  DatasetOptions o = opts(tpath("idx_big"), 32, 1);
  o.cache_limit_bytes = 50 * 32 * 32; /* 50 images */
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "train-images-idx3-ubyte") &&
             strstr(err, "100 images") && strstr(err, "32x32") && strstr(err, "102400 bytes") &&
             strstr(err, "51200 bytes") && strstr(err, "data.max_images") && strstr(err, "data.cache_mb"),
         "IDX over the cache limit: '%s'", err);
  EXPECT(d.pixels == NULL && d.n == 0, "failed load leaves an empty dataset");
  o.max_images = 50; /* exactly the limit */
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 50, "IDX at the cache limit: %s", err);
  dataset_free(&d);
  free(b);
}

/* ---- CIFAR-10 binary ---- */

static void cifar_record(uint8_t *r, int label, int seed) {
  r[0] = (uint8_t)label;
  for (int c = 0; c < 3; c++)
    for (int p = 0; p < 1024; p++) r[1 + c * 1024 + p] = (uint8_t)((seed + 10 * (c + 1) + p) % 256);
}

static void test_cifar(void) {
  char err[1024];
  Dataset d;
  mkdir(tpath("cifar"), 0755);
  uint8_t rec[2 * 3073];
  cifar_record(rec, 3, 0);
  cifar_record(rec + 3073, 9, 100);
  write_bytes(tpath("cifar/test_batch.bin"), rec, sizeof rec);
  DatasetOptions o = opts(tpath("cifar"), 32, 3);
  o.train_split = false;
  o.with_labels = true;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "CIFAR: %s", err);
  EXPECT(d.kind == DATASET_CIFAR10_BIN && d.n == 2 && d.C == 3 && d.num_classes == 10, "CIFAR kind %d n %d", d.kind,
         d.n);
  EXPECT(d.labels && d.labels[0] == 3 && d.labels[1] == 9, "CIFAR labels");
  float out[3 * 1024];
  int lab;
  const int one = 1;
  EXPECT(dataset_get_batch(&d, &one, NULL, 1, out, &lab, err, sizeof err) == 0, "%s", err);
  for (int c = 0; c < 3; c++)
    EXPECT(out[c * 1024 + 5 * 32 + 7] == u8f((100 + 10 * (c + 1) + 5 * 32 + 7) % 256), "CIFAR plane %d", c);
  EXPECT(lab == 9, "CIFAR batch label %d", lab);
  dataset_free(&d);

  /* gray: BT.601 luma */
  o.channels = 1;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "CIFAR gray: %s", err);
  if (d.n == 2) {
    const int r = 10, g = 20, b = 30;
    EXPECT(d.pixels[0] == (uint8_t)lround(0.299 * r + 0.587 * g + 0.114 * b), "luma %d", d.pixels[0]);
  }
  dataset_free(&d);

  /* center crop 16 of 32: output (0, 0) is source (8, 8) */
  o.channels = 3;
  o.center_crop = 16;
  o.resolution = 16;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "CIFAR crop: %s", err);
  if (d.n == 2) EXPECT(d.pixels[0] == (10 + 8 * 32 + 8) % 256 && d.pixels[15 * 16 + 15] == (10 + 23 * 32 + 23) % 256,
                       "center crop: %d", d.pixels[0]);
  dataset_free(&d);
  o.center_crop = 40;
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "center_crop"), "crop too big: '%s'", err);
  o.center_crop = 0;

  /* train split: data_batch_1..5, max_images across files; a missing batch is named */
  for (int i = 1; i <= 5; i++) {
    char name[64];
    snprintf(name, sizeof name, "cifar/data_batch_%d.bin", i);
    cifar_record(rec, i, i);
    write_bytes(tpath(name), rec, 3073);
  }
  o.train_split = true;
  o.max_images = 4;
  o.resolution = 32;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "CIFAR train: %s", err);
  EXPECT(d.n == 4 && d.labels && d.labels[3] == 4, "CIFAR train n %d", d.n);
  dataset_free(&d);
  unlink(tpath("cifar/data_batch_5.bin"));
  o.max_images = 0;
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "data_batch_5.bin"), "missing batch: '%s'", err);

  /* size not a multiple of 3073 */
  write_bytes(tpath("cifar/test_batch.bin"), rec, 3000);
  o.train_split = false;
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, tpath("cifar/test_batch.bin")),
         "bad CIFAR size: '%s'", err);
  /* a label > 9 */
  rec[0] = 42;
  write_bytes(tpath("cifar/test_batch.bin"), rec, 3073);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "test_batch.bin"), "bad CIFAR label: '%s'", err);

  /* always cached: over cache_limit_bytes is an error naming the config keys */
  cifar_record(rec, 3, 0);
  write_bytes(tpath("cifar/test_batch.bin"), rec, sizeof rec);
  o.path = tpath("cifar"); /* tpath's buffers rotate */
  o.cache_limit_bytes = 3 * 32 * 32;
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "2 images") && strstr(err, "data.max_images") &&
             strstr(err, "data.cache_mb"),
         "CIFAR over the cache limit: '%s'", err);
  o.max_images = 1;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 1, "CIFAR at the cache limit: %s", err);
  dataset_free(&d);
}

/* ---- folders ---- */

static void write_png_solid(const char *path, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  uint8_t *px = malloc((size_t)w * h * 3);
  for (int i = 0; i < w * h; i++) px[3 * i] = r, px[3 * i + 1] = g, px[3 * i + 2] = b;
  if (!stbi_write_png(path, w, h, 3, px, w * 3)) fprintf(stderr, "cannot write %s\n", path), exit(1);
  free(px);
}

/* A folder over the cache limit is streamed: the same pixels and labels per batch as the cache
 * (`cached` holds cat/b, cat/sub/a, dog/c, dog/e; the stream also lists the corrupt dog/d.png). */
static void check_streaming(const Dataset *cached, DatasetOptions o) {
  char err[1024];
  Dataset s;
  o.cache_limit_bytes = 1;
  o.skip_bad = false;
  EXPECT(dataset_load(&s, &o, err, sizeof err) == 0, "streamed folder: %s", err);
  EXPECT(s.n == 5 && s.pixels == NULL && s.paths != NULL, "streamed: n %d (the corrupt file is found lazily)", s.n);
  const size_t img = 3 * 8 * 8;
  float a[4 * 3 * 8 * 8], b[4 * 3 * 8 * 8];
  int la[4], lb[4];
  const int idx_cached[4] = {0, 1, 2, 3}, idx_stream[4] = {0, 1, 2, 4};
  const uint8_t flip[4] = {0, 1, 0, 1};
  EXPECT(dataset_get_batch((Dataset *)cached, idx_cached, flip, 4, a, la, err, sizeof err) == 0, "%s", err);
  EXPECT(dataset_get_batch(&s, idx_stream, flip, 4, b, lb, err, sizeof err) == 0, "streamed batch: %s", err);
  EXPECT(memcmp(a, b, sizeof a) == 0 && memcmp(la, lb, sizeof la) == 0, "streamed batch differs from the cache");
  const int bad = 3; /* dog/d.png */
  EXPECT(dataset_get_batch(&s, &bad, NULL, 1, b, lb, err, sizeof err) != 0 && strstr(err, "d.png") &&
             strstr(err, "--skip-bad"),
         "streamed corrupt image: '%s'", err);
  dataset_free(&s);
  o.skip_bad = true;
  EXPECT(dataset_load(&s, &o, err, sizeof err) == 0, "%s", err);
  EXPECT(dataset_get_batch(&s, &bad, NULL, 1, b, lb, err, sizeof err) == 0 && s.skipped == 1 && lb[0] == 1 &&
             memcmp(b, a + 3 * img, img * sizeof(float)) == 0,
         "streamed skip_bad: the next image (dog/e.png) should replace dog/d.png (skipped %d)", s.skipped);
  dataset_free(&s);
}

static void test_folder(void) {
  char err[1024];
  Dataset d;
  mkdir(tpath("imgs"), 0755);
  mkdir(tpath("imgs/cat"), 0755);
  mkdir(tpath("imgs/cat/sub"), 0755);
  mkdir(tpath("imgs/dog"), 0755);
  mkdir(tpath("imgs/empty"), 0755);
  mkdir(tpath("imgs/.hidden"), 0755);
  write_png_solid(tpath("imgs/cat/b.png"), 8, 8, 10, 20, 30);
  write_png_solid(tpath("imgs/cat/sub/a.PNG"), 8, 8, 40, 50, 60);
  write_png_solid(tpath("imgs/dog/c.png"), 16, 12, 70, 80, 90); /* resized: stays constant */
  write_png_solid(tpath("imgs/.hidden/z.png"), 8, 8, 1, 1, 1);
  write_bytes(tpath("imgs/dog/notes.txt"), "hello", 5);
  DatasetOptions o = opts(tpath("imgs"), 8, 3);
  o.with_labels = true;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "folder: %s", err);
  EXPECT(d.kind == DATASET_FOLDER && d.n == 3 && d.num_classes == 2 && d.skipped == 0, "folder kind %d n %d classes %d",
         d.kind, d.n, d.num_classes);
  if (d.n == 3 && d.num_classes == 2 && d.labels) {
    EXPECT(!strcmp(d.class_names[0], "cat") && !strcmp(d.class_names[1], "dog"), "class names");
    EXPECT(d.labels[0] == 0 && d.labels[1] == 0 && d.labels[2] == 1, "folder labels %d %d %d", d.labels[0],
           d.labels[1], d.labels[2]);
    /* sorted order: cat/b.png, cat/sub/a.PNG, dog/c.png */
    EXPECT(d.pixels[0] == 10 && d.pixels[64] == 20 && d.pixels[128] == 30, "cat/b.png pixels");
    EXPECT(d.pixels[192] == 40, "cat/sub/a.PNG pixel %d", d.pixels[192]);
    int constant = 1;
    for (int p = 0; p < 64; p++) constant &= d.pixels[2 * 192 + p] == 70 && d.pixels[2 * 192 + 128 + p] == 90;
    EXPECT(constant, "resized solid image is not constant");
  }
  dataset_free(&d);

  /* a corrupt image: error naming it, or skipped with skip_bad */
  const char *corrupt = tpath("imgs/dog/d.png");
  write_bytes(corrupt, "\x89PNG\r\n\x1a\nnot really a png", 24);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, corrupt) && strstr(err, "--skip-bad"),
         "corrupt image: '%s'", err);
  EXPECT(d.pixels == NULL && d.n == 0, "failed load leaves an empty dataset");
  o.skip_bad = true;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "skip_bad: %s", err);
  EXPECT(d.n == 3 && d.skipped == 1 && d.labels && d.labels[2] == 1, "skip_bad: n %d skipped %d", d.n, d.skipped);
  dataset_free(&d);
  /* max_images spreads over the sorted files (b, a, c, d, e: entries 0 and 2), so both classes come
   * in, with their labels from all the files; a prefix would be the cats only */
  o.max_images = 2;
  write_png_solid(tpath("imgs/dog/e.png"), 8, 8, 1, 2, 3);
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 2 && d.skipped == 0 && d.num_classes == 2 && d.labels &&
             d.labels[0] == 0 && d.labels[1] == 1 && d.pixels[0] == 10 && d.pixels[192] == 70,
         "max_images 2: n %d classes %d", d.n, d.num_classes);
  dataset_free(&d);
  o.max_images = 3; /* entries 0, 1, 3: d.png is one of them, skipped */
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 2 && d.skipped == 1, "max_images 3: n %d skipped %d",
         d.n, d.skipped);
  dataset_free(&d);
  o.max_images = 0;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 4 && d.skipped == 1, "skip_bad 2: n %d", d.n);
  check_streaming(&d, o);
  dataset_free(&d);

  /* labels need class sub-folders */
  write_png_solid(tpath("imgs/top.png"), 8, 8, 1, 2, 3);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "top.png"), "top-level image: '%s'", err);
  o.with_labels = false;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 5 && !d.labels && !d.class_names, "unlabelled: %s",
         err);
  dataset_free(&d);

  /* grayscale output from RGB: BT.601 luma */
  o.channels = 1;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0, "gray folder: %s", err);
  if (d.n == 5) EXPECT(d.pixels[0] == (299 * 10 + 587 * 20 + 114 * 30 + 500) / 1000, "gray %d", d.pixels[0]);
  dataset_free(&d);

  /* empty folder, missing path */
  mkdir(tpath("none"), 0755);
  o = opts(tpath("none"), 8, 3);
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, tpath("none")) && strstr(err, "no images"),
         "empty folder: '%s'", err);
  o.path = tpath("does_not_exist");
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "does_not_exist"), "missing path: '%s'", err);
  o.channels = 2;
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, "channels"), "bad channels: '%s'", err);
}

static uint8_t *read_whole(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  uint8_t *b = malloc(1 << 16);
  *n = f ? fread(b, 1, 1 << 16, f) : 0;
  if (!f || *n == 0 || *n == 1 << 16) fprintf(stderr, "cannot read %s\n", path), exit(1);
  fclose(f);
  return b;
}

/* A PNG of only the signature and an IHDR chunk (8-bit RGB, correct CRC) claiming w x h. */
static void write_png_header(const char *path, uint32_t w, uint32_t h) {
  uint8_t b[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  put_be32(b + 16, w), put_be32(b + 20, h);
  b[24] = 8, b[25] = 2; /* bit depth, colour type RGB; compression, filter, interlace 0 */
  put_be32(b + 29, crc32_ref(b + 12, 17));
  write_bytes(path, b, sizeof b);
}

/* Load opt's folder, which holds one good image besides `bad`: the load fails naming bad and
 * `reason`, and with skip_bad succeeds with 1 image and 1 skipped. alarm() turns a hang into a failure. */
static void expect_bad_image(DatasetOptions o, const char *bad, const char *reason) {
  char err[1024];
  Dataset d;
  alarm(60);
  o.skip_bad = false;
  EXPECT(dataset_load(&d, &o, err, sizeof err) != 0 && strstr(err, bad) && strstr(err, reason) &&
             strstr(err, "--skip-bad"),
         "%s: want '%s', got '%s'", bad, reason, err);
  o.skip_bad = true;
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 1 && d.skipped == 1, "%s with skip_bad: n %d (%s)", bad,
         d.n, err);
  dataset_free(&d);
  alarm(0);
}

/* Only PNG, JPEG, BMP and TGA reach stb_image, chosen by content (TGA, which has no magic, also by
 * name), no JPEG with an oversized Huffman table, and no image above the size limits. */
static void test_image_formats(void) {
  char err[1024];
  Dataset d;
  enum { S = 4 };
  uint8_t px[S * S * 3];
  for (int i = 0; i < S * S * 3; i++) px[i] = (uint8_t)(i % 3 == 0 ? 200 : i % 3 == 1 ? 100 : 50);
  mkdir(tpath("fmt"), 0755);
  EXPECT(stbi_write_png(tpath("fmt/a.png"), S, S, 3, px, S * 3), "write png");
  EXPECT(stbi_write_bmp(tpath("fmt/b.bmp"), S, S, 3, px), "write bmp");
  EXPECT(stbi_write_jpg(tpath("fmt/c.jpg"), S, S, 3, px, 95), "write jpg");
  EXPECT(stbi_write_tga(tpath("fmt/d.tga"), S, S, 3, px), "write tga (RLE)");
  stbi_write_tga_with_rle = 0;
  EXPECT(stbi_write_tga(tpath("fmt/e.TGA"), S, S, 3, px), "write tga (raw)");
  stbi_write_tga_with_rle = 1;
  EXPECT(stbi_write_png(tpath("fmt/f.jpg"), S, S, 3, px, S * 3), "write png named .jpg");
  DatasetOptions o = opts(tpath("fmt"), S, 3);
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 6, "PNG, BMP, JPEG, TGA x2, PNG as .jpg: n %d (%s)",
         d.n, err);
  for (int i = 0; i < d.n; i++) {
    const uint8_t *im = d.pixels + (size_t)i * 3 * S * S;
    const int tol = i == 2 ? 8 : 0; /* JPEG */
    EXPECT(abs(im[0] - 200) <= tol && abs(im[S * S] - 100) <= tol && abs(im[2 * S * S + S * S - 1] - 50) <= tol,
           "image %d pixels %d %d %d", i, im[0], im[S * S], im[2 * S * S + S * S - 1]);
  }
  dataset_free(&d);

  /* one good image and one bad file at a time */
  mkdir(tpath("hostile"), 0755);
  EXPECT(stbi_write_png(tpath("hostile/good.png"), S, S, 3, px, S * 3), "write png");
  char dir[1024]; /* tpath's buffers rotate */
  snprintf(dir, sizeof dir, "%s", tpath("hostile"));
  o = opts(dir, S, 3);
  static const char UNSUPPORTED[] = "unsupported image format (only PNG, JPEG, BMP, TGA)";
  struct {
    const char *name, *bytes;
    size_t n;
  } cases[] = {
#define BYTES(lit) lit, sizeof lit - 1
      /* 16-bit PGM: SIGSEGV in stb 2.27's 16 -> 8 bit conversion */
      {"pgm16.png", BYTES("P5\n4096 4096\n65535\n\1\2\3\4")},
      /* truncated RLE Radiance HDR: stb 2.27 loops forever on the missing run counts */
      {"trunc_hdr.png", BYTES("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8 +X 8\n\2\2\0\x08")},
      {"gif.png", BYTES("GIF89a\1\0\1\0\0\0\0;")},
      {"psd.png", BYTES("8BPS\0\1\0\0\0\0\0\0\0\3\0\0\0\1\0\0\0\1\0\x08\0\3")},
      {"empty.png", BYTES("")},
      {"text.png", BYTES("hello, world")},
#undef BYTES
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char rel[64];
    snprintf(rel, sizeof rel, "hostile/%s", cases[i].name);
    const char *bad = tpath(rel);
    write_bytes(bad, cases[i].bytes, cases[i].n);
    expect_bad_image(o, bad, UNSUPPORTED);
    unlink(bad);
  }
  /* TGA has no magic: only a file named .tga is taken as one */
  size_t tga_n;
  uint8_t *tga = read_whole(tpath("fmt/e.TGA"), &tga_n);
  uint8_t *rgb;
  int w, h;
  EXPECT(image_decode(tga, tga_n, false, &rgb, &w, &h, err, sizeof err) != 0 && !rgb && strstr(err, UNSUPPORTED),
         "TGA not allowed: '%s'", err);
  EXPECT(image_decode(tga, tga_n, true, &rgb, &w, &h, err, sizeof err) == 0 && rgb && w == S && h == S &&
             rgb[0] == 200 && rgb[3 * S * S - 1] == 50,
         "TGA allowed: %s", err);
  image_decode_free(rgb);
  EXPECT(image_decode(NULL, 0, true, &rgb, &w, &h, err, sizeof err) != 0 && !rgb && w == 0 && strstr(err, UNSUPPORTED),
         "no bytes: '%s'", err);
  EXPECT(image_decode(tga, 17, true, &rgb, &w, &h, err, sizeof err) != 0 && strstr(err, UNSUPPORTED),
         "short TGA header: '%s'", err);
  write_bytes(tpath("hostile/tga.png"), tga, tga_n);
  expect_bad_image(o, tpath("hostile/tga.png"), UNSUPPORTED);
  unlink(tpath("hostile/tga.png"));
  tga[2] = 4; /* not a TGA image type */
  write_bytes(tpath("hostile/bad.tga"), tga, tga_n);
  expect_bad_image(o, tpath("hostile/bad.tga"), UNSUPPORTED);
  unlink(tpath("hostile/bad.tga"));
  free(tga);
  /* a JPEG Huffman table of 257 codes (2 of 15 bits, 255 of 16): stb 2.27 writes past its tables */
  uint8_t jpg[282] = {0xFF, 0xD8, 0xFF, 0xC4, 0x01, 0x14 /* 2 + 17 + 257 */, 0x10 /* AC table 0 */};
  jpg[7 + 14] = 2, jpg[7 + 15] = 255;
  jpg[280] = 0xFF, jpg[281] = 0xD9;
  write_bytes(tpath("hostile/dht.jpg"), jpg, sizeof jpg);
  expect_bad_image(o, tpath("hostile/dht.jpg"), "Huffman table with more than 256 codes");
  unlink(tpath("hostile/dht.jpg"));
  /* decompression bombs: the header's size is checked before decoding */
  write_png_header(tpath("hostile/bomb.png"), 18000, 18000);
  expect_bad_image(o, tpath("hostile/bomb.png"), "image is 18000x18000");
  expect_bad_image(o, tpath("hostile/bomb.png"), "16384 pixels a side");
  write_png_header(tpath("hostile/bomb.png"), 16384, 4097); /* sides fine, too many pixels */
  expect_bad_image(o, tpath("hostile/bomb.png"), "67108864 pixels");
  write_png_header(tpath("hostile/bomb.png"), 1, 16385);
  expect_bad_image(o, tpath("hostile/bomb.png"), "image is 1x16385");
  unlink(tpath("hostile/bomb.png"));
  /* unreadable: a dangling link */
  EXPECT(symlink("no_such_target.png", tpath("hostile/dangling.png")) == 0, "symlink");
  expect_bad_image(o, tpath("hostile/dangling.png"), "No such file");
  unlink(tpath("hostile/dangling.png"));
}

/* Symlinks to a folder already walked (here `.`) are skipped: each real folder is walked once
 * (two links to `.` used to make the walk exponential, one made each image load many times). */
static void test_symlink_loops(void) {
  char err[1024];
  Dataset d;
  mkdir(tpath("loop"), 0755);
  write_png_solid(tpath("loop/x.png"), 4, 4, 1, 2, 3);
  EXPECT(symlink(".", tpath("loop/a")) == 0 && symlink(".", tpath("loop/b")) == 0, "symlink");
  mkdir(tpath("loop/real"), 0755);
  write_png_solid(tpath("loop/real/y.png"), 4, 4, 4, 5, 6);
  EXPECT(symlink("real", tpath("loop/alias")) == 0 && symlink("..", tpath("loop/real/up")) == 0, "symlink");
  DatasetOptions o = opts(tpath("loop"), 4, 3);
  alarm(60);
  EXPECT(dataset_load(&d, &o, err, sizeof err) == 0 && d.n == 2, "folder with symlink loops: n %d (%s)", d.n, err);
  alarm(0);
  dataset_free(&d);
}

/* ---- resize, procedural, PNG ---- */

static void test_resize(void) {
  uint8_t in[3 * 7 * 5], out[3 * 16 * 16];
  memset(in, 77, sizeof in);
  const int sizes[][2] = {{3, 4}, {1, 1}, {2, 9}, {16, 16}, {7, 5}, {5, 7}};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    const int oh = sizes[s][0], ow = sizes[s][1];
    memset(out, 0, sizeof out);
    image_resize_area(out, in, 3, 7, 5, oh, ow);
    int ok = 1;
    for (int i = 0; i < 3 * oh * ow; i++) ok &= out[i] == 77;
    EXPECT(ok, "constant image resized to %dx%d is not constant", oh, ow);
  }
  const uint8_t checker[4] = {0, 200, 200, 0};
  image_resize_area(out, checker, 1, 2, 2, 1, 1);
  EXPECT(out[0] == 100, "2x2 checker -> 1x1: %d", out[0]);
  const uint8_t blocks[16] = {0, 0, 100, 100, 0, 0, 100, 100, 40, 40, 80, 80, 40, 40, 80, 80};
  image_resize_area(out, blocks, 1, 4, 4, 2, 2);
  EXPECT(out[0] == 0 && out[1] == 100 && out[2] == 40 && out[3] == 80, "4x4 blocks -> 2x2");
  /* 3 -> 2: fractional coverage, output 0 covers input [0, 1.5): (2 * a + b) / 3 */
  const uint8_t row[3] = {30, 90, 200};
  image_resize_area(out, row, 1, 1, 3, 1, 2);
  EXPECT(out[0] == 50 && out[1] == (90 + 2 * 200 + 1) / 3, "3 -> 2: %d %d", out[0], out[1]);
  /* upscaling 2 -> 4 replicates */
  const uint8_t two[2] = {10, 250};
  image_resize_area(out, two, 1, 1, 2, 1, 4);
  EXPECT(out[0] == 10 && out[1] == 10 && out[2] == 250 && out[3] == 250, "2 -> 4");
  /* padding rule */
  EXPECT(image_fit_pads(28, 28, 32) && !image_fit_pads(27, 28, 32) && !image_fit_pads(32, 32, 32) &&
             !image_fit_pads(33, 30, 32) && image_fit_pads(32, 30, 32),
         "image_fit_pads");
  EXPECT(image_to_u8(-1.0f) == 0 && image_to_u8(1.0f) == 255 && image_to_u8(0.0f) == 128 && image_to_u8(5.0f) == 255 &&
             image_to_u8(-3.0f) == 0 && image_to_u8(NAN) == 0 && image_to_u8(u8f(37)) == 37,
         "image_to_u8");
}

static void test_procedural(void) {
  char err[256];
  Dataset a, b, c;
  DatasetOptions o = {.kind = DATASET_PROCEDURAL, .resolution = 16, .channels = 3, .seed = 1,
                      .procedural_count = 12, .with_labels = true};
  EXPECT(dataset_load(&a, &o, err, sizeof err) == 0, "procedural: %s", err);
  EXPECT(dataset_load(&b, &o, err, sizeof err) == 0, "procedural: %s", err);
  o.seed = 2;
  EXPECT(dataset_load(&c, &o, err, sizeof err) == 0, "procedural: %s", err);
  const size_t bytes = (size_t)12 * 3 * 16 * 16;
  EXPECT(a.n == 12 && a.kind == DATASET_PROCEDURAL, "procedural n %d", a.n);
  EXPECT(memcmp(a.pixels, b.pixels, bytes) == 0 && memcmp(a.labels, b.labels, 12 * sizeof(int)) == 0,
         "same seed, different images");
  EXPECT(memcmp(a.pixels, c.pixels, bytes) != 0, "different seeds, same images");
  int lo = 255, hi = 0, labels_ok = 1;
  for (size_t i = 0; i < bytes; i++) lo = a.pixels[i] < lo ? a.pixels[i] : lo, hi = a.pixels[i] > hi ? a.pixels[i] : hi;
  for (int i = 0; i < 12; i++) labels_ok &= a.labels[i] >= 0 && a.labels[i] < a.num_classes;
  EXPECT(hi - lo > 100 && labels_ok, "procedural images are flat (%d..%d) or labels out of range", lo, hi);
  int distinct = memcmp(a.pixels, a.pixels + 3 * 256, 3 * 256) != 0;
  EXPECT(distinct, "images 0 and 1 are equal");
  float out[3 * 256];
  const int i0 = 0;
  EXPECT(dataset_get_batch(&a, &i0, NULL, 1, out, NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(out[0] == u8f(a.pixels[0]) && out[255] == u8f(a.pixels[255]), "get_batch mapping");
  dataset_free(&a), dataset_free(&b), dataset_free(&c);
}

/* The size of a folder's first readable image (eval fid --images at the images' own size). */
static void test_folder_image_size(void) {
  char err[1024];
  mkdir(tpath("sized"), 0755);
  write_bytes(tpath("sized/a_not_an_image.png"), "text", 4);
  static uint8_t px[20 * 12 * 3];
  EXPECT(stbi_write_png(tpath("sized/b.png"), 20, 12, 3, px, 20 * 3), "write png");
  int w = 0, h = 0;
  EXPECT(dataset_folder_image_size(tpath("sized"), &w, &h, err, sizeof err) == 0 && w == 20 && h == 12,
         "folder image size %dx%d: %s", w, h, err);
  mkdir(tpath("unsized"), 0755);
  write_bytes(tpath("unsized/x.png"), "text", 4);
  EXPECT(dataset_folder_image_size(tpath("unsized"), &w, &h, err, sizeof err) != 0 && strstr(err, "no readable image"),
         "a folder without a readable image: %s", err);
}

static void test_png(void) {
  char err[1024];
  enum { N = 5, C = 3, H = 8, W = 8 };
  static float x[N * C * H * W];
  for (int i = 0; i < N; i++)
    for (int c = 0; c < C; c++)
      for (int p = 0; p < H * W; p++) x[((i * C + c) * H * W) + p] = -0.9f + 0.3f * i + 0.1f * c + 0.001f * p;
  const char *path = tpath("grid.png");
  EXPECT(image_write_grid_png(path, x, N, C, H, W, err, sizeof err) == 0, "grid: %s", err);
  int w = 0, h = 0, comp = 0;
  uint8_t *px = stbi_load(path, &w, &h, &comp, 0);
  /* 8x8 tiles are enlarged 8x to 64x64 cells: 3 x 2 cells of 66 pixels + 2 */
  enum { S = 8, GW = 3 * (S * W + 2) + 2, GH = 2 * (S * H + 2) + 2 };
  EXPECT(px && w == GW && h == GH && comp == 3, "grid %dx%d comp %d", w, h, comp);
  if (px && w == GW && h == GH) {
    EXPECT(px[0] == 0 && px[((GH - 1) * GW + GW - 1) * 3] == 0, "padding is not black");
    for (int i = 0; i < N; i++) {
      const int ty = 2 + (i / 3) * (S * H + 2), tx = 2 + (i % 3) * (S * W + 2);
      for (int c = 0; c < C; c++) {
        const uint8_t want = image_to_u8(x[(i * C + c) * H * W]), got = px[(ty * GW + tx) * 3 + c];
        EXPECT(got == want, "tile %d corner channel %d: %d want %d", i, c, got, want);
      }
      /* source pixel (7, 6) covers the cell's block at rows 56..63, columns 48..55 */
      const uint8_t want = image_to_u8(x[(i * C) * H * W + 7 * W + 6]);
      EXPECT(px[((ty + 56) * GW + tx + 48) * 3] == want && px[((ty + 63) * GW + tx + 55) * 3] == want,
             "tile %d: pixel (7, 6) is not an 8x8 block", i);
    }
    EXPECT(px[((2 + S * H + 2 + 10) * GW + 2 + 2 * (S * W + 2) + 10) * 3] == 0, "the empty sixth slot is not black");
  }
  stbi_image_free(px);
  DIR *dp = opendir(tmpdir); /* the atomic write left no temporary beside the grid */
  for (struct dirent *e; dp && (e = readdir(dp)) != NULL;)
    EXPECT(!atomic_file_is_temp(e->d_name, "grid.png"), "temp file %s left", e->d_name);
  if (dp) closedir(dp);

  /* single grayscale image */
  EXPECT(image_write_png(tpath("one.png"), x, 1, H, W, err, sizeof err) == 0, "png: %s", err);
  px = stbi_load(tpath("one.png"), &w, &h, &comp, 0);
  EXPECT(px && w == W && h == H && comp == 1, "single %dx%d comp %d", w, h, comp);
  if (px) EXPECT(px[9] == image_to_u8(x[9]), "single pixel %d", px[9]);
  stbi_image_free(px);
  EXPECT(image_write_png(tpath("no_such_dir/x.png"), x, 3, H, W, err, sizeof err) != 0 && strstr(err, "x.png"),
         "unwritable: '%s'", err);
  EXPECT(image_write_grid_png(tpath("x.png"), x, N, 4, H, W, err, sizeof err) != 0 && strstr(err, "x.png"),
         "4 channels: '%s'", err);
}

int main(void) {
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_resize();
  test_idx();
  test_idx_cache_limit();
  test_cifar();
  test_folder();
  test_image_formats();
  test_symlink_loops();
  test_procedural();
  test_png();
  test_folder_image_size();
  rm_rf(tmpdir);
  return test_report("dataset");
}
