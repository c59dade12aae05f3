/* test_train.c - end to end: a tiny U-Net trains on a tiny generated CIFAR-10-format dataset.
 * Loss decreases; log, config, grid and checkpoint are written; a run of N steps resumed for N
 * more ends bit-identical to a run of 2N; gradient accumulation matches one large batch up to
 * summation order; with a learned variance and train.loss vlb, the resumed run is bit-identical too
 * (the importance sampler's loss history travels in the checkpoint); a diverging run stops with exit
 * code 1 naming the step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "io/safetensors.h"
#include "train/trainer.h"
#include "test_util.h"

#define STEPS 40

static char g_dir[] = "/tmp/diffuse_train_XXXXXX";

/* CIFAR-10 records (label byte + 32x32 R, G, B planes): a bright square on a dark background. */
static void write_batch(const char *path, int first, int count) {
  FILE *f = fopen(path, "wb");
  for (int n = first; n < first + count; n++) {
    unsigned char rec[3073];
    rec[0] = (unsigned char)(n % 10);
    const int x0 = (int)(rng_uniform(5, (uint64_t)n, 0) * 16), y0 = (int)(rng_uniform(5, (uint64_t)n, 1) * 16);
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
          const int inside = x >= x0 && x < x0 + 16 && y >= y0 && y < y0 + 16;
          rec[1 + c * 1024 + y * 32 + x] = (unsigned char)(inside ? 200 + 20 * c : 30);
        }
    fwrite(rec, 1, sizeof rec, f);
  }
  fclose(f);
}

static RunConfig tiny_config(const char *data_dir) {
  RunConfig rc;
  unet_config_default(&rc.model);
  diffusion_config_default(&rc.diffusion);
  train_config_default(&rc.train);
  data_config_default(&rc.data);
  rc.model.resolution = 8;
  rc.model.ch = 8;
  rc.model.groups = 4;
  rc.model.ch_mult[0] = 1, rc.model.ch_mult[1] = 2, rc.model.n_ch_mult = 2;
  rc.model.num_res_blocks = 1;
  rc.model.n_attn_resolutions = 1, rc.model.attn_resolutions[0] = 4;
  rc.model.dropout = 0.1;
  rc.diffusion.T = 100;
  rc.train.steps = STEPS;
  rc.train.batch = 8;
  rc.train.lr = 2e-3;
  rc.train.warmup = 5;
  rc.train.ema_decay = 0.9;
  rc.train.log_every = 5;
  rc.train.sample_every = 0;
  rc.train.ckpt_every = 0;
  rc.train.sample_n = 4;
  rc.train.sample_steps = 5;
  snprintf(rc.data.path, sizeof rc.data.path, "%s", data_dir);
  rc.data.flip = true;
  return rc;
}

/* What the CLI does around the trainer: open it, create the run directory, run. 0 or 1. */
static int train(const RunConfig *rc, const char *out, const char *resume) {
  const TrainOptions opt = {out, resume, false, backend_cpu()};
  char err[1024], samples[600];
  Trainer *tr = trainer_open(rc, &opt, err, sizeof err);
  if (!tr) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  snprintf(samples, sizeof samples, "%s/samples", out);
  mkdir(out, 0755);
  mkdir(samples, 0755);
  const TrainOutcome outcome = trainer_run(tr, NULL);
  trainer_close(tr);
  return outcome == TRAIN_FINISHED ? 0 : 1;
}

static void path_in(char *buf, size_t n, const char *sub) { snprintf(buf, n, "%s/%s", g_dir, sub); }

/* Mean logged loss over the first and last two log lines. */
static void read_losses(const char *log_path, double *first, double *last, int *lines) {
  FILE *f = fopen(log_path, "r");
  double v[256];
  int n = 0;
  char line[512];
  while (f && fgets(line, sizeof line, f) && n < 256) {
    const char *p = strstr(line, "\"loss\": ");
    if (p) v[n++] = atof(p + 8);
  }
  if (f) fclose(f);
  *lines = n;
  *first = n >= 2 ? (v[0] + v[1]) / 2 : NAN;
  *last = n >= 2 ? (v[n - 1] + v[n - 2]) / 2 : NAN;
}

static int same_tensors(const char *a, const char *b, double tol) {
  SafeTensors x, y;
  char err[512];
  if (st_load(&x, a, err, sizeof err) || st_load(&y, b, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 0;
  }
  int ok = x.n_tensors == y.n_tensors;
  for (int i = 0; ok && i < x.n_tensors; i++) {
    const StTensor *t = &x.tensors[i], *u = st_find(&y, t->name);
    ok = u && u->nbytes == t->nbytes;
    if (ok && tol == 0) ok = memcmp(t->data, u->data, t->nbytes) == 0;
    for (size_t k = 0; ok && tol > 0 && k < t->numel; k++) {
      float p, q;
      memcpy(&p, t->data + 4 * k, 4), memcpy(&q, u->data + 4 * k, 4);
      ok = fabsf(p - q) <= tol * (1 + fabsf(q));
    }
    if (!ok) fprintf(stderr, "tensor %s differs\n", t->name);
  }
  st_free(&x), st_free(&y);
  return ok;
}

/* `full` run uninterrupted in <name>_a, and as half its steps in <name>_b then resumed: the two
 * checkpoints must be the same bits. *ckpt receives the uninterrupted run's checkpoint. */
static void check_resume(const RunConfig *full, const char *name, char *ckpt, size_t n) {
  RunConfig half = *full;
  half.train.steps = full->train.steps / 2;
  char a[512], b[512], sub[64], resumed[600];
  snprintf(sub, sizeof sub, "%s_a", name);
  path_in(a, sizeof a, sub);
  snprintf(sub, sizeof sub, "%s_b", name);
  path_in(b, sizeof b, sub);
  EXPECT(train(full, a, NULL) == 0, "%s run failed", name);
  EXPECT(train(&half, b, NULL) == 0, "%s first half failed", name);
  snprintf(resumed, sizeof resumed, "%s/ckpt.safetensors", b);
  EXPECT(train(full, b, resumed) == 0, "%s resumed half failed", name);
  snprintf(ckpt, n, "%s/ckpt.safetensors", a);
  EXPECT(same_tensors(ckpt, resumed, 0), "resumed %s run differs from the uninterrupted run", name);
}

int main(void) {
  if (!mkdtemp(g_dir)) return 1;
  char data[512], file[600], a[512], b[512], c[512], path[1400];
  path_in(data, sizeof data, "data");
  mkdir(data, 0755);
  for (int i = 1; i <= 5; i++) { /* the CIFAR-10 binary layout: data_batch_1..5 */
    snprintf(file, sizeof file, "%s/data_batch_%d.bin", data, i);
    write_batch(file, 16 * (i - 1), 16);
  }
  RunConfig rc = tiny_config(data);

  /* ---- a full run ---- */
  path_in(a, sizeof a, "a");
  EXPECT(train(&rc, a, NULL) == 0, "training run failed");
  double first, last;
  int lines;
  snprintf(path, sizeof path, "%s/log.jsonl", a);
  read_losses(path, &first, &last, &lines);
  EXPECT(lines == STEPS / 5, "%d log lines, expected %d", lines, STEPS / 5);
  EXPECT(last < 0.7 * first, "loss did not decrease: %.4f -> %.4f", first, last);
  printf("train: loss %.4f -> %.4f over %d steps\n", first, last, STEPS);
  const char *outputs[] = {"config.json", "ckpt.safetensors", "samples/step_0000040.png"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", a, outputs[i]);
    EXPECT(access(path, F_OK) == 0, "missing output %s", path);
  }

  /* ---- half the steps, then resume: bit-identical weights, EMA and moments ---- */
  path_in(b, sizeof b, "b");
  RunConfig half = rc;
  half.train.steps = STEPS / 2;
  EXPECT(train(&half, b, NULL) == 0, "first half failed");
  snprintf(path, sizeof path, "%s/ckpt.safetensors", b);
  EXPECT(train(&rc, b, path) == 0, "resumed half failed");
  char ca[600], cb[600];
  snprintf(ca, sizeof ca, "%s/ckpt.safetensors", a);
  snprintf(cb, sizeof cb, "%s/ckpt.safetensors", b);
  EXPECT(same_tensors(ca, cb, 0), "resumed run differs from the uninterrupted run");

  /* ---- learned variance, L_vlb with importance-sampled t: T = 10 levels fill the history (10 terms
   * each) within 13 steps of 8, so the second half of 30 steps samples from it ---- */
  RunConfig vlb = rc;
  vlb.diffusion.T = 10;
  vlb.diffusion.learn_sigma = vlb.model.learn_sigma = true;
  snprintf(vlb.train.loss, sizeof vlb.train.loss, "vlb");
  vlb.train.steps = 30;
  check_resume(&vlb, "vlb", ca, sizeof ca);
  SafeTensors hist;
  char herr[256];
  EXPECT(st_load(&hist, ca, herr, sizeof herr) == 0, "%s", herr);
  const StTensor *h = st_find(&hist, "train.loss_history");
  float full = 0;
  for (int t = 0; h && t < 10; t++) full += ((const float *)h->data)[t * 11] == 10.0f;
  EXPECT(h && full == 10, "the loss history is not in the checkpoint or not warm (%g of 10 levels full)", full);
  st_free(&hist);
  /* hybrid trains too; resuming it as vlb starts the loss history afresh (with a note) */
  RunConfig hybrid = vlb;
  snprintf(hybrid.train.loss, sizeof hybrid.train.loss, "hybrid");
  hybrid.train.steps = 3;
  path_in(c, sizeof c, "hybrid");
  EXPECT(train(&hybrid, c, NULL) == 0, "hybrid run failed");
  snprintf(cb, sizeof cb, "%s/ckpt.safetensors", c);
  EXPECT(train(&vlb, c, cb) == 0, "resuming vlb from a hybrid checkpoint (no loss history) failed");

  /* ---- class-conditional with label dropout to the null class (classifier-free guidance): resumes
   * bit-identically, the dropped labels drawn from their own stream ---- */
  RunConfig cfg_run = rc;
  cfg_run.model.num_classes = 10;
  cfg_run.train.p_uncond = 0.3;
  cfg_run.model.null_class = true;
  cfg_run.train.steps = 10;
  check_resume(&cfg_run, "p_uncond", ca, sizeof ca);

  /* ---- gradient accumulation: 2 micro-batches of 4 = one batch of 8, up to summation order ---- */
  path_in(c, sizeof c, "c");
  RunConfig acc = rc;
  acc.train.micro_batch = 4;
  acc.train.steps = 5;
  RunConfig one = rc;
  one.train.steps = 5;
  EXPECT(train(&acc, c, NULL) == 0, "accumulation run failed");
  char cc[600];
  snprintf(cc, sizeof cc, "%s/acc.safetensors", g_dir);
  snprintf(path, sizeof path, "%s/ckpt.safetensors", c);
  rename(path, cc);
  snprintf(path, sizeof path, "%s/log.jsonl", c);
  unlink(path);
  EXPECT(train(&one, c, NULL) == 0, "single-batch run failed");
  snprintf(path, sizeof path, "%s/ckpt.safetensors", c);
  EXPECT(same_tensors(cc, path, 1e-4), "accumulated gradients differ from one batch");

  /* ---- divergence: stops with exit code 1 ---- */
  RunConfig boom = rc;
  boom.train.lr = 1e30;
  boom.train.warmup = 0;
  boom.train.grad_clip = 0;
  path_in(path, sizeof path, "boom");
  EXPECT(train(&boom, path, NULL) == 1, "a diverging run must exit with 1");

  /* ---- missing data: clear error ---- */
  RunConfig nodata = rc;
  snprintf(nodata.data.path, sizeof nodata.data.path, "%s/nonexistent", g_dir);
  path_in(path, sizeof path, "nodata");
  EXPECT(train(&nodata, path, NULL) == 1, "missing data must exit with 1");

  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
  return test_report("train");
}
