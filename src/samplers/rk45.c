/* rk45.c - adaptive Dormand-Prince 5(4); see rk45.h. */
#include "samplers/rk45.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"


static const double DP_C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double DP_A[7][6] = {
    {0},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}, /* = the fifth-order weights */
};
/* E = b5 - b4: the error estimate */
static const double DP_E[7] = {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40};

size_t rk45_work_floats(size_t n) { return 8 * n; }

int rk45_check_tolerances(double rtol, double atol, char *err, size_t errlen) {
  if (rtol >= RK45_MIN_TOLERANCE && rtol <= 1.0 && atol >= RK45_MIN_TOLERANCE && atol <= 1.0) return 0;
  return errorf(err, errlen, "--rtol %g and --atol %g must be in [%g, 1] (float32 arithmetic cannot resolve tighter "
                "tolerances)", rtol, atol, RK45_MIN_TOLERANCE);
}

long rk45_integrate(OdeField f, void *ctx, float *y, size_t n, double t0, double t1, double rtol, double atol,
                    float *work) {
  float *k[7], *ys = work + 7 * n;
  for (int s = 0; s < 7; s++) k[s] = work + (size_t)s * n;
  const double span = t1 - t0, dir = span > 0 ? 1.0 : -1.0;
  double t = t0, h = 0.01 * span;
  const double h_min = RK45_MIN_STEP * fabs(span);
  long evals = 1, forced = 0;
  f(ctx, k[0], y, t);
  while (dir * (t1 - t) > 1e-12 * fabs(span)) {
    if (dir * (t + h - t1) > 0) h = t1 - t;
    for (int s = 1; s < 7; s++) {
      for (size_t j = 0; j < n; j++) {
        double acc = 0;
        for (int q = 0; q < s; q++) acc += DP_A[s][q] * k[q][j];
        ys[j] = y[j] + (float)(h * acc);
      }
      f(ctx, k[s], ys, t + DP_C[s] * h);
      evals++;
    }
    /* ys is the fifth-order solution; stage 7 was evaluated there (first same as last) */
    double err2 = 0;
    for (size_t j = 0; j < n; j++) {
      double e = 0;
      for (int s = 0; s < 7; s++) e += DP_E[s] * k[s][j];
      const double scale = atol + rtol * fmax(fabs(y[j]), fabs(ys[j]));
      err2 += (h * e / scale) * (h * e / scale);
    }
    const double err = sqrt(err2 / (double)n);
    const double factor = err == 0.0 ? 10.0 : fmin(10.0, fmax(0.2, 0.9 * pow(err, -0.2)));
    if (err <= 1.0) {
      t += h;
      memcpy(y, ys, n * sizeof(float));
      memcpy(k[0], k[6], n * sizeof(float));
    }
    if (err > 1.0 && fabs(h) <= h_min) { /* the tolerance is out of float32's reach here: step on anyway */
      t += h;
      memcpy(y, ys, n * sizeof(float));
      memcpy(k[0], k[6], n * sizeof(float));
      forced++;
    }
    h *= err <= 1.0 ? factor : fmin(1.0, factor);
    if (fabs(h) < h_min) h = dir * h_min;
  }
  if (forced)
    fprintf(stderr, "diffuse: warning: rk45 could not meet rtol %g / atol %g in %ld of its steps (float32 precision); "
            "they were taken at the minimum step, %g of the interval\n", rtol, atol, forced, RK45_MIN_STEP);
  return evals;
}
