/* test_optim.c - gradient clipping + AdamW + EMA against torch.optim.AdamW for 10 steps.
 * Fixture: tests/fixtures/optim.safetensors (scripts/gen_op_fixtures.py). Parameters live in a
 * ParamTable, so the flat-buffer layout (with alignment padding) is exercised too. */
#include <cJSON.h>
#include <string.h>

#include "nn/params.h"
#include "test_util.h"
#include "train/optim.h"

#define OPTIM_TOL 2e-6 /* fp32 noise over 10 steps */

static double cfg_num(const cJSON *c, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
  EXPECT(cJSON_IsNumber(v), "config key %s missing", k);
  return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

int main(void) {
  SafeTensors st;
  load_fixture(&st, "optim.safetensors");
  cJSON *cfg = cJSON_Parse(st_meta_get(&st, "config"));
  EXPECT(cfg != NULL, "optim fixture has no config");
  const AdamWConfig adam = {cfg_num(cfg, "lr"), cfg_num(cfg, "beta1"), cfg_num(cfg, "beta2"), cfg_num(cfg, "eps"),
                            cfg_num(cfg, "weight_decay")};
  const double max_norm = cfg_num(cfg, "max_norm"), ema_decay = cfg_num(cfg, "ema_decay");
  const int steps = (int)cfg_num(cfg, "steps");

  ParamTable pt;
  params_init(&pt);
  const int s0[2] = {5, 3}, s1[1] = {7};
  const int idx[2] = {params_add(&pt, "p0", 2, s0), params_add(&pt, "p1", 1, s1)};
  params_finalize(&pt);
  params_alloc_optimizer(&pt);
  Graph g;
  graph_init(&g, 1 << 16);
  char key[64], err[256];
  for (int p = 0; p < 2; p++) {
    snprintf(key, sizeof key, "p%d.init", p);
    EXPECT(st_tensor_to_f32(st_find(&st, key), params_tensor(&pt, idx[p])->data, err, sizeof err) == 0, "%s", err);
  }
  params_alloc_ema(&pt);
  int clipped_steps = 0;
  for (int s = 1; s <= steps; s++) {
    graph_reset(&g);
    params_zero_grad(&pt);
    for (int p = 0; p < 2; p++) {
      snprintf(key, sizeof key, "p%d.grad.%d", p, s);
      EXPECT(st_tensor_to_f32(st_find(&st, key), params_tensor(&pt, idx[p])->grad, err, sizeof err) == 0, "%s", err);
    }
    const double norm = grad_clip(pt.grad, pt.total, max_norm);
    clipped_steps += norm > max_norm;
    snprintf(key, sizeof key, "grad_norm.%d", s);
    const float norm_f = (float)norm;
    expect_close(key, &norm_f, fixture_tensor(&g, &st, key)->data, 1, 1e-6);
    adamw_step(pt.data, pt.grad, pt.adam_m, pt.adam_v, pt.total, &adam, s);
    ema_update(pt.ema, pt.data, pt.total, ema_decay);
    for (int p = 0; p < 2; p++) {
      const Tensor *t = params_tensor(&pt, idx[p]);
      snprintf(key, sizeof key, "p%d.after.%d", p, s);
      expect_close(key, t->data, fixture_tensor(&g, &st, key)->data, t->numel, OPTIM_TOL);
      snprintf(key, sizeof key, "p%d.ema.%d", p, s);
      expect_close(key, pt.ema + pt.info[idx[p]].offset, fixture_tensor(&g, &st, key)->data, t->numel, OPTIM_TOL);
    }
  }
  EXPECT(clipped_steps > 0 && clipped_steps < steps, "clipping active on %d of %d steps: fixture should mix both",
         clipped_steps, steps);
  /* padding between parameters must stay exactly zero through the optimizer */
  for (size_t i = pt.info[idx[0]].numel; i < pt.info[idx[1]].offset; i++)
    EXPECT(pt.data[i] == 0.0f && pt.ema[i] == 0.0f, "padding element %zu changed", i);
  cJSON_Delete(cfg);
  graph_free(&g);
  params_free(&pt);
  st_free(&st);
  return test_report("optim");
}
