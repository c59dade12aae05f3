/* rk45.h - adaptive Dormand-Prince 5(4) integration of dy/dt = f(y, t) (Dormand & Prince 1980, the
 * tableau of scipy's RK45), used by the probability-flow ODE sampler and the ODE likelihood.
 * Error norm RMS(err / (atol + rtol max(|y|, |y_new|))) over the whole state, step factor
 * 0.9 err^(-1/5) clamped to [0.2, 10], first step 1% of the interval; either direction. Steps are
 * never shorter than RK45_MIN_STEP of the interval: a step that fails the tolerance at that length
 * is taken anyway and counted in a warning on stderr (tolerances below float32's precision). */
#ifndef SAMPLERS_RK45_H
#define SAMPLERS_RK45_H

#include <stddef.h>

#define RK45_MIN_STEP 1e-5
#define RK45_MIN_TOLERANCE 1e-7 /* about float32's epsilon */

typedef void (*OdeField)(void *ctx, float *dy, const float *y, double t);

/* Floats of work memory rk45_integrate needs for an n-float state. */
size_t rk45_work_floats(size_t n);
/* rtol and atol in [RK45_MIN_TOLERANCE, 1]: 0, or -1 + a message naming --rtol / --atol. */
int rk45_check_tolerances(double rtol, double atol, char *err, size_t errlen);
/* Integrate y (n) from t0 to t1 in place. Returns the number of evaluations of f. */
long rk45_integrate(OdeField f, void *ctx, float *y, size_t n, double t0, double t1, double rtol, double atol,
                    float *work);

#endif
