/* unet_denoiser.h - the Denoiser (denoiser.h) backed by a U-Net: a grad-free forward per call,
 * x0 / v predictions converted to eps, and the input VJP by a backward pass. */
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
} UNetDenoiser;

/* A denoiser backed by a U-Net; converts x0 / v predictions to eps. Provides the VJP (a backward
 * pass through the network w.r.t. its input only; parameter gradients are left untouched). */
Denoiser unet_denoiser(UNetDenoiser *ctx);

#endif
