/* unet_denoiser.h - the Denoiser (denoiser.h) backed by a U-Net: a grad-free forward per call,
 * x0 / v predictions converted to eps, and the input VJP by a backward pass.
 *
 * The U-Net is a LabelledEps (classifier_free_guidance.h) and the Denoiser is classifier_free_denoiser
 * over it: with guidance w != 0 on a model with a null class, eps = (1 + w) eps(x, label) - w eps(x, null),
 * both halves in one network call of 2B images (the variance output, if any, from the conditional half). */
#ifndef DIFFUSION_UNET_DENOISER_H
#define DIFFUSION_UNET_DENOISER_H

#include "autograd/graph.h"
#include "diffusion/classifier_free_guidance.h"
#include "diffusion/denoiser.h"
#include "diffusion/diffusion.h"
#include "nn/unet.h"

typedef struct {
  const Diffusion *diffusion;
  UNet *model;
  Graph *graph;          /* grad mode is switched off for the call */
  const int *labels;     /* (B) or NULL */
  double guidance;       /* classifier-free guidance weight w; 0: none */
  void *guided_scratch;  /* w != 0: classifier_free_scratch_bytes(the largest batch, one image's floats) */
  LabelledEps net;       /* filled by unet_denoiser */
  ClassifierFree cfg;    /* filled by unet_denoiser */
} UNetDenoiser;

/* A denoiser backed by a U-Net; converts x0 / v predictions to eps. Provides the VJP (a backward
 * pass through the network w.r.t. its input only; parameter gradients are left untouched). */
Denoiser unet_denoiser(UNetDenoiser *ctx);

#endif
