/* test_schedule.c - learning-rate and EMA-decay schedules (train/schedule.h) against their closed
 * forms at the points that pin them down: the warmup ramp, the cosine's midpoint and end, the inverse
 * square root's 1/sqrt law, the power EMA's (1 - 1/s)^(gamma + 1) and the fixed EMA's warmup; unknown
 * names are refused naming the key. */
#include <math.h>
#include <string.h>

#include "train/schedule.h"
#include "test_util.h"

static TrainConfig config(const char *lr_schedule, double warmup, int steps) {
  TrainConfig t;
  train_config_default(&t);
  strcpy(t.lr_schedule, lr_schedule);
  t.lr = 1e-3, t.warmup = warmup, t.steps = steps;
  return t;
}

static void expect_near(const char *what, double got, double want) {
  EXPECT(fabs(got - want) <= 1e-15 + 1e-12 * fabs(want), "%s: %.17g, expected %.17g", what, got, want);
}

int main(void) {
  /* constant: the warmup ramp s / W, then lr (the trainer's schedule before schedules existed) */
  TrainConfig t = config("constant", 100, 1000);
  expect_near("constant, step 1", schedule_lr(&t, 1), 1e-3 / 100);
  expect_near("constant, step 50", schedule_lr(&t, 50), 1e-3 * 0.5);
  expect_near("constant, step 100", schedule_lr(&t, 100), 1e-3);
  expect_near("constant, step 1000", schedule_lr(&t, 1000), 1e-3);
  t.warmup = 0;
  expect_near("constant, no warmup", schedule_lr(&t, 1), 1e-3);

  /* cosine: lr at the end of the warmup, lr / 2 halfway through the rest, 0 at the last step */
  t = config("cosine", 100, 1100);
  expect_near("cosine, step 50 (warmup)", schedule_lr(&t, 50), 1e-3 * 0.5);
  expect_near("cosine, step 100", schedule_lr(&t, 100), 1e-3);
  expect_near("cosine, step 600", schedule_lr(&t, 600), 1e-3 * 0.5);
  expect_near("cosine, step 350", schedule_lr(&t, 350), 1e-3 * 0.5 * (1 + cos(M_PI / 4)));
  EXPECT(fabs(schedule_lr(&t, 1100)) < 1e-18, "cosine at the last step: %.3g", schedule_lr(&t, 1100));
  t = config("cosine", 0, 10);
  expect_near("cosine, no warmup, step 5", schedule_lr(&t, 5), 1e-3 * 0.5);

  /* inverse_sqrt: lr at the end of the warmup, then lr sqrt(W / s): half of it at s = 4 W */
  t = config("inverse_sqrt", 100, 100000);
  expect_near("inverse_sqrt, step 25", schedule_lr(&t, 25), 1e-3 * 0.25);
  expect_near("inverse_sqrt, step 100", schedule_lr(&t, 100), 1e-3);
  expect_near("inverse_sqrt, step 400", schedule_lr(&t, 400), 1e-3 * 0.5);
  expect_near("inverse_sqrt, step 10000", schedule_lr(&t, 10000), 1e-3 * 0.1);
  t.warmup = 0;
  expect_near("inverse_sqrt, no warmup, step 4", schedule_lr(&t, 4), 1e-3 * 0.5);

  /* EMA: fixed with warmup min(decay, s / (9 + s)) (= (1 + step) / (10 + step) for the 0-based step),
   * fixed without, power (1 - 1/s)^(gamma + 1) */
  t = config("constant", 0, 10);
  t.ema_decay = 0.999, t.ema_warmup = true;
  expect_near("fixed EMA with warmup, step 1", schedule_ema_decay(&t, 1), 0.1);
  expect_near("fixed EMA with warmup, step 91", schedule_ema_decay(&t, 91), 0.91);
  expect_near("fixed EMA with warmup, step 1e6", schedule_ema_decay(&t, 1000000), 0.999);
  t.ema_warmup = false;
  expect_near("fixed EMA, step 1", schedule_ema_decay(&t, 1), 0.999);
  strcpy(t.ema_profile, "power");
  t.ema_gamma = 6.94;
  expect_near("power EMA, step 1 (no memory)", schedule_ema_decay(&t, 1), 0.0);
  expect_near("power EMA, step 1000", schedule_ema_decay(&t, 1000), pow(0.999, 7.94));
  EXPECT(schedule_ema_decay(&t, 100) < schedule_ema_decay(&t, 1000) && schedule_ema_decay(&t, 1000) < 1.0,
         "the power EMA's decay rises towards 1");

  char err[256];
  t = config("constant", 0, 10);
  EXPECT(schedule_check(&t, err, sizeof err) == 0, "constant/fixed refused: %s", err);
  strcpy(t.lr_schedule, "linear");
  EXPECT(schedule_check(&t, err, sizeof err) != 0 && strstr(err, "train.lr_schedule: 'linear'"), "bad lr_schedule: '%s'", err);
  t = config("cosine", 0, 10);
  strcpy(t.ema_profile, "karras");
  EXPECT(schedule_check(&t, err, sizeof err) != 0 && strstr(err, "train.ema_profile: 'karras'"), "bad ema_profile: '%s'", err);
  return test_report("schedule");
}
