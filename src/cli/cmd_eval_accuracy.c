/* cmd_eval_accuracy.c - `diffuse eval accuracy`: how often a noise-conditional classifier (model.classifier,
 * trained by diffuse train) names the right class of clean images, at the process's least noise tau_min:
 * the held-out images of a labelled dataset (--data), or generated samples (--samples, the tensor x of
 * sample --save-tensor) labelled by the --class list rule diffuse sample used (class_list.h). This is how
 * guided samples are scored: the fraction the classifier labels as the class asked for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "class_list.h"
#include "commands.h"
#include "core/error.h"
#include "diffusion/objective.h"
#include "heldout_inputs.h"
#include "io/safetensors.h"
#include "nn/checkpoint.h"
#include "run_config_source.h"

/* logits of B images x (host) at tau_min; returns how many have their largest logit at labels[b]. */
static int count_correct(UNet *m, Graph *g, const Diffusion *d, const float *x, const int *labels, int B,
                         float *logits_host) {
  const UNetConfig *c = &m->cfg;
  graph_reset(g);
  g->grad_enabled = false;
  g->training = false;
  const int shape[4] = {B, c->in_channels, c->resolution, c->resolution};
  Tensor *logits = classifier_logits(d, m, g, graph_tensor_upload(g, 4, shape, x), diffusion_tau_min(d));
  tensor_download(logits, logits_host);
  const int K = c->num_classes;
  int correct = 0;
  for (int b = 0; b < B; b++) {
    int best = 0;
    for (int k = 1; k < K; k++) best = logits_host[(size_t)b * K + k] > logits_host[(size_t)b * K + best] ? k : best;
    correct += best == labels[b];
  }
  return correct;
}

int cmd_eval_accuracy(int argc, char **argv) {
  const char *ckpt = NULL, *data = NULL, *samples = NULL, *split = "test", *class_text = NULL, *device = "cpu";
  int n = ARG_UNSET, batch = 50; /* unset: every image (a folder's first n are its first classes, in sorted order) */
  const char *split_given = NULL;
  ArgSpec specs[] = {
      {"--classifier", ARG_STRING, &ckpt}, {"--data", ARG_STRING, &data},   {"--samples", ARG_STRING, &samples},
      {"--split", ARG_STRING, &split_given},     {"--class", ARG_STRING, &class_text}, {"--n", ARG_INT, &n},
      {"--batch", ARG_INT, &batch},        {"--device", ARG_STRING, &device},
  };
  const int parse_rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "eval accuracy");
  if (parse_rc) return parse_rc;
  if (!ckpt || !data == !samples) {
    fprintf(stderr, "diffuse eval accuracy: --classifier and one of --data, --samples are required (see diffuse eval "
                    "--help)\n");
    return 2;
  }
  if (data && class_text) {
    fprintf(stderr, "diffuse eval accuracy: --class labels --samples; a dataset's labels are its own\n");
    return 2;
  }
  if (samples && (n != ARG_UNSET || split_given)) {
    fprintf(stderr, "diffuse eval accuracy: --n and --split choose dataset images (--data); --samples scores the whole file\n");
    return 2;
  }
  if (split_given) split = split_given;
  if (n == ARG_UNSET) n = 0;
  char err[1024] = "";
  if (n < 0 || batch < 1) errorf(err, sizeof err, "--n must be >= 0 (0: all), --batch >= 1");
  else if (strcmp(split, "train") && strcmp(split, "test")) errorf(err, sizeof err, "--split must be train or test");
  const Backend *backend = err[0] ? NULL : backend_open(device, err, sizeof err);
  RunConfig run;
  int rc = backend ? resolve_run_config(NULL, ckpt, &run, err, sizeof err) : -1;
  if (rc == 0 && !run.model.classifier)
    rc = errorf(err, sizeof err, "--classifier %s is a denoiser checkpoint, not a classifier (model.classifier)", ckpt);
  if (rc) { /* nothing is set up yet */
    fprintf(stderr, "diffuse eval accuracy: %s\n", err);
    return 1;
  }
  const UNetConfig *mc = &run.model;
  Diffusion diffusion = {0};
  if (rc == 0) rc = diffusion_init(&diffusion, &run.diffusion, err, sizeof err);
  UNet model;
  unet_init_inference(&model, mc, backend);
  Dataset d = {0};
  float *x_all = NULL;
  int count = 0;
  ClassList classes;
  if (rc == 0 && data) {
    rc = heldout_inputs_load(ckpt, &model, data, split, n, &d, err, sizeof err);
    if (rc == 0 && !d.labels) rc = errorf(err, sizeof err, "%s has no class labels (sub-folders, CIFAR-10 or IDX labels)", data);
    count = d.n;
  } else if (rc == 0) {
    const CheckpointLoadOptions lo = {.use_ema = true};
    rc = checkpoint_load(ckpt, &model, &lo, NULL, err, sizeof err);
    SafeTensors st;
    if (rc == 0 && (rc = st_load(&st, samples, err, sizeof err)) == 0) {
      const StTensor *t = st_find(&st, "x");
      if (!t || t->ndim != 4 || t->shape[1] != mc->in_channels || t->shape[2] != mc->resolution ||
          t->shape[3] != mc->resolution || t->shape[0] < 1)
        rc = errorf(err, sizeof err, "%s: needs a tensor x of shape [N, %d, %d, %d] (diffuse sample --save-tensor)",
                    samples, mc->in_channels, mc->resolution, mc->resolution);
      else {
        count = (int)t->shape[0];
        x_all = xmalloc(t->numel * sizeof(float));
        rc = st_tensor_to_f32(t, x_all, err, sizeof err);
      }
      st_free(&st);
    }
    if (rc == 0) rc = class_list_parse(&classes, class_text, mc->num_classes, err, sizeof err);
  }
  if (rc) {
    fprintf(stderr, "diffuse eval accuracy: %s\n", err);
    free(x_all);
    dataset_free(&d);
    unet_free(&model);
    diffusion_free(&diffusion);
    return 1;
  }
  const size_t per = (size_t)mc->in_channels * mc->resolution * mc->resolution;
  float *x = xmalloc((size_t)batch * per * sizeof(float)), *logits = xmalloc((size_t)batch * mc->num_classes * sizeof(float));
  int *idx = xmalloc((size_t)batch * sizeof(int)), *labels = xmalloc((size_t)batch * sizeof(int));
  Graph g;
  graph_init(&g, backend, 16u << 20);
  long correct = 0;
  for (int first = 0; first < count && rc == 0; first += batch) {
    const int B = count - first < batch ? count - first : batch;
    if (data) {
      for (int b = 0; b < B; b++) idx[b] = first + b;
      rc = dataset_get_batch(&d, idx, NULL, B, x, labels, err, sizeof err);
    } else {
      memcpy(x, x_all + (size_t)first * per, (size_t)B * per * sizeof(float));
      for (int b = 0; b < B; b++) labels[b] = class_list_label(&classes, first + b, count);
    }
    if (rc == 0) correct += count_correct(&model, &g, &diffusion, x, labels, B, logits);
  }
  if (rc) fprintf(stderr, "diffuse eval accuracy: %s\n", err);
  else
    printf("accuracy %.4f (%ld of %d %s), classifier %s at tau_min\n", (double)correct / count, correct, count,
           data ? "dataset images" : "samples, labelled by the --class rule", ckpt);
  free(x), free(logits), free(idx), free(labels), free(x_all);
  graph_free(&g);
  dataset_free(&d);
  unet_free(&model);
  diffusion_free(&diffusion);
  return rc ? 1 : 0;
}
