/* cmd_eval.c - `diffuse eval stats|fid|nll`: Inception features, pytorch-fid statistics, FID and IS;
 * bits/dim from the variational bound or the probability-flow ODE (eval/nll.h).
 *
 * Images come from a folder / CIFAR-10 binaries / IDX files (through the dataset loader, fitted
 * to --resolution) or are generated from a checkpoint with any sampler and fed to Inception as
 * they are made (quantised to uint8 exactly as a PNG would be), so FID on 50k samples needs no
 * PNGs on disk. Statistics stream: mean and covariance accumulate in double, the logits for the
 * Inception Score (without the fc bias, as the original implementation) are kept per image.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "backend/comm.h"
#include "commands.h"
#include "precision.h"
#include "core/clock.h"
#include "core/error.h"
#include "diffusion/unet_denoiser.h"
#include "core/rng.h"
#include "eval/fid.h"
#include "eval/kid.h"
#include "eval/precision_recall.h"
#include "eval/nll.h"
#include "heldout_inputs.h"
#include "io/dataset.h"
#include "io/file_read.h"
#include "io/image.h"
#include "io/npz.h"
#include "nn/checkpoint.h"
#include "nn/inception.h"
#include "run_config_source.h"
#include "samplers/rk45.h"
#include "sampler_flags.h"

#define FEATURE_DIM INCEPTION_POOL3_DIM
#define SPATIAL_DIM INCEPTION_SPATIAL_DIM
#define IS_CLASSES INCEPTION_NUM_CLASSES
#define VLB_STREAM_BASE 0x5A3F000000000000ull     /* x_t noise of image k */
#define DEQUANT_STREAM_BASE 0x5A40000000000000ull /* uniform dequantisation of image k */
#define PROBE_STREAM_BASE 0x5A41000000000000ull   /* Hutchinson probe of image k */

/* Inception features of a stream of uint8 image batches: the pool3 and sFID statistics, the Inception
 * Score's logits and every image's pool3 features (for KID and precision/recall), in one pass. */
typedef struct {
  Inception net;
  Graph graph;
  FeatureStats stats, spatial_stats;
  float *pool3, *spatial; /* one batch: (batch, 2048), (batch, 2023) */
  float *features;        /* (capacity, 2048): every image's pool3 */
  float *logits;          /* (capacity, 1008) logits without bias */
  float *fc_weight;       /* (1008, 2048), on the host for the Inception-score logits */
  /* under mpirun: this rank computes batches b with b % ranks == rank and keeps their pool3 and
   * spatial features here (per batch: B pool3 rows, then B spatial rows); extractor_gather replays
   * every batch at rank 0 in order, so the statistics are one process's */
  float *mine;
  size_t mine_floats, mine_cap;
  long n, capacity;
  bool tty;
  double t0;
} Extractor;

/* Buffers for `capacity` images, e->net already loaded. */
static void extractor_init(Extractor *e, int batch, long capacity) {
  graph_init(&e->graph, e->net.params.backend, 64u << 20);
  e->fc_weight = xmalloc((size_t)IS_CLASSES * FEATURE_DIM * sizeof(float));
  inception_read_fc(&e->net, e->fc_weight, NULL);
  feature_stats_init(&e->stats, FEATURE_DIM);
  feature_stats_init(&e->spatial_stats, SPATIAL_DIM);
  e->pool3 = xmalloc((size_t)batch * FEATURE_DIM * sizeof(float));
  e->spatial = xmalloc((size_t)batch * SPATIAL_DIM * sizeof(float));
  e->capacity = capacity;
  e->features = xmalloc((size_t)capacity * FEATURE_DIM * sizeof(float));
  e->logits = xmalloc((size_t)capacity * IS_CLASSES * sizeof(float));
  e->tty = isatty(STDERR_FILENO);
  e->t0 = now_seconds();
}

static void extractor_free(Extractor *e) {
  inception_free(&e->net); /* safe on a zeroed or failed load */
  if (!e->pool3) return;     /* buffers never allocated */
  graph_free(&e->graph);
  feature_stats_free(&e->stats);
  feature_stats_free(&e->spatial_stats);
  free(e->pool3), free(e->spatial), free(e->features), free(e->logits), free(e->fc_weight), free(e->mine);
}

/* Whether this rank computes batch `index` (all of them in a single process). */
static bool extractor_owns(long index) { return index % comm_size() == comm_rank(); }

/* Statistics, features and Inception-score logits of B images (pool3 and spatial features, host). */
static void extractor_account(Extractor *e, const float *pool3, const float *spatial, int B) {
  CHECK(e->n + B <= e->capacity);
  feature_stats_add(&e->stats, pool3, B);
  feature_stats_add(&e->spatial_stats, spatial, B);
  memcpy(e->features + (size_t)e->n * FEATURE_DIM, pool3, (size_t)B * FEATURE_DIM * sizeof(float));
  inception_score_logits(e->logits + (size_t)e->n * IS_CLASSES, pool3, B, e->fc_weight);
  e->n += B;
}

static void extractor_add(Extractor *e, const uint8_t *images, int B, int H, int W, long done, long total) {
  inception_forward(&e->net, &e->graph, images, B, H, W, e->pool3, NULL, e->spatial);
  if (comm_size() == 1) {
    extractor_account(e, e->pool3, e->spatial, B);
  } else {
    const size_t kp = (size_t)B * FEATURE_DIM, ks = (size_t)B * SPATIAL_DIM;
    if (e->mine_floats + kp + ks > e->mine_cap) {
      e->mine_cap = 2 * (e->mine_floats + kp + ks);
      e->mine = xrealloc(e->mine, e->mine_cap * sizeof(float));
    }
    memcpy(e->mine + e->mine_floats, e->pool3, kp * sizeof(float));
    memcpy(e->mine + e->mine_floats + kp, e->spatial, ks * sizeof(float));
    e->mine_floats += kp + ks;
  }
  if (e->tty && comm_is_root())
    fprintf(stderr, "\rdiffuse eval: %ld/%ld images, %.0fs   ", done + B, total, now_seconds() - e->t0);
}

/* Under mpirun: every batch's features to rank 0, accounted for in batch order (n images in batches of
 * `batch`). */
static void extractor_gather(Extractor *e, long n, int batch) {
  if (comm_size() == 1) return;
  size_t at = 0; /* read position in this rank's own features */
  float *buf = comm_is_root() ? xmalloc((size_t)batch * (FEATURE_DIM + SPATIAL_DIM) * sizeof(float)) : NULL;
  for (long first = 0, i = 0; first < n; first += batch, i++) {
    const int B = n - first < batch ? (int)(n - first) : batch, owner = (int)(i % comm_size());
    const size_t k = (size_t)B * (FEATURE_DIM + SPATIAL_DIM);
    if (comm_is_root()) {
      if (owner == 0) {
        memcpy(buf, e->mine + at, k * sizeof(float));
        at += k;
      } else {
        comm_recv(buf, k * sizeof(float), owner);
      }
      extractor_account(e, buf, buf + (size_t)B * FEATURE_DIM, B);
    } else if (owner == comm_rank()) {
      comm_send(e->mine + at, k * sizeof(float), 0);
      at += k;
    }
  }
  free(buf);
}

/* Features of every image of a loaded dataset (folder, CIFAR-10 binaries, IDX). */
static int extract_dataset(Extractor *e, Dataset *d, int batch, char *err, size_t errlen) {
  const size_t img = (size_t)d->C * d->H * d->W;
  uint8_t *buf = xmalloc((size_t)batch * img);
  int *idx = xmalloc((size_t)batch * sizeof(int));
  float *f = xmalloc((size_t)batch * img * sizeof(float));
  int rc = 0;
  for (long first = 0, index = 0; first < d->n && rc == 0; first += batch, index++) {
    if (!extractor_owns(index)) continue;
    const int B = d->n - first < batch ? (int)(d->n - first) : batch;
    for (int b = 0; b < B; b++) idx[b] = (int)(first + b);
    rc = dataset_get_batch(d, idx, NULL, B, f, NULL, err, errlen);
    for (size_t i = 0; i < (size_t)B * img && rc == 0; i++) buf[i] = image_to_u8(f[i]); /* p / 127.5 - 1 round-trips */
    if (rc == 0) extractor_add(e, buf, B, d->H, d->W, first, d->n);
  }
  free(buf), free(idx), free(f);
  return rc;
}

/* Features of n images generated from a checkpoint. */
static int extract_generated(Extractor *e, const Backend *backend, const char *ckpt, const char *config,
                             const SamplerFlags *flags, long n, int batch, int seed, long *nfe, char *err, size_t errlen) {
  SamplerOptions so;
  if (sampler_options_from_flags(flags, &so)) return errorf(err, errlen, "bad sampler flags (see above)");
  RunConfig run;
  if (resolve_run_config(config, ckpt, &run, err, errlen) || require_denoiser(&run, ckpt, err, errlen)) return -1;
  Diffusion diffusion;
  if (diffusion_init(&diffusion, &run.diffusion, err, errlen) || sampler_options_for_model(flags, &so, &diffusion, err, errlen)) {
    diffusion_free(&diffusion);
    return -1;
  }
  const UNetConfig *mc = &run.model;
  double guidance;
  if (guidance_for_model(flags, mc, &guidance, err, errlen)) {
    diffusion_free(&diffusion);
    return -1;
  }
  UNet model;
  unet_init_inference(&model, mc, backend);
  const CheckpointLoadOptions lo = {.use_ema = true};
  int rc = checkpoint_load(ckpt, &model, &lo, NULL, err, errlen);
  const int R = mc->resolution, C = mc->in_channels;
  const size_t per = (size_t)C * R * R;
  float *x = xmalloc((size_t)batch * per * sizeof(float));
  float *work = xmalloc(sampler_work_floats(&so, (size_t)batch * per) * sizeof(float));
  uint8_t *rgb = xmalloc((size_t)batch * 3 * R * R);
  int *labels = mc->num_classes > 0 ? xmalloc((size_t)batch * sizeof(int)) : NULL;
  void *guided_scratch = guidance != 0.0 ? xmalloc(classifier_free_scratch_bytes(batch, per)) : NULL;
  Graph g;
  graph_init(&g, backend, 16u << 20);
  UNetDenoiser ctx = {.diffusion = &diffusion, .model = &model, .graph = &g, .labels = labels, .guidance = guidance,
                      .guided_scratch = guided_scratch};
  Denoiser den = unet_denoiser(&ctx);
  for (long first = 0, index = 0; first < n && rc == 0; first += batch, index++) {
    if (!extractor_owns(index)) continue;
    const int B = n - first < batch ? (int)(n - first) : batch;
    sample_prior_noise(x, B, per, first, seed, &diffusion);
    for (int b = 0; b < B && labels; b++) labels[b] = (int)((first + b) % mc->num_classes);
    NoiseSource noise = sample_step_noise(seed, first);
    *nfe = sampler_run(&so, &diffusion, &den, &noise, x, B, per, work);
    for (int b = 0; b < B; b++) /* grayscale models: the channel replicated, as a PNG viewer would */
      for (int c = 0; c < 3; c++)
        for (int p = 0; p < R * R; p++)
          rgb[((size_t)b * 3 + c) * R * R + p] = image_to_u8(x[(size_t)b * per + (size_t)(C == 1 ? 0 : c) * R * R + p]);
    extractor_add(e, rgb, B, R, R, first, n);
  }
  free(x), free(work), free(rgb), free(labels), free(guided_scratch);
  graph_free(&g);
  unet_free(&model);
  diffusion_free(&diffusion);
  return rc;
}

typedef struct {
  const char *images, *data, *split, *ckpt, *config, *inception, *ref, *out, *device, *precision;
  const Backend *backend, *model_backend; /* the Inception's; the sampled model's (--precision) */
  int resolution, batch, seed, splits;
  long n;
  bool allow_few, no_features;
  SamplerFlags sampler;
} EvalArgs;

static int parse_eval_args(int argc, char **argv, EvalArgs *a, const char *command) {
  int n = 0;
  memset(a, 0, sizeof *a);
  a->split = "train", a->resolution = ARG_UNSET, a->batch = 50, a->splits = 10, a->device = "cpu";
  a->inception = getenv("DIFFUSE_INCEPTION");
  sampler_flags_default(&a->sampler);
#define EVAL_COMMON_SPECS                                                                   \
  {"--images", ARG_STRING, &a->images}, {"--data", ARG_STRING, &a->data},                   \
      {"--split", ARG_STRING, &a->split}, {"--ckpt", ARG_STRING, &a->ckpt},                 \
      {"--config", ARG_STRING, &a->config}, {"--inception", ARG_STRING, &a->inception},     \
      {"--ref", ARG_STRING, &a->ref}, {"--out", ARG_STRING, &a->out},                       \
      {"--resolution", ARG_INT, &a->resolution}, {"--batch", ARG_INT, &a->batch},           \
      {"--seed", ARG_INT, &a->seed}, {"--splits", ARG_INT, &a->splits}, {"--n", ARG_INT, &n}, \
      {"--allow-few-images", ARG_FLAG, &a->allow_few}, {"--device", ARG_STRING, &a->device}
  const ArgSpec stats_specs[] = {EVAL_COMMON_SPECS, {"--no-features", ARG_FLAG, &a->no_features}};
  const ArgSpec fid_specs[] = {EVAL_COMMON_SPECS, {"--precision", ARG_STRING, &a->precision},
                               SAMPLER_FLAG_SPECS(a->sampler)};
#undef EVAL_COMMON_SPECS
  const bool fid = !strcmp(command, "eval fid");
  const int parse_rc = fid ? args_parse(argc, argv, fid_specs, (int)(sizeof fid_specs / sizeof fid_specs[0]), command)
                           : args_parse(argc, argv, stats_specs, (int)(sizeof stats_specs / sizeof stats_specs[0]), command);
  if (parse_rc) return parse_rc;
  a->n = n;
  const int sources = !!a->images + !!a->data + (!strcmp(command, "eval fid") && a->ckpt);
  if (sources != 1) {
    fprintf(stderr, "diffuse %s: give exactly one image source: --images DIR, --data PATH%s\n", command,
            strcmp(command, "eval fid") ? "" : " or --ckpt F");
    return 2;
  }
  if (a->batch < 1 || (a->resolution != ARG_UNSET && a->resolution < 8) || a->n < 0 || a->splits < 1 || a->seed < 0 || (a->ckpt && a->n < 1)) {
    fprintf(stderr, "diffuse %s: --batch >= 1, --resolution >= 8, --splits >= 1, --seed >= 0 and (with --ckpt) --n >= 1\n",
            command);
    return 1;
  }
  if (strcmp(a->split, "train") && strcmp(a->split, "test")) {
    fprintf(stderr, "diffuse %s: --split must be train or test\n", command);
    return 1;
  }
  if (fid && !a->ckpt && (sampler_flags_given(&a->sampler) || a->precision)) {
    fprintf(stderr, "diffuse %s: sampler flags and --precision apply to images generated with --ckpt\n", command);
    return 2;
  }
  SamplerOptions checked; /* refuse bad sampler flags before any work */
  const int rc = fid && a->ckpt ? sampler_options_from_flags(&a->sampler, &checked) : 0;
  if (rc) return rc;
  char err[512];
  if (!(a->backend = backend_open(a->device, err, sizeof err))) {
    fprintf(stderr, "diffuse %s: --device: %s\n", command, err);
    return 1;
  }
  if (!(a->model_backend = precision_backend(a->backend, a->precision, command, err, sizeof err))) {
    fprintf(stderr, "diffuse %s: %s\n", command, err);
    return 1;
  }
  return 0;
}

/* Gaussian statistics of pool3 (FID) and of the spatial features (sFID). */
typedef struct {
  double *mu, *sigma, *mu_s, *sigma_s;
} FeatureGaussians;

static void gaussians_init(FeatureGaussians *g) {
  g->mu = xmalloc(FEATURE_DIM * sizeof(double));
  g->sigma = xmalloc((size_t)FEATURE_DIM * FEATURE_DIM * sizeof(double));
  g->mu_s = xmalloc(SPATIAL_DIM * sizeof(double));
  g->sigma_s = xmalloc((size_t)SPATIAL_DIM * SPATIAL_DIM * sizeof(double));
}

static void gaussians_free(FeatureGaussians *g) { free(g->mu), free(g->sigma), free(g->mu_s), free(g->sigma_s); }

/* Run the extractor over the chosen source; fills *out. e is initialised (free it) even on error. */
static int compute_features(const EvalArgs *a, Extractor *e, FeatureGaussians *out, long *nfe, double *secs,
                            char *err, size_t errlen) {
  memset(e, 0, sizeof *e);
  if (!a->inception)
    return errorf(err, errlen,
                  "no Inception weights: give --inception FILE or set DIFFUSE_INCEPTION. Download pytorch-fid's "
                  "pt_inception-2015-12-05-6726825d.pth (https://github.com/mseitzer/pytorch-fid/releases/download/"
                  "fid_weights/pt_inception-2015-12-05-6726825d.pth) and convert it with "
                  "/usr/bin/python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception.safetensors");
  if (inception_load(&e->net, a->backend, a->inception, err, errlen)) return -1; /* before spending time on data */
  Dataset d = {0};
  if (!a->ckpt) {
    int R = a->resolution;
    if (R == ARG_UNSET && a->images) { /* a folder at its images' own size, as pytorch-fid (Inception resizes to 299) */
      int w, h;
      if (dataset_folder_image_size(a->images, &w, &h, err, errlen)) return -1;
      R = w > h ? w : h;
      if (R < 8) R = 8;
    } else if (R == ARG_UNSET) {
      R = 32; /* CIFAR-10's size; IDX images are padded 28 -> 32 */
    }
    const DatasetOptions o = {.kind = DATASET_AUTO, .path = a->images ? a->images : a->data, .resolution = R,
                              .channels = 3, .train_split = !strcmp(a->split, "train"),
                              .max_images = a->n > 0 ? (int)a->n : 0, .cache_limit_bytes = (size_t)4096 << 20};
    if (dataset_load(&d, &o, err, errlen)) return -1;
  }
  const long capacity = a->ckpt ? a->n : d.n;
  const double kept_bytes = (double)capacity * (IS_CLASSES + FEATURE_DIM) * sizeof(float);
  if (memory_total_bytes() && kept_bytes > (double)memory_total_bytes()) {
    char need[32], have[32];
    dataset_free(&d);
    return errorf(err, errlen, "--n %ld: the Inception Score, KID and precision/recall keep %d logits and %d features per "
                  "image, %s, more than this machine's %s: lower --n", capacity, IS_CLASSES, FEATURE_DIM,
                  format_bytes(need, sizeof need, kept_bytes), format_bytes(have, sizeof have, (double)memory_total_bytes()));
  }
  const double t0 = now_seconds();
  extractor_init(e, a->batch, capacity);
  int rc = a->ckpt ? extract_generated(e, a->model_backend, a->ckpt, a->config, &a->sampler, a->n, a->batch, a->seed, nfe, err, errlen)
                 : extract_dataset(e, &d, a->batch, err, errlen);
  const long n_images = a->ckpt ? a->n : d.n;
  dataset_free(&d);
  if (comm_any(rc != 0)) { /* the failing ranks' callers print err; the others stay silent (err empty) */
    if (rc == 0 && errlen) err[0] = '\0';
    return -1;
  }
  extractor_gather(e, n_images, a->batch);
  if (!comm_is_root()) return 0; /* rank 0 alone finishes, prints and writes */
  *secs = now_seconds() - t0;
  if (e->tty) fprintf(stderr, "\n");
  if (rc == 0 && e->n < FEATURE_DIM && !a->allow_few)
    rc = errorf(err, errlen,
                "%ld images are too few for a stable %d x %d covariance (need >= %d; published FIDs use 50000). "
                "Pass --allow-few-images to compute it anyway",
                e->n, FEATURE_DIM, FEATURE_DIM, FEATURE_DIM);
  if (rc == 0) rc = feature_stats_finish(&e->stats, out->mu, out->sigma, err, errlen);
  if (rc == 0) rc = feature_stats_finish(&e->spatial_stats, out->mu_s, out->sigma_s, err, errlen);
  return rc;
}

/* A reference for eval fid: pool3 statistics (required), the spatial ones (mu_s, sigma_s: files from
 * `diffuse eval stats` or guided-diffusion's reference batches) and the pool3 features (diffuse's
 * files unless made with --no-features), each NULL when the file lacks it. */
typedef struct {
  FeatureGaussians g;
  float *features;
  long n_features;
} Reference;

static void reference_free(Reference *r) {
  gaussians_free(&r->g);
  free(r->features);
}

/* Array `name` of the archive buf, of the given shape (shape[0] = -1: any rows). 0, 1 if absent, -1 + message. */
static int read_array(const uint8_t *buf, size_t size, const char *path, const char *name, int ndim, long rows, long cols,
                      NpzArray *out, char *err, size_t errlen) {
  char why[512];
  const int rc = npz_read_buffer(buf, size, name, out, why, sizeof why);
  if (rc) return rc > 0 ? 1 : errorf(err, errlen, "%s: %s", path, why);
  const bool ok = out->ndim == ndim && (rows < 0 ? out->shape[0] >= 1 : out->shape[0] == rows) &&
                  (ndim == 1 || out->shape[1] == cols);
  if (!ok) {
    npz_array_free(out);
    char want[64];
    if (rows < 0) snprintf(want, sizeof want, "(N, %ld)", cols);
    else if (ndim == 1) snprintf(want, sizeof want, "(%ld,)", cols);
    else snprintf(want, sizeof want, "(%ld, %ld)", rows, cols);
    return errorf(err, errlen, "%s: %s must have shape %s (Inception %s)", path, name, want,
                  cols == FEATURE_DIM ? "pool3 features" : "spatial (sFID) features");
  }
  return 0;
}

static int read_reference(const char *path, Reference *r, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  uint8_t *buf;
  size_t size;
  if (file_read_all(path, 0, &buf, &size, err, errlen)) return -1;
  NpzArray mu, sigma, mu_s, sigma_s, f;
  int rc = read_array(buf, size, path, "mu", 1, FEATURE_DIM, FEATURE_DIM, &mu, err, errlen);
  if (rc == 1) rc = errorf(err, errlen, "%s: no array 'mu' (pool3 statistics: make the file with diffuse eval stats)", path);
  if (rc == 0) {
    r->g.mu = mu.data;
    rc = read_array(buf, size, path, "sigma", 2, FEATURE_DIM, FEATURE_DIM, &sigma, err, errlen);
    if (rc == 1) rc = errorf(err, errlen, "%s: no array 'sigma' (pool3 statistics: make the file with diffuse eval stats)", path);
  }
  if (rc == 0) {
    r->g.sigma = sigma.data;
    rc = read_array(buf, size, path, "mu_s", 1, SPATIAL_DIM, SPATIAL_DIM, &mu_s, err, errlen);
  }
  if (rc == 0) {
    r->g.mu_s = mu_s.data;
    rc = read_array(buf, size, path, "sigma_s", 2, SPATIAL_DIM, SPATIAL_DIM, &sigma_s, err, errlen);
    if (rc == 1) rc = errorf(err, errlen, "%s: mu_s without sigma_s", path);
    if (rc == 0) r->g.sigma_s = sigma_s.data;
  }
  if (rc == 1) rc = 0; /* no spatial statistics */
  if (rc == 0) rc = read_array(buf, size, path, "features", 2, -1, FEATURE_DIM, &f, err, errlen);
  if (rc == 0) {
    r->n_features = (long)f.shape[0];
    r->features = xmalloc(f.numel * sizeof(float));
    for (size_t i = 0; i < f.numel; i++) r->features[i] = (float)f.data[i];
    npz_array_free(&f);
  }
  free(buf);
  if (rc == 1) rc = 0; /* no features */
  if (rc) reference_free(r);
  return rc;
}

static int eval_stats(int argc, char **argv) {
  EvalArgs a;
  int rc = parse_eval_args(argc, argv, &a, "eval stats");
  if (rc) return rc;
  if (!a.out) {
    fprintf(stderr, "diffuse eval stats: --out stats.npz is required\n");
    return 2;
  }
  char err[1024];
  FeatureGaussians g;
  gaussians_init(&g);
  Extractor e;
  long nfe = 0;
  double secs = 0;
  rc = compute_features(&a, &e, &g, &nfe, &secs, err, sizeof err);
  if (!comm_is_root()) { /* under mpirun rank 0 writes the statistics */
    if (rc && err[0]) fprintf(stderr, "diffuse eval stats: rank %d: %s\n", comm_rank(), err);
    extractor_free(&e);
    gaussians_free(&g);
    return rc ? 1 : 0;
  }
  const NpzEntry entries[5] = {{"mu", 1, {FEATURE_DIM}, g.mu, NULL},
                               {"sigma", 2, {FEATURE_DIM, FEATURE_DIM}, g.sigma, NULL},
                               {"mu_s", 1, {SPATIAL_DIM}, g.mu_s, NULL},
                               {"sigma_s", 2, {SPATIAL_DIM, SPATIAL_DIM}, g.sigma_s, NULL},
                               {"features", 2, {e.n, FEATURE_DIM}, NULL, e.features}};
  if (rc == 0) rc = npz_write(a.out, entries, a.no_features ? 4 : 5, err, sizeof err);
  if (rc && err[0]) fprintf(stderr, "diffuse eval stats: %s\n", err);
  else if (rc) fprintf(stderr, "diffuse eval stats: another rank failed (see its message)\n");
  else
    printf("statistics of %ld images written to %s (pool3 and spatial statistics%s; %.1fs, %.1f images/s)\n", e.n, a.out,
           a.no_features ? "" : ", pool3 features", secs, e.n / secs);
  extractor_free(&e);
  gaussians_free(&g);
  return rc ? 1 : 0;
}

/* "NAME value", a round-off negative as 0 with the raw value (tr((S1 S2)^1/2) can exceed the traces). */
static void print_distance(const char *name, double d) {
  if (d < 0) printf("%s 0.0000 (round-off: %.3g)", name, d);
  else printf("%s %.4f", name, d);
}

static int eval_fid(int argc, char **argv) {
  EvalArgs a;
  int rc = parse_eval_args(argc, argv, &a, "eval fid");
  if (rc) return rc;
  if (!a.ref) {
    fprintf(stderr, "diffuse eval fid: --ref stats.npz is required (make one with diffuse eval stats)\n");
    return 2;
  }
  char err[1024];
  Reference ref;
  if (read_reference(a.ref, &ref, err, sizeof err)) {
    fprintf(stderr, "diffuse eval fid: --ref %s\n", err);
    return 1;
  }
  FeatureGaussians g;
  gaussians_init(&g);
  Extractor e;
  long nfe = 0;
  double secs = 0, fid = 0, sfid = 0, is_mean = 0, is_std = 0;
  rc = compute_features(&a, &e, &g, &nfe, &secs, err, sizeof err);
  if (!comm_is_root()) { /* under mpirun rank 0 computes and prints the scores */
    if (rc && err[0]) fprintf(stderr, "diffuse eval fid: rank %d: %s\n", comm_rank(), err);
    extractor_free(&e);
    gaussians_free(&g), reference_free(&ref);
    return rc ? 1 : 0;
  }
  if (rc == 0) rc = frechet_distance(g.mu, g.sigma, ref.g.mu, ref.g.sigma, FEATURE_DIM, &fid, err, sizeof err);
  if (rc == 0 && ref.g.mu_s) rc = frechet_distance(g.mu_s, g.sigma_s, ref.g.mu_s, ref.g.sigma_s, SPATIAL_DIM, &sfid, err, sizeof err);
  if (rc == 0) {
    const int splits = e.n < a.splits ? (int)e.n : a.splits; /* every split needs an image */
    if (splits < a.splits)
      fprintf(stderr, "diffuse eval fid: note: the Inception Score uses %d splits, one per image (fewer images than "
              "--splits %d)\n", splits, a.splits);
    if (!ref.g.mu_s)
      fprintf(stderr, "diffuse eval fid: note: %s has no spatial statistics (mu_s, sigma_s; a pytorch-fid file?): no sFID. "
              "Make the reference with diffuse eval stats\n", a.ref);
    inception_score(e.logits, e.n, IS_CLASSES, splits, &is_mean, &is_std);
    print_distance("FID", fid);
    if (ref.g.mu_s) print_distance("  sFID", sfid);
    printf("  IS %.4f +- %.4f (%d splits)  (%ld images%s", is_mean, is_std, splits, e.n, a.ckpt ? ", " : "");
    if (a.ckpt) printf("sampler %s, NFE %ld", a.sampler.sampler, nfe);
    printf(", %.1fs, %.2f images/s)\n", secs, e.n / secs);
    if (!ref.features) {
      fprintf(stderr, "diffuse eval fid: note: %s has no pool3 features (made with --no-features, or not by diffuse): "
              "no KID, precision or recall\n", a.ref);
    } else {
      long m = KID_SUBSET_SIZE;
      if (e.n < m) m = e.n;
      if (ref.n_features < m) m = ref.n_features;
      if (m < KID_SUBSET_SIZE && m >= 2)
        fprintf(stderr, "diffuse eval fid: note: KID subsets of %ld images (fewer than %d here; %ld generated, %ld reference)\n",
                m, KID_SUBSET_SIZE, e.n, ref.n_features);
      if (m >= 2) {
        double kid, kid_std;
        kernel_inception_distance(e.features, e.n, ref.features, ref.n_features, FEATURE_DIM, KID_SUBSETS, (int)m,
                                  (uint64_t)a.seed, &kid, &kid_std);
        printf("KID %.6f +- %.6f (%d subsets of %ld)", kid, kid_std, KID_SUBSETS, m);
      }
      if (e.n > PR_NEIGHBOURS && ref.n_features > PR_NEIGHBOURS) {
        double precision, recall;
        precision_recall(ref.features, ref.n_features, e.features, e.n, FEATURE_DIM, PR_NEIGHBOURS, &precision, &recall);
        printf("%sprecision %.4f  recall %.4f (k = %d, %ld reference images)", m >= 2 ? "  " : "", precision, recall,
               PR_NEIGHBOURS, ref.n_features);
      } else {
        fprintf(stderr, "diffuse eval fid: note: precision and recall need more than %d images on each side\n", PR_NEIGHBOURS);
      }
      printf("\n");
    }
  } else {
    fprintf(stderr, "diffuse eval fid: %s\n", err[0] ? err : "another rank failed (see its message)");
  }
  extractor_free(&e);
  gaussians_free(&g), reference_free(&ref);
  return rc ? 1 : 0;
}

/* diffuse eval nll: bits/dim of dataset images under a checkpoint. */
static int eval_nll(int argc, char **argv) {
  const char *ckpt = NULL, *config = NULL, *data = NULL, *split = "test", *method = "vlb", *variance = NULL;
  const char *device = "cpu";
  int n = 1000, batch = 16, seed = 0, terms = 0;
  double rtol = 1e-5, atol = 1e-5;
  const ArgSpec specs[] = {
      {"--ckpt", ARG_STRING, &ckpt},     {"--config", ARG_STRING, &config}, {"--data", ARG_STRING, &data},
      {"--split", ARG_STRING, &split},   {"--method", ARG_STRING, &method}, {"--variance", ARG_STRING, &variance},
      {"--n", ARG_INT, &n},              {"--batch", ARG_INT, &batch},      {"--seed", ARG_INT, &seed},
      {"--terms", ARG_INT, &terms},      {"--rtol", ARG_DOUBLE, &rtol},     {"--atol", ARG_DOUBLE, &atol},
      {"--device", ARG_STRING, &device},
  };
  const int parse_rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "eval nll");
  if (parse_rc) return parse_rc;
  const bool vlb = !strcmp(method, "vlb");
  if (!ckpt || !data) {
    fprintf(stderr, "diffuse eval nll: --ckpt and --data are required (see diffuse eval --help)\n");
    return 2;
  }
  char err[1024] = "";
  if (n < 1 || batch < 1 || seed < 0 || terms < 0)
    errorf(err, sizeof err, "--n and --batch must be >= 1, --seed and --terms >= 0");
  else if (!vlb && strcmp(method, "ode")) errorf(err, sizeof err, "--method must be vlb or ode");
  else if (variance && !vlb) errorf(err, sizeof err, "--variance is for --method vlb (the ODE has no variance)");
  else if (variance && strcmp(variance, "fixed_small") && strcmp(variance, "fixed_large") && strcmp(variance, "learned"))
    errorf(err, sizeof err, "--variance must be fixed_small, fixed_large or learned");
  else if (strcmp(split, "train") && strcmp(split, "test")) errorf(err, sizeof err, "--split must be train or test");
  else if (!vlb) rk45_check_tolerances(rtol, atol, err, sizeof err);
  const Backend *backend = err[0] ? NULL : backend_open(device, err, sizeof err);
  if (!backend) {
    fprintf(stderr, "diffuse eval nll: %s\n", err);
    return 1;
  }
  RunConfig run;
  if (resolve_run_config(config, ckpt, &run, err, sizeof err) || require_denoiser(&run, ckpt, err, sizeof err)) {
    fprintf(stderr, "diffuse eval nll: %s\n", err);
    return 1;
  }
  Diffusion diffusion;
  int rc = diffusion_init(&diffusion, &run.diffusion, err, sizeof err);
  if (rc == 0 && vlb && diffusion.kind != DIFFUSION_DDPM)
    rc = errorf(err, sizeof err, "the variational bound needs a discrete DDPM model (this one is %s); use --method ode",
                run.diffusion.type);
  /* a model that learned its variance is measured with it unless told otherwise */
  if (!variance) variance = run.diffusion.learn_sigma ? "learned" : "fixed_small";
  const AncestralVariance var_kind = !strcmp(variance, "learned")       ? VARIANCE_LEARNED
                                     : !strcmp(variance, "fixed_large") ? VARIANCE_FIXED_LARGE
                                                                        : VARIANCE_FIXED_SMALL;
  if (rc == 0 && var_kind == VARIANCE_LEARNED && !run.diffusion.learn_sigma)
    rc = errorf(err, sizeof err, "--variance learned needs a model trained with diffusion.learn_sigma (this one "
                                 "predicts no variance): use fixed_small or fixed_large");
  const UNetConfig *mc = &run.model;
  if (rc == 0 && mc->num_classes > 0) rc = errorf(err, sizeof err, "class-conditional models are not supported by eval nll yet");
  UNet model;
  unet_init_inference(&model, mc, backend);
  Dataset d = {0};
  if (rc == 0) rc = heldout_inputs_load(ckpt, &model, data, split, n, &d, err, sizeof err);
  if (rc) {
    fprintf(stderr, "diffuse eval nll: %s\n", err);
    dataset_free(&d);
    unet_free(&model);
    diffusion_free(&diffusion);
    return 1;
  }
  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  float *x = xmalloc((size_t)batch * per * sizeof(float));
  float *work = xmalloc((vlb ? nll_vlb_work_floats(batch, per) : nll_ode_work_floats(batch, per)) * sizeof(float));
  double *bpd = xmalloc((size_t)batch * sizeof(double));
  int *idx = xmalloc((size_t)batch * sizeof(int));
  Graph g;
  graph_init(&g, backend, 16u << 20);
  UNetDenoiser ctx = {.diffusion = &diffusion, .model = &model, .graph = &g};
  Denoiser den = unet_denoiser(&ctx);
  double sum = 0, sum2 = 0;
  long nfe = 0;
  const double t0 = now_seconds();
  const bool tty = isatty(STDERR_FILENO);
  for (int first = 0; first < d.n && rc == 0; first += batch) {
    const int B = d.n - first < batch ? d.n - first : batch;
    for (int b = 0; b < B; b++) idx[b] = first + b;
    rc = dataset_get_batch(&d, idx, NULL, B, x, NULL, err, sizeof err); /* p / 127.5 - 1 */
    if (rc) break;
    if (vlb) {
      NoiseSource noise = noise_source_rng((uint64_t)seed, VLB_STREAM_BASE + (uint64_t)first);
      const long before = den.nfe;
      nll_vlb(&diffusion, &den, &noise, x, B, per, var_kind, terms, bpd, NULL, work);
      nfe = den.nfe - before;
    } else {
      nll_dequantize(x, B, per, (uint64_t)seed, DEQUANT_STREAM_BASE + (uint64_t)first);
      nfe = nll_ode(&diffusion, &den, x, B, per, rtol, atol, (uint64_t)seed, PROBE_STREAM_BASE + (uint64_t)first, bpd,
                    NULL, NULL, work);
      for (int b = 0; b < B; b++) bpd[b] = nll_ode_bits_per_dim(bpd[b], per);
    }
    for (int b = 0; b < B; b++) sum += bpd[b], sum2 += bpd[b] * bpd[b];
    if (tty) fprintf(stderr, "\rdiffuse eval nll: %d/%d images, %.4f bits/dim so far   ", first + B, d.n, sum / (first + B));
  }
  if (tty) fprintf(stderr, "\n");
  const double secs = now_seconds() - t0, mean = sum / d.n;
  const double se = d.n > 1 ? sqrt(fmax(sum2 / d.n - mean * mean, 0.0) / (d.n - 1)) : 0.0;
  if (rc) {
    fprintf(stderr, "diffuse eval nll: %s\n", err);
  } else {
    printf("NLL %.4f +- %.4f bits/dim (%s%s%s%s, %d %s images, NFE %ld per batch, %.1fs)\n", mean, se,
           vlb ? "variational bound" : "probability-flow ODE", vlb ? ", variance " : "", vlb ? variance : "",
           vlb && terms ? ", stratified terms" : "", d.n, split, nfe, secs);
    if (d.padded_from)
      printf("note: the %dx%d images are zero-padded to %dx%d, and the padding pixels count in bits/dim\n", d.padded_from,
             d.padded_from, mc->resolution, mc->resolution);
  }
  free(x), free(work), free(bpd), free(idx);
  graph_free(&g);
  dataset_free(&d);
  unet_free(&model);
  diffusion_free(&diffusion);
  return rc ? 1 : 0;
}

int cmd_eval(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "diffuse eval: which evaluation? stats, fid, nll, loss or accuracy (see diffuse eval --help)\n");
    return 2;
  }
  if (!strcmp(argv[1], "stats")) return eval_stats(argc - 1, argv + 1);
  if (!strcmp(argv[1], "fid")) return eval_fid(argc - 1, argv + 1);
  if (!strcmp(argv[1], "nll")) return eval_nll(argc - 1, argv + 1);
  if (!strcmp(argv[1], "loss")) return cmd_eval_loss(argc - 1, argv + 1);
  if (!strcmp(argv[1], "accuracy")) return cmd_eval_accuracy(argc - 1, argv + 1);
  fprintf(stderr, "diffuse eval: unknown evaluation '%s' (stats, fid, nll, loss, accuracy)\n", argv[1]);
  return 2;
}
