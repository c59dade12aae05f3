/* unet.h - the DDPM U-Net (Ho et al. 2020), parameters named as diffusers' UNet2DModel.
 *
 * conv_in; per level num_res_blocks ResBlocks (+ attention at attn_resolutions) and a stride-2
 * TF-"SAME" conv downsample on all but the last level; middle Res-Attn-Res; up path with
 * num_res_blocks+1 ResBlocks on concatenated skips and nearest-x2 + conv upsampling; GroupNorm,
 * SiLU, conv_out. Timestep embedding: sinusoidal (width ch) -> Linear(ch,4ch) -> SiLU ->
 * Linear(4ch,4ch), plus an optional class embedding. With model.classifier, the same down path and
 * middle block end in ADM's AttentionPool2d head instead of the up path (EncoderUNetModel, pool
 * "attention").
 */
#ifndef DIFFUSE_NN_UNET_H
#define DIFFUSE_NN_UNET_H

#include <stdbool.h>

#include "autograd/graph.h"
#include "io/config.h"
#include "nn/params.h"

#define UNET_MAX_LEVELS CFG_LIST_MAX
#define UNET_MAX_RES_BLOCKS 8

typedef struct {
  int resolution, in_channels, ch;
  int ch_mult[CFG_LIST_MAX], n_ch_mult;
  int num_res_blocks;
  int attn_resolutions[CFG_LIST_MAX], n_attn_resolutions;
  double dropout;
  int groups;
  double norm_eps;
  int num_classes; /* 0: unconditional; a classifier: its classes */
  bool classifier;  /* the noise-conditional classifier (Dhariwal & Nichol 2021): the down path and middle
                       block, then GroupNorm, SiLU and ADM's attention pool to num_classes logits */
  bool learn_sigma; /* not a model key: set from diffusion.learn_sigma; the output has 2 in_channels channels */
  bool null_class;  /* not a model key: set when train.p_uncond > 0; class num_classes is "no class" (CFG) */
} UNetConfig;

extern const CfgField UNET_CONFIG_FIELDS[];
extern const int UNET_CONFIG_N_FIELDS;

void unet_config_default(UNetConfig *c); /* the DDPM CIFAR-10 model */
/* in_channels, or twice that when the model also outputs its variance (the second half). */
int unet_out_channels(const UNetConfig *c);
/* Cross-field checks (channels divisible by groups, resolution divisible by 2^(levels-1), ...). */
int unet_config_validate(const UNetConfig *c, char *err, size_t errlen);

typedef struct { /* parameter indices into the table; -1 when absent */
  int norm1_w, norm1_b, conv1_w, conv1_b, temb_w, temb_b, norm2_w, norm2_b, conv2_w, conv2_b, short_w, short_b;
} ResBlockParams;

typedef struct {
  int norm_w, norm_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
} AttnParams;

typedef struct {
  ResBlockParams res[UNET_MAX_RES_BLOCKS + 1];
  AttnParams attn[UNET_MAX_RES_BLOCKS + 1];
  bool has_attn;
  int resample_w, resample_b; /* downsampler (down levels) / upsampler (up levels); -1 if none */
  int resolution, out_ch;
} UNetLevel;

typedef struct {
  UNetConfig cfg;
  ParamTable params;
  int temb1_w, temb1_b, temb2_w, temb2_b, class_emb;
  int conv_in_w, conv_in_b, norm_out_w, norm_out_b, conv_out_w, conv_out_b;
  UNetLevel down[UNET_MAX_LEVELS], up[UNET_MAX_LEVELS];
  ResBlockParams mid_res[2];
  AttnParams mid_attn;
  int pool_norm_w, pool_norm_b, pool_pos, pool_qkv_w, pool_qkv_b, pool_proj_w, pool_proj_b; /* classifier head */
} UNet;

/* The classifier's attention-pool heads: ADM's 64 channels per head (one head below 64 channels). */
int unet_pool_heads(const UNetConfig *c);

/* Register all parameters (finalized, zero-valued, with gradient buffers) in the backend's memory.
 * cfg must be valid. */
void unet_init(UNet *m, const UNetConfig *cfg, const Backend *backend);
/* The same without the weight-gradient buffer (sampling, evaluation, guidance): the backward passes
 * of the denoiser's and classifier's input gradients need none. */
void unet_init_inference(UNet *m, const UNetConfig *cfg, const Backend *backend);
void unet_free(UNet *m);
/* DDPM initialisation: variance_scaling(1, fan_avg, uniform) for weights, zero biases, unit norms,
 * and zero for the last conv of each ResBlock, the attention output projection and conv_out. */
void unet_init_weights(UNet *m, uint64_t seed);

/* Floats of the parameter table of a (valid) config, without allocating it. */
size_t unet_param_floats(const UNetConfig *cfg);
/* Activation memory (the autograd arenas' high-water mark in bytes, graph_high_water) of one forward pass at batch B
 * (1 or 2), with its backward when train; *flops (may be NULL) gets the forward FLOPs per image. */
size_t unet_activation_bytes(UNet *m, int B, bool train, double *flops);

/* x (B, in_channels, res, res), t (B) timesteps as floats, labels (B) or NULL -> (B, unet_out_channels, res, res);
 * a classifier (no labels) -> logits (B, num_classes). */
Tensor *unet_forward(UNet *m, Graph *g, Tensor *x, Tensor *t, const int *labels);

#endif
