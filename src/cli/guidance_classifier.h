/* guidance_classifier.h - `diffuse sample --classifier CKPT --classifier-scale S`: the noise-conditional
 * classifier checkpoint (trained by diffuse train from a model.classifier config) behind classifier
 * guidance (diffusion/classifier_guidance.h). */
#ifndef DIFFUSE_CLI_GUIDANCE_CLASSIFIER_H
#define DIFFUSE_CLI_GUIDANCE_CLASSIFIER_H

#include "backend/backend.h"
#include "diffusion/classifier_guidance.h"
#include "train/run_config.h"

typedef struct {
  RunConfig run;
  Diffusion diffusion;
  UNet model;
  Graph graph;
  UNetClassifier unet;
  ClassifierGrad grad;
  bool open;
} GuidanceClassifier;

/* Load the classifier (EMA weights) for a model of config mc on process d: it must be a classifier
 * checkpoint of the same noise process and, for a class-conditional model, of the same classes.
 * 0, or -1 + a message naming the file. */
int guidance_classifier_open(GuidanceClassifier *gc, const char *path, const UNetConfig *mc, const Diffusion *d,
                             const Backend *backend, char *err, size_t errlen);
void guidance_classifier_close(GuidanceClassifier *gc);

#endif
