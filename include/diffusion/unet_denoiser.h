/* unet_denoiser.h - the Denoiser (denoiser.h) backed by a U-Net: a grad-free forward per call,
 * x0 / v predictions converted to eps, and the input VJP by a backward pass.
 *
 * Classifier-free guidance (Ho & Salimans 2022) with guidance w != 0 on a model with a null class:
 * eps = (1 + w) eps(x, label) - w eps(x, null), both halves in one network call of 2B images (the
 * variance output, if any, from the conditional half); its VJP is that of the combination. */
#ifndef DIFFUSION_UNET_DENOISER_H
#define DIFFUSION_UNET_DENOISER_H

#include "autograd/graph.h"
#include "diffusion/denoiser.h"
#include "diffusion/diffusion.h"
#include "nn/unet.h"

typedef struct {
  const Diffusion *diffusion;
  UNet *model;
  Graph *graph;        /* grad mode is switched off for the call */
  const int *labels;   /* (B) or NULL */
  double guidance;     /* classifier-free guidance weight w; 0: none */
  int *guided_labels;  /* w != 0: scratch of 2 B (the largest batch) labels */
} UNetDenoiser;

/* A denoiser backed by a U-Net; converts x0 / v predictions to eps. Provides the VJP (a backward
 * pass through the network w.r.t. its input only; parameter gradients are left untouched). */
Denoiser unet_denoiser(UNetDenoiser *ctx);

#endif
