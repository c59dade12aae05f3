/* shapes.h - the geometry of a convolution or a pooling window, shared by the kernels (ops/) and
 * the backends' op tables, which take it as one argument.
 *
 * Kernel (kh, kw), stride (sh, sw) and explicit per-side zero padding, so both symmetric padding
 * and TensorFlow "SAME" padding (extra row/column on the bottom/right) are expressible.
 * Convolution output: Ho = (H + pad_top + pad_bottom - kh) / sh + 1, likewise Wo.
 * Pooling (square windows, PyTorch floor mode): Ho = (H + 2 pad - k) / stride + 1.
 */
#ifndef DIFFUSE_CORE_SHAPES_H
#define DIFFUSE_CORE_SHAPES_H

typedef struct {
  int B, Cin, H, W, Cout;
  int kh, kw, sh, sw;
  int pad_top, pad_bottom, pad_left, pad_right;
} Conv2dGeom;

static inline int conv2d_out_h(const Conv2dGeom *g) { return (g->H + g->pad_top + g->pad_bottom - g->kh) / g->sh + 1; }
static inline int conv2d_out_w(const Conv2dGeom *g) { return (g->W + g->pad_left + g->pad_right - g->kw) / g->sw + 1; }

typedef struct {
  int B, C, H, W;
  int k, stride, pad;
} Pool2dGeom;

static inline int pool2d_out_h(const Pool2dGeom *g) { return (g->H + 2 * g->pad - g->k) / g->stride + 1; }
static inline int pool2d_out_w(const Pool2dGeom *g) { return (g->W + 2 * g->pad - g->k) / g->stride + 1; }

#endif
