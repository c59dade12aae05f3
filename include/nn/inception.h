/* inception.h - the Inception-v3 network that defines FID (Heusel et al. 2017) and the Inception
 * Score (Salimans et al. 2016), forward only.
 *
 * This is TensorFlow's "inception-2015-12-05" graph as ported by pytorch-fid
 * (pytorch_fid.inception.fid_inception_v3): torchvision's Inception3 layout (Szegedy et al. 2016)
 * with 1008 classes and the FID blocks, whose average pools exclude the zero padding
 * (count_include_pad=False) and whose last block (Mixed_7c) pools its pool branch with a 3x3 max.
 * Every BasicConv2d is conv (no bias) + BatchNorm(eps 1e-3) + ReLU; the BatchNorm is folded into the
 * convolution when the weights are loaded (w' = w * s, b' = beta - mean * s, s = gamma / sqrt(var + eps)).
 *
 * Parameters are named as pytorch-fid's state dict ("Conv2d_1a_3x3.conv.weight",
 * "Mixed_5b.branch1x1.bn.running_var", ..., "fc.weight", "fc.bias"); the weights file is the
 * FID weights converted to safetensors:
 *   download pt_inception-2015-12-05-6726825d.pth from
 *   https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
 *   /usr/bin/python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception.safetensors
 *
 * Input: uint8 images (B, 3, H, W) of any size, preprocessed as pytorch-fid: x / 255, bilinear resize
 * to 299x299 (align_corners=False; skipped when H = W = 299), 2x - 1.
 * Outputs: pool3 (B, 2048), the global average pool of Mixed_7c (FID's features), and the logits
 * (B, 1008) = fc(pool3) (the Inception Score takes softmax(pool3 . fc_weight^T) without the bias,
 * as the TF graph's "softmax" node; inception_read_fc gives the weight for that), and the spatial
 * features of sFID (Nash et al. 2021, as guided-diffusion's evaluator): the first 7 channels of the
 * TF graph's "mixed_6/conv" tensor, which is Mixed_6d's 1x1 branch after its ReLU, 17 x 17, in TF's
 * (H, W, C) order: (B, 2023).
 *
 * Usage:
 *   Inception m;
 *   if (inception_load(&m, backend, path, err, sizeof err) != 0) { report err; }
 *   Graph g; graph_init(&g, backend, 0);
 *   inception_forward(&m, &g, images, B, H, W, pool3, logits);
 *   graph_free(&g); inception_free(&m);
 * or, with parameters from elsewhere (tests: synthetic weights):
 *   inception_init(&m, backend); fill m.params (unfolded, state-dict values); inception_fold(&m, err, errlen);
 */
#ifndef DIFFUSE_NN_INCEPTION_H
#define DIFFUSE_NN_INCEPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "autograd/graph.h"
#include "nn/params.h"

#define INCEPTION_SIZE 299         /* input height = width after the resize */
#define INCEPTION_POOL3_DIM 2048   /* FID features */
#define INCEPTION_NUM_CLASSES 1008 /* logits (the TF graph's 1008 classes) */
#define INCEPTION_SPATIAL_CHANNELS 7 /* sFID: the first channels of TF's "mixed_6/conv" (17 x 17) */
#define INCEPTION_SPATIAL_DIM (INCEPTION_SPATIAL_CHANNELS * 17 * 17)
#define INCEPTION_N_CONV 94        /* BasicConv2d layers */
#define INCEPTION_BN_EPS 1e-3
#ifndef INCEPTION_CHUNK
#define INCEPTION_CHUNK 8          /* images per pass through the network (see inception_forward) */
#endif

typedef struct {
  int cin, cout, kh, kw, stride, pad_h, pad_w; /* symmetric padding: pad_h rows top and bottom */
  /* indices into Inception.params; after folding, conv_w holds w' and bn_b holds b' */
  int conv_w, bn_w, bn_b, bn_mean, bn_var;
} InceptionConv;

typedef struct {
  ParamTable params; /* every state-dict tensor (float32, no gradients); see inception_fold */
  InceptionConv conv[INCEPTION_N_CONV]; /* in state-dict order */
  int fc_w, fc_b;    /* fc.weight (1008, 2048), fc.bias (1008) */
  bool folded;       /* ready for inception_forward */
  float *staging;    /* host: one chunk of images as floats, before the upload */
  size_t staging_floats;
} Inception;

/* Register every parameter (zero-valued) under its state-dict key: for each BasicConv2d
 * "<layer>.conv.weight", "<layer>.bn.weight", "<layer>.bn.bias", "<layer>.bn.running_mean",
 * "<layer>.bn.running_var", then "fc.weight", "fc.bias". No num_batches_tracked. */
void inception_init(Inception *m, const Backend *backend);
/* Fold each BatchNorm into its convolution, in place: conv.weight becomes w * s and bn.bias
 * beta - mean * s with s = gamma / sqrt(running_var + 1e-3); the other bn tensors are then unused.
 * 0, or -1 + a message naming the tensor when a running_var is negative or a value is not finite
 * (the model is then unusable: free it). Call once. */
int inception_fold(Inception *m, char *err, size_t errlen);
/* inception_init + read every tensor from a safetensors file (F32/F16/BF16/F64) + inception_fold.
 * Missing, unexpected (other than "*.num_batches_tracked") or wrong-shaped tensors, non-finite
 * values, a missing or invalid file: -1 + a message naming the file and the tensor (a missing file
 * also says how to download and convert the weights); *m is then released (safe to free again). */
int inception_load(Inception *m, const Backend *backend, const char *path, char *err, size_t errlen);
void inception_free(Inception *m);

/* images (B, 3, H, W) uint8, any H, W >= 1 -> pool3 (B, 2048) and, unless NULL, logits (B, 1008)
 * and spatial (B, INCEPTION_SPATIAL_DIM). The images go through the network INCEPTION_CHUNK at a
 * time (batched convolutions). g is scratch memory: it is reset (graph_reset) before each chunk, so
 * tensors the caller made in it become invalid; nothing is recorded (grad mode is off during the
 * call). Its arena grows to one chunk's stem activations (~25 MB per image) and is reused. */
void inception_forward(Inception *m, Graph *g, const uint8_t *images, int B, int H, int W, float *pool3,
                       float *logits, float *spatial);

/* fc.weight (1008, 2048) and, unless NULL, fc.bias (1008), to the host. */
void inception_read_fc(const Inception *m, float *weight, float *bias);

#endif
