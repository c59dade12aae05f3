/* schedule.c - learning-rate and EMA-decay schedules (see schedule.h). */
#include "train/schedule.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

double schedule_lr(const TrainConfig *t, long s) {
  const double W = t->warmup, step = (double)s;
  const double warm = W > 0 ? fmin(1.0, step / W) : 1.0;
  if (!strcmp(t->lr_schedule, "cosine")) {
    const double span = t->steps - W;
    const double p = span > 0 ? fmin(1.0, fmax(0.0, (step - W) / span)) : 1.0;
    return t->lr * warm * 0.5 * (1.0 + cos(M_PI * p));
  }
  if (!strcmp(t->lr_schedule, "inverse_sqrt")) return t->lr * warm * sqrt(fmax(W, 1.0) / fmax(step, fmax(W, 1.0)));
  return t->lr * warm;
}

double schedule_ema_decay(const TrainConfig *t, long s) {
  if (!strcmp(t->ema_profile, "power")) return pow(1.0 - 1.0 / (double)s, t->ema_gamma + 1.0);
  return t->ema_warmup ? fmin(t->ema_decay, (double)s / (9.0 + s)) : t->ema_decay;
}

int schedule_check(const TrainConfig *t, char *err, size_t errlen) {
  const char *const lr[] = {"constant", "cosine", "inverse_sqrt"}, *const ema[] = {"fixed", "power"};
  bool lr_ok = false, ema_ok = false;
  for (int i = 0; i < 3; i++) lr_ok |= !strcmp(t->lr_schedule, lr[i]);
  for (int i = 0; i < 2; i++) ema_ok |= !strcmp(t->ema_profile, ema[i]);
  if (!lr_ok) return errorf(err, errlen, "train.lr_schedule: '%s' is not constant, cosine or inverse_sqrt", t->lr_schedule);
  if (!ema_ok) return errorf(err, errlen, "train.ema_profile: '%s' is not fixed or power", t->ema_profile);
  return 0;
}
