/* cmd_bench.c - `diffuse bench`: time the training step or the sampling forward of a config's U-Net,
 * or the FID Inception's feature extraction.
 *
 * train: the trainer's own optimizer step (trainer_step: the config's objective on procedural
 * images, backward, non-finite checks, gradient clipping, warmup, AdamW, EMA); sample: one grad-free
 * network evaluation (the unit every sampler repeats). Warm-up steps first (the arena grows to its high-water mark), then
 * --steps timed steps; prints one JSON line: median ms per step, images/s, achieved GFLOP/s
 * (forward FLOPs x3 for a training step: the backward costs about two forwards), peak RSS.
 * --profile adds a per-op table (graph.h's GraphProfile) on stderr for training steps.
 * inception: pool3 + logits of --batch random uint8 images at --resolution (bilinear to 299 as in
 * `eval fid`), with the weights of --inception FILE (any values: the speed does not depend on them;
 * scripts/bench_vs_pytorch.py passes the synthetic weights of tests/make_synthetic_inception).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "args.h"
#include "commands.h"
#include "precision.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/rng.h"
#include "diffusion/unet_denoiser.h"
#include "nn/checkpoint.h"
#include "nn/inception.h"
#include "run_config_source.h"
#include "train/trainer.h"

static int compare_doubles(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of n timings (sorts them; ms[0] is then the minimum). */
static double median_ms(double *ms, int n) {
  qsort(ms, (size_t)n, sizeof(double), compare_doubles);
  return n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
}

static int omp_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

static int by_total_time(const void *a, const void *b) {
  const GraphProfileEntry *x = a, *y = b;
  const double tx = x->forward_s + x->backward_s, ty = y->forward_s + y->backward_s;
  return (tx < ty) - (tx > ty);
}

/* Per-op table on stderr: ms per step forward / backward, share of the mean step, and for ops that
 * count FLOPs the rate forward and backward (taken as twice the forward's: input and weight
 * gradients), as direct-convolution equivalents for Winograd convolutions. */
static void print_profile(GraphProfile *p, int steps, double step_ms) {
  qsort(p->entries, (size_t)p->n, sizeof p->entries[0], by_total_time);
  fprintf(stderr, "%-22s %8s %10s %10s %7s %10s %10s\n", "op", "calls", "fwd ms", "bwd ms", "share", "fwd GF/s",
          "bwd GF/s");
  double covered = 0;
  for (int i = 0; i < p->n; i++) {
    const GraphProfileEntry *e = &p->entries[i];
    const double f = 1e3 * e->forward_s / steps, b = 1e3 * e->backward_s / steps;
    covered += f + b;
    fprintf(stderr, "%-22s %8ld %10.2f %10.2f %6.1f%%", e->name, e->calls / steps, f, b, 100 * (f + b) / step_ms);
    if (e->flops > 0) fprintf(stderr, " %10.1f %10.1f", e->flops / e->forward_s / 1e9, 2 * e->flops / e->backward_s / 1e9);
    fputc('\n', stderr);
  }
  fprintf(stderr, "%-22s %8s %10s %10.2f %6.1f%%\n", "(optimizer, EMA, rest)", "", "", step_ms - covered,
          100 * (step_ms - covered) / step_ms);
}

/* --mode gemm: sgemm on 2048 x 2048 matrices by the backend's GEMM (on the CPU diffuse's own kernel
 * or OpenBLAS's, see ops/gemm.h), the machine's reference rate. */
static int bench_gemm(const Backend *be, int steps, int warmup) {
  const int n = 2048;
  const size_t bytes = sizeof(float) * n * n;
  BackendMem *a = backend_alloc_or_exit(be, bytes, "bench gemm"), *b = backend_alloc_or_exit(be, bytes, "bench gemm");
  BackendMem *c = backend_alloc_or_exit(be, bytes, "bench gemm");
  be->ops->fill_uniform(be, a, (size_t)n * n, 1, 0, 0);
  be->ops->fill_uniform(be, b, (size_t)n * n, 1, 1, 0);
  double *ms = xmalloc((size_t)steps * sizeof(double));
  for (int s = 0; s < warmup + steps; s++) {
    const double t0 = now_seconds();
    be->ops->gemm(be, false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    if (s >= warmup) ms[s - warmup] = 1e3 * (now_seconds() - t0);
  }
  const double median = median_ms(ms, steps);
  printf("{\"mode\": \"gemm\", \"n\": %d, \"device\": \"%s\", \"threads\": %d, \"steps\": %d, \"ms_per_step\": %.2f, "
         "\"gflops\": %.2f, \"blas\": \"%s\"}\n",
         n, be->name, omp_threads(), steps, median, 2.0 * n * n * (double)n / (median * 1e-3) / 1e9,
         be->ops->describe(be));
  be->ops->free(be, a), be->ops->free(be, b), be->ops->free(be, c);
  free(ms);
  return 0;
}

/* --mode train: the trainer's own step (trainer_step: data, objective, backward, non-finite checks,
 * clipping, warmup, AdamW, EMA) on procedural images, at --batch without accumulation. */
static int time_training(RunConfig *run, const Backend *be, int batch, int warmup, int steps, GraphProfile *prof, double *ms, double *flops,
                         char *err, size_t errlen) {
  run->train.batch = batch;
  run->train.micro_batch = 0;
  run->train.steps = CHECKPOINT_MAX_STEP;
  snprintf(run->data.path, sizeof run->data.path, "procedural:%d", batch > 64 ? batch : 64);
  run->data.max_images = 0;
  const TrainOptions opt = {"(diffuse bench writes nothing)", NULL, false, be};
  Trainer *tr = trainer_open(run, &opt, err, errlen);
  if (!tr) return -1;
  Graph *g = trainer_graph(tr);
  int rc = 0;
  for (int s = 0; s < warmup + steps && rc == 0; s++) {
    if (prof && s == warmup) memset(prof, 0, sizeof *prof), g->profile = prof;
    const double t0 = now_seconds();
    rc = trainer_step(tr, NULL);
    *flops = g->flops;
    if (s >= warmup) ms[s - warmup] = 1e3 * (now_seconds() - t0);
  }
  g->profile = NULL;
  trainer_close(tr);
  return rc ? errorf(err, errlen, "a training step failed (see above)") : 0;
}

/* --mode sample: one grad-free network evaluation on random images, the unit every sampler repeats. */
static int time_sampling(const RunConfig *run, const Backend *be, int batch, int warmup, int steps, double *ms, double *flops, char *err,
                         size_t errlen) {
  Diffusion d;
  if (diffusion_init(&d, &run->diffusion, err, errlen)) return -1;
  const UNetConfig *mc = &run->model;
  UNet model;
  unet_init_inference(&model, mc, be);
  unet_init_weights(&model, 0);
  Graph g;
  graph_init(&g, be, 64u << 20);
  const size_t n = (size_t)batch * mc->in_channels * mc->resolution * mc->resolution;
  float *x = xmalloc(n * sizeof(float)), *eps = xmalloc(n * sizeof(float));
  rng_fill_uniform(x, n, 1, 0, 0);
  for (size_t i = 0; i < n; i++) x[i] = 2.0f * x[i] - 1.0f;
  int *labels = NULL;
  if (mc->num_classes > 0) {
    labels = xmalloc((size_t)batch * sizeof(int));
    for (int b = 0; b < batch; b++) labels[b] = b % mc->num_classes;
  }
  UNetDenoiser ctx = {.diffusion = &d, .model = &model, .graph = &g, .labels = labels};
  Denoiser den = unet_denoiser(&ctx);
  for (int s = 0; s < warmup + steps; s++) {
    const double t0 = now_seconds();
    den.predict_eps(&den, eps, x, batch, diffusion_tau_max(&d) / 2);
    *flops = g.flops;
    if (s >= warmup) ms[s - warmup] = 1e3 * (now_seconds() - t0);
  }
  free(x), free(eps), free(labels);
  graph_free(&g);
  unet_free(&model);
  diffusion_free(&d);
  return 0;
}

/* --mode inception: one inception_forward of B images (pool3, logits and the sFID features). */
static int time_inception(const Backend *be, const char *weights, int batch, int resolution, int warmup, int steps,
                          double *ms, char *err, size_t errlen) {
  Inception m;
  if (inception_load(&m, be, weights, err, errlen)) return -1;
  Graph g;
  graph_init(&g, be, 64u << 20);
  const size_t per = (size_t)3 * resolution * resolution;
  uint8_t *images = xmalloc((size_t)batch * per);
  float *u = xmalloc((size_t)batch * per * sizeof(float));
  rng_fill_uniform(u, (size_t)batch * per, 1, 0, 0);
  for (size_t i = 0; i < (size_t)batch * per; i++) images[i] = (uint8_t)(255.0f * u[i]);
  float *pool3 = xmalloc((size_t)batch * INCEPTION_POOL3_DIM * sizeof(float));
  float *logits = xmalloc((size_t)batch * INCEPTION_NUM_CLASSES * sizeof(float));
  float *spatial = xmalloc((size_t)batch * INCEPTION_SPATIAL_DIM * sizeof(float));
  for (int s = 0; s < warmup + steps; s++) {
    const double t0 = now_seconds();
    inception_forward(&m, &g, images, batch, resolution, resolution, pool3, logits, spatial);
    if (s >= warmup) ms[s - warmup] = 1e3 * (now_seconds() - t0);
  }
  free(images), free(u), free(pool3), free(logits), free(spatial);
  graph_free(&g);
  inception_free(&m);
  return 0;
}

int cmd_bench(int argc, char **argv) {
  const char *config = NULL, *mode = "train", *device = NULL, *inception = getenv("DIFFUSE_INCEPTION");
  const char *precision = NULL;
  int batch = 8, steps = 10, warmup = 2, threads = 0, resolution = 32;
  bool profile = false;
  const ArgSpec specs[] = {
      {"--config", ARG_STRING, &config}, {"--mode", ARG_STRING, &mode},     {"--batch", ARG_INT, &batch},
      {"--steps", ARG_INT, &steps},      {"--warmup", ARG_INT, &warmup},    {"--threads", ARG_INT, &threads},
      {"--profile", ARG_FLAG, &profile}, {"--device", ARG_STRING, &device},  {"--inception", ARG_STRING, &inception},
      {"--resolution", ARG_INT, &resolution}, {"--precision", ARG_STRING, &precision},
  };
  const int parse_rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "bench");
  if (parse_rc) return parse_rc;
  const bool train = !strcmp(mode, "train");
  const bool gemm_mode = !strcmp(mode, "gemm"), inception_mode = !strcmp(mode, "inception");
  if (precision && strcmp(mode, "sample")) {
    fprintf(stderr, "diffuse bench: --precision is for --mode sample (bf16 is for inference)\n");
    return 2;
  }
  if (profile && !train) {
    fprintf(stderr, "diffuse bench: --profile times recorded ops, i.e. --mode train\n");
    return 2;
  }
  if (inception_mode && !inception) {
    fprintf(stderr, "diffuse bench: --mode inception needs --inception FILE (or DIFFUSE_INCEPTION)\n");
    return 2;
  }
  if ((!config && !gemm_mode && !inception_mode) || (!train && !gemm_mode && !inception_mode && strcmp(mode, "sample"))) {
    fprintf(stderr, "diffuse bench: need --config F; --mode train|sample|gemm|inception\n");
    return 2;
  }
  const long max_threads = 4 * sysconf(_SC_NPROCESSORS_ONLN) > 0 ? 4 * sysconf(_SC_NPROCESSORS_ONLN) : 64;
  if (batch < 1 || steps < 1 || warmup < 0 || threads < 0 || threads > max_threads || resolution < 1 ||
      resolution > 1024) {
    fprintf(stderr, "diffuse bench: --batch/--steps must be >= 1, --warmup >= 0, --threads in [0, %ld] (4x the cores), "
            "--resolution in [1, 1024]\n", max_threads);
    return 1;
  }
  char err[1024];
  RunConfig run;
  const bool needs_config = !gemm_mode && !(inception_mode && !config);
  if (needs_config && (resolve_run_config(config, NULL, &run, err, sizeof err) || (run.model.classifier && errorf(err, sizeof err, "%s: bench times denoisers; this is a classifier (model.classifier)", config)))) {
    fprintf(stderr, "diffuse bench: %s\n", err);
    return 1;
  }
  /* --device, else the config's train.device */
  const Backend *be = backend_open(device ? device : needs_config ? run.train.device : "cpu", err, sizeof err);
  if (!be) {
    fprintf(stderr, "diffuse bench: %s%s\n", device ? "--device: " : "train.device: ", err);
    return 1;
  }
  if (!(be = precision_backend(be, precision, "bench", err, sizeof err))) {
    fprintf(stderr, "diffuse bench: %s\n", err);
    return 1;
  }
  if (threads > 0) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    be->ops->set_threads(be, threads);
  }
  if (gemm_mode) return bench_gemm(be, steps, warmup);
  double *ms = xmalloc((size_t)steps * sizeof(double)), flops = 0;
  GraphProfile prof;
  const int rc = inception_mode ? time_inception(be, inception, batch, resolution, warmup, steps, ms, err, sizeof err)
                 : train ? time_training(&run, be, batch, warmup, steps, profile ? &prof : NULL, ms, &flops, err, sizeof err)
                         : time_sampling(&run, be, batch, warmup, steps, ms, &flops, err, sizeof err);
  if (rc) {
    fprintf(stderr, "diffuse bench: %s\n", err);
    free(ms);
    return 1;
  }
  double mean = 0;
  for (int i = 0; i < steps; i++) mean += ms[i] / steps;
  const double median = median_ms(ms, steps);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double step_flops = train ? 3.0 * flops : flops;
  printf("{\"mode\": \"%s\", \"config\": \"%s\", \"device\": \"%s\", \"batch\": %d, \"threads\": %d, \"steps\": %d, "
         "\"ms_per_step\": %.2f, \"ms_min\": %.2f, \"img_per_s\": %.3f, \"gflops\": %.2f, \"peak_rss_mib\": %.1f, "
         "\"blas\": \"%s\"}\n",
         mode, config ? config : "", be->name, batch, omp_threads(), steps, median, ms[0], batch / (median * 1e-3),
         step_flops / (median * 1e-3) / 1e9, ru.ru_maxrss / 1024.0, be->ops->describe(be));
  if (profile) print_profile(&prof, steps, mean);
  free(ms);
  return 0;
}
