/* dataset.h - training images: decoded once into a uint8 cache, served as float minibatches.
 *
 * Sources:
 *   FOLDER      a directory walked recursively (names sorted, hidden entries skipped) for
 *               .png .jpg .jpeg .bmp .tga files (any case), decoded with stb_image, in parallel,
 *               in a deterministic order. Symlinks are followed, but each real directory is walked
 *               once (where the sorted walk first meets it), so links to `.` or to another folder
 *               neither loop nor load images twice. Files are decoded by content, and only PNG,
 *               JPEG, BMP and (for .tga names) TGA within image.h's size limits are decoded:
 *               anything else is an unreadable image (see skip_bad). Labels: index of the file's
 *               top-level sub-folder of PATH in sorted order (ImageFolder style; PATH/cat/a/x.png
 *               has class "cat"); only sub-folders holding images count as classes.
 *   CIFAR10_BIN the CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (R, G and B
 *               planes of 32x32); data_batch_1..5.bin (train) or test_batch.bin (test).
 *   IDX         (Fashion-)MNIST IDX files, raw or gzip: train-images-idx3-ubyte[.gz] and
 *               train-labels-idx1-ubyte[.gz] (t10k-* for the test split). Every size in a header is
 *               checked against the file length; gzip must be a single member (RFC 1952).
 *   PROCEDURAL  deterministic synthetic images (soft Gaussian blobs and rectangles of random
 *               colours on a random background), for tests and smoke runs; label = shapes - 1.
 *
 * Every image is converted to `channels` (see image.h), center-cropped if asked, then fitted to
 * resolution x resolution by image_fit (copy, symmetric black padding of at most 4 pixels a side
 * such as 28 -> 32, or an area resize). The cache holds bytes only: 32x32 RGB is 3 KiB an image.
 * A FOLDER whose cache would exceed cache_limit_bytes is streamed instead: only the file list is
 * kept and each minibatch is decoded from the files (in parallel), giving the same pixels as the
 * cache would; unreadable files are then found when first drawn. CIFAR10_BIN and IDX are always
 * cached: above cache_limit_bytes their load fails (set max_images or raise the limit).
 */
#ifndef DIFFUSE_IO_DATASET_H
#define DIFFUSE_IO_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { DATASET_AUTO, DATASET_FOLDER, DATASET_CIFAR10_BIN, DATASET_IDX, DATASET_PROCEDURAL } DatasetKind;

typedef struct {
  DatasetKind kind;     /* AUTO: a directory holding data_batch_*.bin or test_batch.bin (or whose
                           cifar-10-batches-bin/ sub-folder does) -> CIFAR10_BIN; a directory holding
                           *-images-idx3-ubyte[.gz] -> IDX; a regular file -> IDX (an idx3 image file);
                           any other directory -> FOLDER. PROCEDURAL is never chosen automatically. */
  const char *path;     /* unused by PROCEDURAL */
  int resolution;       /* output H = W */
  int channels;         /* 1 or 3 */
  int center_crop;      /* 0: none; else crop a center square of this size before fitting (CelebA: 140) */
  bool train_split;     /* CIFAR: data_batch_1..5 (true) or test_batch (false); IDX dir: train-* or t10k-* */
  bool skip_bad;        /* folder: skip unreadable images (counted in Dataset.skipped) instead of failing */
  bool with_labels;     /* folder: sub-folder classes; CIFAR/IDX: the label bytes; procedural: shapes - 1 */
  int max_images;       /* 0: all; else at most max_images in the deterministic order: a folder's spread
                           evenly over its sorted files (every class gets its share), CIFAR's and IDX's
                           the first ones (their order is not by class) */
  uint64_t seed;        /* procedural generator */
  int procedural_count; /* procedural: number of images */
  size_t cache_limit_bytes; /* the cache's limit (0: none): folders above it are streamed, CIFAR / IDX
                               above it fail with an error naming data.max_images and data.cache_mb */
} DatasetOptions;

typedef struct {
  DatasetKind kind;   /* the resolved kind (never AUTO) */
  int n, C, H, W;
  uint8_t *pixels;    /* (n, C, H, W) */
  int *labels;        /* (n) or NULL */
  int num_classes;    /* 0 without labels; CIFAR: 10; IDX: max label + 1 of the labels file */
  int skipped;        /* unreadable files skipped (skip_bad) */
  int padded_from;    /* IDX: the side the images were zero-padded from (28 for MNIST at 32), else 0 */
  char **class_names; /* folder with labels: sub-folder names (num_classes entries), else NULL */
  /* streamed folder: pixels is NULL, images are decoded from paths per batch */
  char **paths;          /* (n) or NULL */
  DatasetOptions decode; /* how to decode streamed files (path strings not owned) */
  uint8_t *stream_buf;   /* bytes of stream_cap images, grown on the first batch only */
  void *stream_status;   /* per-image decode status (stream_cap) */
  int *stream_idx;       /* the images actually served (stream_cap) */
  int stream_cap;
} Dataset;

/* Decode everything into d. 0, or -1 with an error naming the file (d is then empty). */
int dataset_load(Dataset *d, const DatasetOptions *opt, char *err, size_t errlen);
void dataset_free(Dataset *d);
const char *dataset_kind_name(DatasetKind kind); /* "auto", "folder", "cifar10-bin", "idx", "procedural" */

/* The size of the first readable image of a folder (in the walk's order), e.g. to evaluate images
 * at their own size. 0, or -1 + err. */
int dataset_folder_image_size(const char *path, int *w, int *h, char *err, size_t errlen);

/* Fill out (B, C, H, W) with floats p / 127.5 - 1 in [-1, 1] from images idx[0..B-1]; flip[b] != 0
 * mirrors image b horizontally (flip may be NULL). labels_out (B) may be NULL, and must be when
 * the dataset has no labels. Streamed folders: an unreadable file is an error naming it, or with
 * skip_bad the next readable image takes its place (counted in skipped). 0, or -1 + message. */
int dataset_get_batch(Dataset *d, const int *idx, const uint8_t *flip, int B, float *out, int *labels_out, char *err,
                      size_t errlen);

#endif
