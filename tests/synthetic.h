/* synthetic.h - deterministic "synthetic" tensors shared with scripts/gen_unet_fixtures.py.
 *
 * unit(stream, i) = 2 * ((splitmix64(stream + i) >> 40) * 2^-24) - 1, in [-1, 1), exact in float.
 * A parameter named N with n elements gets unit(fnv1a64(N), i) scaled by 1/sqrt(fan_in) (ndim >= 2),
 * (1 + 0.5 * |u|) / 8 (BatchNorm "*.running_var": positive; the 1/8 keeps the signal alive through
 * Inception's 94 conv+BN+ReLU layers, see scripts/gen_inception_fixtures.py), 1 + 0.1 * u (1-D
 * "*.weight") or 0.1 * u (other 1-D). Every parameter is non-zero, so every gradient of a reference
 * test is informative. */
#ifndef DIFFUSE_TEST_SYNTHETIC_H
#define DIFFUSE_TEST_SYNTHETIC_H

#include <stddef.h>
#include <stdint.h>

#include "nn/params.h"
#include "diffusion/unet_denoiser.h"
#include "nn/inception.h"
#include "nn/unet.h"

void synthetic_fill(float *out, size_t n, const char *stream_name);
void synthetic_params(ParamTable *p);
/* m's parameters (unfolded: the state dict) as a safetensors file of pytorch-fid's names, plus one
 * "num_batches_tracked" the loader must ignore. Aborts on a write error. */
void synthetic_inception_write(const Inception *m, const char *path);
/* The "small" U-Net of scripts/gen_unet_fixtures.py (SMALL): 16x16x3, ch 16, mult [1, 2], one res
 * block, attention at 8, 8 groups, no dropout; num_classes as given. */
UNetConfig synthetic_small_unet_config(int num_classes);

/* That U-Net with synthetic weights as the denoiser of a cosine-schedule DDPM with T steps and the
 * given prediction (the model of gen_sampler_fixtures.py and gen_nll_fixtures.py). Initialised in
 * place: den points into the struct. */
typedef struct {
  Diffusion d;
  UNet model;
  Graph g;
  UNetDenoiser ctx;
  Denoiser den;
} SyntheticDenoiser;
void synthetic_denoiser_init(SyntheticDenoiser *s, int T, const char *prediction);
/* The same network as the denoiser of any process. */
void synthetic_denoiser_init_process(SyntheticDenoiser *s, const DiffusionConfig *dc);
void synthetic_denoiser_free(SyntheticDenoiser *s);

#endif
