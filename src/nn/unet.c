/* unet.c - DDPM U-Net (Ho et al. 2020, Appendix B; diffusers UNet2DModel naming).
 *
 * Parameter names follow diffusers: down_blocks.{i}.resnets.{j}.*, down_blocks.{i}.attentions.{j}.*,
 * down_blocks.{i}.downsamplers.0.conv.*, mid_block.*, up_blocks.{u}.* (u = 0 is the lowest
 * resolution), time_embedding.linear_{1,2}.*, class_embedding.weight, conv_in/conv_norm_out/conv_out.
 * Attention projections are Linear(C, C) weights used as 1x1 convolutions over (B, C, H, W).
 */
#include "nn/unet.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/init.h"

#define F(k, t, member, lo, hi, help) {k, t, offsetof(UNetConfig, member), 0, lo, hi, help}
#define FL(k, member, count, lo, hi, help) \
  {k, CFG_INT_LIST, offsetof(UNetConfig, member), offsetof(UNetConfig, count), lo, hi, help}
const CfgField UNET_CONFIG_FIELDS[] = {
    F("resolution", CFG_INT, resolution, 4, 1024, "image height = width"),
    F("in_channels", CFG_INT, in_channels, 1, 16, "image channels (also the output channels; twice as many with diffusion.learn_sigma)"),
    F("ch", CFG_INT, ch, 4, 2048, "base channel count"),
    FL("ch_mult", ch_mult, n_ch_mult, 1, 64, "channel multiplier per level"),
    F("num_res_blocks", CFG_INT, num_res_blocks, 1, UNET_MAX_RES_BLOCKS, "ResBlocks per level (down path)"),
    FL("attn_resolutions", attn_resolutions, n_attn_resolutions, 1, 1024, "resolutions with self-attention"),
    F("dropout", CFG_FLOAT, dropout, 0.0, 0.99, "dropout in ResBlocks"),
    F("groups", CFG_INT, groups, 1, 1024, "GroupNorm groups"),
    F("norm_eps", CFG_FLOAT, norm_eps, 0.0, 1.0, "GroupNorm epsilon"),
    F("num_classes", CFG_INT, num_classes, 0, 100000, "class-conditional when > 0; a classifier's classes"),
    F("classifier", CFG_BOOL, classifier, 0, 0, "a noise-conditional classifier for classifier guidance (Dhariwal & Nichol 2021): the encoder half and an attention-pool head"),
};
#undef F
#undef FL
const int UNET_CONFIG_N_FIELDS = (int)(sizeof UNET_CONFIG_FIELDS / sizeof UNET_CONFIG_FIELDS[0]);

void unet_config_default(UNetConfig *c) {
  memset(c, 0, sizeof *c);
  c->resolution = 32;
  c->in_channels = 3;
  c->ch = 128;
  const int mult[4] = {1, 2, 2, 2};
  memcpy(c->ch_mult, mult, sizeof mult);
  c->n_ch_mult = 4;
  c->num_res_blocks = 2;
  c->attn_resolutions[0] = 16;
  c->n_attn_resolutions = 1;
  c->dropout = 0.1;
  c->groups = 32;
  c->norm_eps = 1e-6;
}

int unet_out_channels(const UNetConfig *c) { return c->learn_sigma ? 2 * c->in_channels : c->in_channels; }

/* The channels of the lowest level: the middle block's and the attention pool's. */
static int bottom_channels(const UNetConfig *c) { return c->ch * c->ch_mult[c->n_ch_mult - 1]; }

int unet_pool_heads(const UNetConfig *c) {
  const int C = bottom_channels(c);
  return C >= 64 && C % 64 == 0 ? C / 64 : 1;
}

int unet_config_validate(const UNetConfig *c, char *err, size_t errlen) {
  if (c->n_ch_mult < 1) return errorf(err, errlen, "model.ch_mult: needs at least one level");
  if (c->ch % 2) return errorf(err, errlen, "model.ch: %d must be even (sinusoidal embedding)", c->ch);
  for (int i = 0; i < c->n_ch_mult; i++)
    if ((c->ch * c->ch_mult[i]) % c->groups)
      return errorf(err, errlen, "model.groups: %d does not divide the %d channels of level %d", c->groups,
                    c->ch * c->ch_mult[i], i);
  if (c->resolution % (1 << (c->n_ch_mult - 1)))
    return errorf(err, errlen, "model.resolution: %d is not divisible by 2^%d (one halving per extra level)",
                  c->resolution, c->n_ch_mult - 1);
  if (c->norm_eps <= 0) return errorf(err, errlen, "model.norm_eps: must be > 0");
  if (c->classifier && c->num_classes < 2)
    return errorf(err, errlen, "model.classifier: set model.num_classes to the classes it tells apart (at least 2)");
  for (int a = 0; a < c->n_attn_resolutions; a++) {
    bool found = false;
    for (int i = 0; i < c->n_ch_mult && !found; i++) found = c->resolution >> i == c->attn_resolutions[a];
    if (!found)
      return errorf(err, errlen,
                    "model.attn_resolutions: %d is not a resolution of this model (it has %d down to %d, halving per "
                    "level)",
                    c->attn_resolutions[a], c->resolution, c->resolution >> (c->n_ch_mult - 1));
  }
  /* the weights and their gradients are allocated for any use of the model; beyond 3/4 of the memory
   * nothing is left for activations (and the machine would swap) */
  const double bytes = 2.0 * sizeof(float) * (double)unet_param_floats(c), total = (double)memory_total_bytes();
  if (total > 0 && bytes > 0.75 * total) {
    char need[32], have[32];
    return errorf(err, errlen,
                  "the model has %.0f parameters and needs %s for its weights and gradients alone, more than 3/4 of "
                  "this machine's %s: lower model.ch, model.ch_mult, model.num_res_blocks or model.resolution",
                  bytes / 8.0, format_bytes(need, sizeof need, bytes), format_bytes(have, sizeof have, total));
  }
  return 0;
}

/* ---- parameter registration ---- */

/* Register "<prefix>.<layer>.<leaf>" (prefix may be empty). */
static int add_named(ParamTable *p, const char *prefix, const char *layer, const char *leaf, int ndim,
                     const int *shape) {
  char name[PARAM_NAME_MAX];
  const int len = snprintf(name, sizeof name, "%s%s%s.%s", prefix, *prefix ? "." : "", layer, leaf);
  CHECK(len > 0 && len < (int)sizeof name);
  return params_add(p, name, ndim, shape);
}

static void add_norm(ParamTable *p, const char *prefix, const char *norm, int C, int *w, int *b) {
  *w = add_named(p, prefix, norm, "weight", 1, &C);
  *b = add_named(p, prefix, norm, "bias", 1, &C);
}

static void add_conv(ParamTable *p, const char *prefix, const char *conv, int Cout, int Cin, int k, int *w, int *b) {
  const int sw[4] = {Cout, Cin, k, k};
  *w = add_named(p, prefix, conv, "weight", 4, sw);
  *b = add_named(p, prefix, conv, "bias", 1, &Cout);
}

static void add_linear(ParamTable *p, const char *prefix, const char *lin, int out, int in, int *w, int *b) {
  const int sw[2] = {out, in};
  *w = add_named(p, prefix, lin, "weight", 2, sw);
  *b = add_named(p, prefix, lin, "bias", 1, &out);
}

static void add_resblock(UNet *m, ResBlockParams *r, const char *prefix, int in, int out) {
  ParamTable *p = &m->params;
  add_norm(p, prefix, "norm1", in, &r->norm1_w, &r->norm1_b);
  add_conv(p, prefix, "conv1", out, in, 3, &r->conv1_w, &r->conv1_b);
  add_linear(p, prefix, "time_emb_proj", out, 4 * m->cfg.ch, &r->temb_w, &r->temb_b);
  add_norm(p, prefix, "norm2", out, &r->norm2_w, &r->norm2_b);
  add_conv(p, prefix, "conv2", out, out, 3, &r->conv2_w, &r->conv2_b);
  r->short_w = r->short_b = -1;
  if (in != out) add_conv(p, prefix, "conv_shortcut", out, in, 1, &r->short_w, &r->short_b);
}

static void add_attention(UNet *m, AttnParams *a, const char *prefix, int C) {
  ParamTable *p = &m->params;
  add_norm(p, prefix, "group_norm", C, &a->norm_w, &a->norm_b);
  add_linear(p, prefix, "to_q", C, C, &a->q_w, &a->q_b);
  add_linear(p, prefix, "to_k", C, C, &a->k_w, &a->k_b);
  add_linear(p, prefix, "to_v", C, C, &a->v_w, &a->v_b);
  add_linear(p, prefix, "to_out.0", C, C, &a->out_w, &a->out_b);
}

static bool has_attention(const UNetConfig *c, int resolution) {
  for (int i = 0; i < c->n_attn_resolutions; i++)
    if (c->attn_resolutions[i] == resolution) return true;
  return false;
}

/* Register every parameter of the model in m->params (not allocated yet). */
static void unet_register(UNet *m, const UNetConfig *cfg) {
  memset(m, 0, sizeof *m);
  m->cfg = *cfg;
  ParamTable *p = &m->params;
  params_init(p);
  const int ch = cfg->ch, L = cfg->n_ch_mult, R = cfg->num_res_blocks;
  char prefix[PARAM_NAME_MAX];
  add_conv(p, "", "conv_in", ch, cfg->in_channels, 3, &m->conv_in_w, &m->conv_in_b);
  add_linear(p, "time_embedding", "linear_1", 4 * ch, ch, &m->temb1_w, &m->temb1_b);
  add_linear(p, "time_embedding", "linear_2", 4 * ch, 4 * ch, &m->temb2_w, &m->temb2_b);
  const int class_shape[2] = {cfg->num_classes + (cfg->null_class ? 1 : 0), 4 * ch};
  m->class_emb = cfg->num_classes > 0 && !cfg->classifier ? add_named(p, "", "class_embedding", "weight", 2, class_shape) : -1;

  int skip_ch[UNET_MAX_LEVELS * (UNET_MAX_RES_BLOCKS + 1) + 1], n_skip = 0;
  skip_ch[n_skip++] = ch;
  int cur = ch, res = cfg->resolution;
  for (int i = 0; i < L; i++) {
    UNetLevel *lv = &m->down[i];
    lv->out_ch = ch * cfg->ch_mult[i];
    lv->resolution = res;
    lv->has_attn = has_attention(cfg, res);
    for (int j = 0; j < R; j++) {
      snprintf(prefix, sizeof prefix, "down_blocks.%d.resnets.%d", i, j);
      add_resblock(m, &lv->res[j], prefix, cur, lv->out_ch);
      cur = lv->out_ch;
      if (lv->has_attn) {
        snprintf(prefix, sizeof prefix, "down_blocks.%d.attentions.%d", i, j);
        add_attention(m, &lv->attn[j], prefix, cur);
      }
      skip_ch[n_skip++] = cur;
    }
    lv->resample_w = lv->resample_b = -1;
    if (i < L - 1) {
      snprintf(prefix, sizeof prefix, "down_blocks.%d.downsamplers.0", i);
      add_conv(p, prefix, "conv", cur, cur, 3, &lv->resample_w, &lv->resample_b);
      skip_ch[n_skip++] = cur;
      res /= 2;
    }
  }
  add_resblock(m, &m->mid_res[0], "mid_block.resnets.0", cur, cur);
  add_attention(m, &m->mid_attn, "mid_block.attentions.0", cur);
  add_resblock(m, &m->mid_res[1], "mid_block.resnets.1", cur, cur);
  if (cfg->classifier) { /* ADM's out = GroupNorm, SiLU, AttentionPool2d(res, cur, 64, num_classes) */
    add_norm(p, "classifier_head", "norm", cur, &m->pool_norm_w, &m->pool_norm_b);
    const int pos_shape[2] = {cur, res * res + 1};
    m->pool_pos = add_named(p, "classifier_head", "attention_pool", "positional_embedding", 2, pos_shape);
    add_linear(p, "classifier_head.attention_pool", "qkv_proj", 3 * cur, cur, &m->pool_qkv_w, &m->pool_qkv_b);
    add_linear(p, "classifier_head.attention_pool", "c_proj", cfg->num_classes, cur, &m->pool_proj_w, &m->pool_proj_b);
    return;
  }
  for (int u = 0; u < L; u++) {
    const int i = L - 1 - u;
    UNetLevel *lv = &m->up[u];
    lv->out_ch = ch * cfg->ch_mult[i];
    lv->resolution = res;
    lv->has_attn = has_attention(cfg, res);
    for (int j = 0; j <= R; j++) {
      snprintf(prefix, sizeof prefix, "up_blocks.%d.resnets.%d", u, j);
      add_resblock(m, &lv->res[j], prefix, cur + skip_ch[--n_skip], lv->out_ch);
      cur = lv->out_ch;
      if (lv->has_attn) {
        snprintf(prefix, sizeof prefix, "up_blocks.%d.attentions.%d", u, j);
        add_attention(m, &lv->attn[j], prefix, cur);
      }
    }
    lv->resample_w = lv->resample_b = -1;
    if (u < L - 1) {
      snprintf(prefix, sizeof prefix, "up_blocks.%d.upsamplers.0", u);
      add_conv(p, prefix, "conv", cur, cur, 3, &lv->resample_w, &lv->resample_b);
      res *= 2;
    }
  }
  CHECK(n_skip == 0);
  add_norm(p, "", "conv_norm_out", ch, &m->norm_out_w, &m->norm_out_b);
  add_conv(p, "", "conv_out", unet_out_channels(cfg), ch, 3, &m->conv_out_w, &m->conv_out_b);
}

void unet_init(UNet *m, const UNetConfig *cfg, const Backend *backend) {
  unet_register(m, cfg);
  params_finalize(&m->params, backend, true);
}

void unet_init_inference(UNet *m, const UNetConfig *cfg, const Backend *backend) {
  unet_register(m, cfg);
  params_finalize(&m->params, backend, false);
}

size_t unet_param_floats(const UNetConfig *cfg) {
  UNet m;
  unet_register(&m, cfg);
  const size_t total = m.params.total;
  unet_free(&m);
  return total;
}

size_t unet_activation_bytes(UNet *m, int B, bool train, double *flops) {
  CHECK(B >= 1 && B <= 2);
  const UNetConfig *c = &m->cfg;
  Graph g;
  graph_init(&g, m->params.backend, 1 << 20);
  g.grad_enabled = train;
  const int xs[4] = {B, c->in_channels, c->resolution, c->resolution};
  Tensor *x = graph_tensor_zeros(&g, 4, xs);
  Tensor *t = graph_tensor_zeros(&g, 1, &B);
  const int labels[2] = {0, 0};
  Tensor *y = unet_forward(m, &g, x, t, c->num_classes > 0 && !c->classifier ? labels : NULL);
  if (flops) *flops = g.flops / B;
  if (train && c->classifier) {
    graph_backward(&g, ag_cross_entropy(&g, y, labels));
  } else if (train) { /* a stand-in loss of the same activation footprint (the variance output: its mean half) */
    Tensor *mean = c->learn_sigma ? ag_channel_slice(&g, y, 0, c->in_channels) : y;
    graph_backward(&g, ag_mse(&g, mean, x));
  }
  const size_t high_water = graph_high_water(&g);
  graph_free(&g);
  if (train) params_zero_grad(&m->params);
  return high_water;
}

void unet_free(UNet *m) { params_free(&m->params); }

/* ---- initialisation ---- */

static void zero_param(UNet *m, int idx) {
  if (idx < 0) return;
  Tensor *t = params_tensor(&m->params, idx);
  m->params.backend->ops->memset(m->params.backend, t->data, 0, t->numel * sizeof(float));
}

void unet_init_weights(UNet *m, uint64_t seed) {
  ParamTable *p = &m->params;
  for (int i = 0; i < p->count; i++) init_param_default(p, i, seed);
  /* DDPM zero-initialises (scale 1e-10) the layers that end a residual branch, and the output */
  for (int lvl = 0; lvl < m->cfg.n_ch_mult; lvl++)
    for (int j = 0; j <= m->cfg.num_res_blocks; j++) {
      if (j < m->cfg.num_res_blocks) {
        zero_param(m, m->down[lvl].res[j].conv2_w);
        if (m->down[lvl].has_attn) zero_param(m, m->down[lvl].attn[j].out_w);
      }
      if (m->cfg.classifier) continue;
      zero_param(m, m->up[lvl].res[j].conv2_w);
      if (m->up[lvl].has_attn) zero_param(m, m->up[lvl].attn[j].out_w);
    }
  zero_param(m, m->mid_res[0].conv2_w);
  zero_param(m, m->mid_res[1].conv2_w);
  zero_param(m, m->mid_attn.out_w);
  if (!m->cfg.classifier) zero_param(m, m->conv_out_w);
}

/* ---- forward ---- */

static Tensor *P(UNet *m, int idx) { return idx < 0 ? NULL : params_tensor(&m->params, idx); }

/* A Linear(C, C) weight seen as a (C, C, 1, 1) convolution kernel (same data and gradient). */
static Tensor *as_pointwise_kernel(Graph *g, Tensor *w) {
  Tensor *v = arena_alloc(&g->arena, sizeof *v);
  *v = *w;
  const int s[4] = {w->shape[0], w->shape[1], 1, 1};
  tensor_set_shape(v, 4, s);
  return v;
}

static Tensor *conv3(UNet *m, Graph *g, Tensor *x, int w, int b) {
  return ag_conv2d(g, x, P(m, w), P(m, b), 1, 1, 1, 1, 1, 1);
}

static Tensor *group_norm(UNet *m, Graph *g, Tensor *x, int w, int b) {
  return ag_group_norm(g, x, P(m, w), P(m, b), m->cfg.groups, (float)m->cfg.norm_eps);
}

static Tensor *group_norm_silu(UNet *m, Graph *g, Tensor *x, int w, int b) {
  return ag_group_norm_silu(g, x, P(m, w), P(m, b), m->cfg.groups, (float)m->cfg.norm_eps);
}

static Tensor *resblock(UNet *m, Graph *g, const ResBlockParams *r, Tensor *x, Tensor *temb_act) {
  Tensor *h = conv3(m, g, group_norm_silu(m, g, x, r->norm1_w, r->norm1_b), r->conv1_w, r->conv1_b);
  h = ag_add_channel(g, h, ag_linear(g, temb_act, P(m, r->temb_w), P(m, r->temb_b)));
  h = group_norm_silu(m, g, h, r->norm2_w, r->norm2_b);
  h = conv3(m, g, ag_dropout(g, h, (float)m->cfg.dropout), r->conv2_w, r->conv2_b);
  Tensor *skip = r->short_w >= 0 ? ag_conv2d(g, x, P(m, r->short_w), P(m, r->short_b), 1, 1, 0, 0, 0, 0) : x;
  return ag_add(g, skip, h);
}

static Tensor *pointwise(UNet *m, Graph *g, Tensor *x, int w, int b) {
  return ag_conv2d(g, x, as_pointwise_kernel(g, P(m, w)), P(m, b), 1, 1, 0, 0, 0, 0);
}

static Tensor *attention(UNet *m, Graph *g, const AttnParams *a, Tensor *x) {
  Tensor *h = group_norm(m, g, x, a->norm_w, a->norm_b);
  Tensor *o = ag_attention(g, pointwise(m, g, h, a->q_w, a->q_b), pointwise(m, g, h, a->k_w, a->k_b),
                           pointwise(m, g, h, a->v_w, a->v_b));
  return ag_add(g, x, pointwise(m, g, o, a->out_w, a->out_b));
}

/* ADM's AttentionPool2d after GroupNorm and SiLU: the spatial mean prepended as token 0, a positional
 * embedding added, multi-head attention (64 channels a head) and the projection of token 0 to the logits
 * (projecting token 0 alone is what ADM's c_proj followed by [:, :, 0] computes). */
static Tensor *attention_pool(UNet *m, Graph *g, Tensor *h) {
  const int C = h->shape[1], heads = unet_pool_heads(&m->cfg), d = C / heads;
  Tensor *tok = ag_pool_tokens(g, group_norm_silu(m, g, h, m->pool_norm_w, m->pool_norm_b), P(m, m->pool_pos));
  Tensor *qkv = pointwise(m, g, tok, m->pool_qkv_w, m->pool_qkv_b); /* (B, 3C, 1, N): q, k, v, heads within */
  Tensor *out = NULL;
  for (int k = 0; k < heads; k++) {
    Tensor *a = ag_attention(g, ag_channel_slice(g, qkv, k * d, d), ag_channel_slice(g, qkv, C + k * d, d),
                             ag_channel_slice(g, qkv, 2 * C + k * d, d));
    out = out ? ag_concat_channels(g, out, a) : a;
  }
  return ag_linear(g, ag_first_token(g, out), P(m, m->pool_proj_w), P(m, m->pool_proj_b));
}

Tensor *unet_forward(UNet *m, Graph *g, Tensor *x, Tensor *t, const int *labels) {
  const UNetConfig *c = &m->cfg;
  const int B = x->shape[0], L = c->n_ch_mult, R = c->num_res_blocks;
  CHECK(x->ndim == 4 && x->shape[1] == c->in_channels && x->shape[2] == c->resolution &&
        x->shape[3] == c->resolution && t->numel == (size_t)B);
  CHECK((labels != NULL) == (c->num_classes > 0 && !c->classifier));

  Tensor *temb = ag_timestep_embedding(g, t, c->ch);
  temb = ag_linear(g, ag_silu(g, ag_linear(g, temb, P(m, m->temb1_w), P(m, m->temb1_b))), P(m, m->temb2_w),
                   P(m, m->temb2_b));
  if (labels) temb = ag_add(g, temb, ag_embedding_lookup(g, P(m, m->class_emb), labels, B));
  Tensor *temb_act = ag_silu(g, temb); /* every ResBlock applies SiLU to temb before its projection */

  Tensor *skips[UNET_MAX_LEVELS * (UNET_MAX_RES_BLOCKS + 1) + 1];
  int n_skip = 0;
  Tensor *h = conv3(m, g, x, m->conv_in_w, m->conv_in_b);
  skips[n_skip++] = h;
  for (int i = 0; i < L; i++) {
    const UNetLevel *lv = &m->down[i];
    for (int j = 0; j < R; j++) {
      const GraphMark block = graph_mark(g); /* grad off: keep only each block's output */
      h = resblock(m, g, &lv->res[j], h, temb_act);
      if (lv->has_attn) h = attention(m, g, &lv->attn[j], h);
      skips[n_skip++] = h = graph_keep_only(g, block, h);
    }
    if (lv->resample_w >= 0) { /* TF "SAME" for stride 2: pad bottom/right by one */
      h = ag_conv2d(g, h, P(m, lv->resample_w), P(m, lv->resample_b), 2, 2, 0, 1, 0, 1);
      skips[n_skip++] = h;
    }
  }
  const GraphMark mid = graph_mark(g);
  h = resblock(m, g, &m->mid_res[0], h, temb_act);
  h = attention(m, g, &m->mid_attn, h);
  h = graph_keep_only(g, mid, resblock(m, g, &m->mid_res[1], h, temb_act));
  if (c->classifier) return attention_pool(m, g, h);
  for (int u = 0; u < L; u++) {
    const UNetLevel *lv = &m->up[u];
    for (int j = 0; j <= R; j++) {
      const GraphMark block = graph_mark(g);
      h = resblock(m, g, &lv->res[j], ag_concat_channels(g, h, skips[--n_skip]), temb_act);
      if (lv->has_attn) h = attention(m, g, &lv->attn[j], h);
      h = graph_keep_only(g, block, h);
    }
    if (lv->resample_w >= 0) h = conv3(m, g, ag_upsample_nearest2x(g, h), lv->resample_w, lv->resample_b);
  }
  CHECK(n_skip == 0);
  h = group_norm_silu(m, g, h, m->norm_out_w, m->norm_out_b);
  return conv3(m, g, h, m->conv_out_w, m->conv_out_b);
}
