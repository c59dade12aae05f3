/* guidance_classifier.c - the classifier behind `sample --classifier`; see guidance_classifier.h. */
#include "guidance_classifier.h"

#include <string.h>

#include "core/error.h"
#include "nn/checkpoint.h"
#include "run_config_source.h"

int guidance_classifier_open(GuidanceClassifier *gc, const char *path, const UNetConfig *mc, const Diffusion *d,
                             const Backend *backend, char *err, size_t errlen) {
  memset(gc, 0, sizeof *gc);
  char why[768];
  if (resolve_run_config(NULL, path, &gc->run, why, sizeof why))
    return errorf(err, errlen, "--classifier: %s", why);
  const UNetConfig *cc = &gc->run.model;
  if (!cc->classifier)
    return errorf(err, errlen, "--classifier %s is a denoiser checkpoint, not a classifier: train one from a config "
                  "with model.classifier true (configs/cifar10_classifier.json)", path);
  if (cc->in_channels != mc->in_channels || cc->resolution != mc->resolution)
    return errorf(err, errlen, "--classifier %s takes %dx%dx%d images, the model makes %dx%dx%d", path,
                  cc->in_channels, cc->resolution, cc->resolution, mc->in_channels, mc->resolution, mc->resolution);
  if (mc->num_classes > 0 && cc->num_classes != mc->num_classes)
    return errorf(err, errlen, "--classifier %s tells %d classes apart, the class-conditional model has %d", path,
                  cc->num_classes, mc->num_classes);
  if (diffusion_init(&gc->diffusion, &gc->run.diffusion, why, sizeof why))
    return errorf(err, errlen, "--classifier %s: %s", path, why);
  if (classifier_process_matches(d, &gc->diffusion, why, sizeof why)) {
    diffusion_free(&gc->diffusion);
    return errorf(err, errlen, "--classifier %s: %s", path, why);
  }
  unet_init_inference(&gc->model, cc, backend);
  const CheckpointLoadOptions lo = {.use_ema = true};
  if (checkpoint_load(path, &gc->model, &lo, NULL, why, sizeof why)) {
    unet_free(&gc->model);
    diffusion_free(&gc->diffusion);
    return errorf(err, errlen, "--classifier %s", why);
  }
  graph_init(&gc->graph, backend, 16u << 20);
  gc->unet = (UNetClassifier){&gc->diffusion, &gc->model, &gc->graph};
  gc->grad = unet_classifier_grad(&gc->unet);
  gc->open = true;
  return 0;
}

void guidance_classifier_close(GuidanceClassifier *gc) {
  if (!gc->open) return;
  graph_free(&gc->graph);
  unet_free(&gc->model);
  diffusion_free(&gc->diffusion);
  gc->open = false;
}
