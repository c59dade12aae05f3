/* cmd_eval_loss.c - `diffuse eval loss`: a checkpoint's own training objective on held-out images.
 *
 * The loss the model was trained on (its process, network parameterisation, train.loss and
 * train.loss_weighting, diffusion/objective.h; train.loss vlb with uniform t, an unbiased estimate of
 * the bound without the importance sampler's training history; class-conditional models with their
 * labels, none dropped to the null class of train.p_uncond), with the EMA weights, dropout off and no gradient, on --n images of the
 * split (test by default), each seen with --repeats draws of (tau, noise) from --seed: the held-out
 * MSE in the model's own parameterisation, comparable between checkpoints of one objective and
 * repeatable (the draws are the counter-based streams of training, keyed by repeat and image). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "core/clock.h"
#include "core/error.h"
#include "diffusion/objective.h"
#include "heldout_inputs.h"
#include "io/dataset.h"
#include "run_config_source.h"

int cmd_eval_loss(int argc, char **argv) {
  const char *ckpt = NULL, *config = NULL, *data = NULL, *split = "test", *device = "cpu";
  int n = 1000, batch = 50, seed = 0, repeats = 4;
  const ArgSpec specs[] = {
      {"--ckpt", ARG_STRING, &ckpt},   {"--config", ARG_STRING, &config}, {"--data", ARG_STRING, &data},
      {"--split", ARG_STRING, &split}, {"--n", ARG_INT, &n},              {"--batch", ARG_INT, &batch},
      {"--seed", ARG_INT, &seed},      {"--repeats", ARG_INT, &repeats},  {"--device", ARG_STRING, &device},
  };
  const int parse_rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "eval loss");
  if (parse_rc) return parse_rc;
  if (!ckpt || !data) {
    fprintf(stderr, "diffuse eval loss: --ckpt and --data are required (see diffuse eval --help)\n");
    return 2;
  }
  char err[1024] = "";
  if (n < 1 || batch < 1 || seed < 0 || repeats < 1) errorf(err, sizeof err, "--n, --batch and --repeats must be >= 1, --seed >= 0");
  else if (strcmp(split, "train") && strcmp(split, "test")) errorf(err, sizeof err, "--split must be train or test");
  const Backend *backend = err[0] ? NULL : backend_open(device, err, sizeof err);
  RunConfig run;
  int rc = backend ? resolve_run_config(config, ckpt, &run, err, sizeof err) : -1;
  if (rc == 0) rc = require_denoiser(&run, ckpt, err, sizeof err);
  if (rc) {
    fprintf(stderr, "diffuse eval loss: %s\n", err);
    return 1;
  }
  Diffusion diffusion;
  Objective objective = {0};
  rc = diffusion_init(&diffusion, &run.diffusion, err, sizeof err);
  if (rc == 0)
    rc = objective_init(&objective, &diffusion, run.train.loss, run.train.loss_weighting, run.train.min_snr_gamma, err,
                        sizeof err);
  const UNetConfig *mc = &run.model;
  UNet model;
  unet_init_inference(&model, mc, backend);
  Dataset d = {0};
  if (rc == 0) rc = heldout_inputs_load(ckpt, &model, data, split, n, &d, err, sizeof err);
  const bool conditional = mc->num_classes > 0;
  if (rc == 0 && conditional && !d.labels)
    rc = errorf(err, sizeof err, "%s has no class labels (sub-folders, CIFAR-10 or IDX labels), which this class-conditional model needs", data);
  if (rc) {
    fprintf(stderr, "diffuse eval loss: %s\n", err);
    dataset_free(&d);
    unet_free(&model);
    objective_free(&objective);
    diffusion_free(&diffusion);
    return 1;
  }
  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  float *x = xmalloc((size_t)batch * per * sizeof(float));
  int *idx = xmalloc((size_t)batch * sizeof(int)), *labels = xmalloc((size_t)batch * sizeof(int));
  Graph g;
  graph_init(&g, backend, 16u << 20);
  g.grad_enabled = false;
  g.training = false;
  const int shape[4] = {0, mc->in_channels, mc->resolution, mc->resolution};
  double sum = 0.0, sum2 = 0.0; /* over (repeat, image) batches, weighted by their sizes */
  long pieces = 0;
  const double t0 = now_seconds();
  for (int k = 0; k < repeats && rc == 0; k++)
    for (int first = 0; first < d.n && rc == 0; first += batch) {
      const int B = d.n - first < batch ? d.n - first : batch;
      for (int b = 0; b < B; b++) idx[b] = first + b;
      rc = dataset_get_batch(&d, idx, NULL, B, x, conditional ? labels : NULL, err, sizeof err);
      if (rc) break;
      graph_reset(&g);
      int s[4] = {B, shape[1], shape[2], shape[3]};
      Tensor *x0 = graph_tensor_upload(&g, 4, s, x);
      Tensor *loss = diffusion_training_loss(&diffusion, &objective, &model, &g, x0, conditional ? labels : NULL,
                                             (uint64_t)seed, k, first, NULL, NULL);
      float value;
      tensor_download(loss, &value);
      sum += (double)value * B, sum2 += (double)value * value * B;
      pieces++;
    }
  const long total = (long)d.n * repeats;
  const double mean = sum / total, var = fmax(sum2 / total - mean * mean, 0.0);
  if (rc) {
    fprintf(stderr, "diffuse eval loss: %s\n", err);
  } else {
    /* batches are independent draws: the standard error of their size-weighted mean */
    printf("loss %.6f +- %.6f (%s, prediction %s, loss %s, weighting %s; %d %s images x %d draws, %.1fs)\n", mean,
           pieces > 1 ? sqrt(var / (pieces - 1)) : 0.0, run.diffusion.type, run.diffusion.prediction, run.train.loss,
           run.train.loss_weighting, d.n, split, repeats, now_seconds() - t0);
  }
  free(x), free(idx), free(labels);
  graph_free(&g);
  dataset_free(&d);
  unet_free(&model);
  objective_free(&objective);
  diffusion_free(&diffusion);
  return rc ? 1 : 0;
}
