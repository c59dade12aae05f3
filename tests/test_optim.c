/* test_optim.c - gradient clipping + AdamW + EMA against torch.optim.AdamW for 10 steps, through
 * the CPU backend's sum_squares and fused optim_step as the trainer calls them.
 * Fixture: tests/fixtures/optim.safetensors (scripts/gen_op_fixtures.py). Parameters live in a
 * ParamTable, so the flat-buffer layout (with alignment padding) is exercised too. */
#include <cJSON.h>
#include <math.h>
#include <string.h>

#include "nn/params.h"
#include "test_util.h"

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
  OptimStep os = {cfg_num(cfg, "lr"), cfg_num(cfg, "beta1"), cfg_num(cfg, "beta2"), cfg_num(cfg, "eps"),
                  cfg_num(cfg, "weight_decay"), 0, 1.0f, 0.0};
  const double max_norm = cfg_num(cfg, "max_norm"), ema_decay = cfg_num(cfg, "ema_decay");
  const int steps = (int)cfg_num(cfg, "steps");

  ParamTable pt;
  params_init(&pt);
  const int s0[2] = {5, 3}, s1[1] = {7};
  const int idx[2] = {params_add(&pt, "p0", 2, s0), params_add(&pt, "p1", 1, s1)};
  const Backend *be = backend_cpu();
  params_finalize(&pt, be, true);
  params_alloc_optimizer(&pt);
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 16);
  char key[64], err[256];
  for (int p = 0; p < 2; p++) {
    snprintf(key, sizeof key, "p%d.init", p);
    EXPECT(st_tensor_to_f32(st_find(&st, key), cpu_floats(params_tensor(&pt, idx[p])->data), err, sizeof err) == 0, "%s", err);
  }
  params_alloc_ema(&pt);
  int clipped_steps = 0;
  for (int s = 1; s <= steps; s++) {
    graph_reset(&g);
    params_zero_grad(&pt);
    for (int p = 0; p < 2; p++) {
      snprintf(key, sizeof key, "p%d.grad.%d", p, s);
      EXPECT(st_tensor_to_f32(st_find(&st, key), cpu_floats(params_tensor(&pt, idx[p])->grad), err, sizeof err) == 0, "%s", err);
    }
    const double norm = sqrt(be->ops->sum_squares(be, pt.grad, pt.total));
    const double coef = max_norm / (norm + 1e-6); /* torch.nn.utils.clip_grad_norm_ */
    clipped_steps += norm > max_norm;
    snprintf(key, sizeof key, "grad_norm.%d", s);
    const float norm_f = (float)norm;
    expect_close(key, &norm_f, cpu_floats(fixture_tensor(&g, &st, key)->data), 1, 1e-6);
    os.step = s, os.grad_scale = coef < 1.0 ? (float)coef : 1.0f, os.ema_decay = ema_decay;
    be->ops->optim_step(be, pt.data, pt.grad, pt.adam_m, pt.adam_v, pt.ema, pt.total, &os);
    for (int p = 0; p < 2; p++) {
      const Tensor *t = params_tensor(&pt, idx[p]);
      snprintf(key, sizeof key, "p%d.after.%d", p, s);
      expect_close(key, cpu_floats(t->data), cpu_floats(fixture_tensor(&g, &st, key)->data), t->numel, OPTIM_TOL);
      snprintf(key, sizeof key, "p%d.ema.%d", p, s);
      expect_close(key, cpu_floats(pt.ema) + pt.info[idx[p]].offset, cpu_floats(fixture_tensor(&g, &st, key)->data), t->numel, OPTIM_TOL);
    }
  }
  EXPECT(clipped_steps > 0 && clipped_steps < steps, "clipping active on %d of %d steps: fixture should mix both",
         clipped_steps, steps);
  /* padding between parameters must stay exactly zero through the optimizer */
  for (size_t i = pt.info[idx[0]].numel; i < pt.info[idx[1]].offset; i++)
    EXPECT(cpu_floats(pt.data)[i] == 0.0f && cpu_floats(pt.ema)[i] == 0.0f, "padding element %zu changed", i);
  cJSON_Delete(cfg);
  graph_free(&g);
  params_free(&pt);
  st_free(&st);
  return test_report("optim");
}
