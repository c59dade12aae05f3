/* time_grid.c - the times a sampler visits; see sampler_time_grid in sampler.h. Discrete spacings
 * follow ermongroup/ddim ("uniform": range(0, T, T // S) generalised to i * T / S; "quadratic":
 * (linspace(0, sqrt(0.8 T), S))^2 truncated) and diffusers' "trailing"; continuous processes space
 * their native tau from tau_min to tau_max (EDM: sigma itself); "logsnr" is DPM-Solver's
 * grid uniform in lambda = log(alpha / sigma), inverted by bisection (lambda decreases in tau);
 * "karras" is EDM's rho = 7 grid in s = sigma / alpha (k-diffusion's get_sigmas_karras), inverted the
 * same way. */
#include <math.h>

#include "algorithms.h"
#include "core/error.h"

static double log_snr(const Diffusion *d, double tau) {
  double alpha, sigma;
  diffusion_marginal(d, tau, &alpha, &sigma);
  return log(alpha / sigma);
}

/* lambda(tau) decreases monotonically: bisection for lambda(tau) = target on [lo, hi]. */
double sampler_tau_at_log_snr(const Diffusion *d, double target, double lo, double hi) {
  for (int it = 0; it < 100 && hi - lo > 1e-12 * (1.0 + hi); it++) {
    const double mid = 0.5 * (lo + hi);
    if (log_snr(d, mid) > target) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

int sampler_time_grid(const Diffusion *d, int steps, Spacing spacing, double *taus, char *err, size_t errlen) {
  if (steps < 1) return errorf(err, errlen, "--steps must be >= 1");
  if (spacing == SPACING_LOGSNR) {
    const double lo = diffusion_tau_min(d), hi = diffusion_tau_max(d);
    if (steps < 2) return errorf(err, errlen, "--steps must be >= 2 for logsnr spacing");
    const double l_hi = log_snr(d, lo), l_lo = log_snr(d, hi);
    taus[0] = hi, taus[steps - 1] = lo;
    for (int i = 1; i + 1 < steps; i++) taus[i] = sampler_tau_at_log_snr(d, l_lo + (l_hi - l_lo) * i / (steps - 1), lo, hi);
  } else if (spacing == SPACING_KARRAS) {
    const double lo = diffusion_tau_min(d), hi = diffusion_tau_max(d), rho = 7.0;
    if (steps < 2) return errorf(err, errlen, "--steps must be >= 2 for karras spacing");
    const double s_min = pow(sigma_space_sigma(d, lo), 1.0 / rho), s_max = pow(sigma_space_sigma(d, hi), 1.0 / rho);
    taus[0] = hi, taus[steps - 1] = lo;
    for (int i = 1; i + 1 < steps; i++)
      taus[i] = sampler_tau_at_log_snr(d, -rho * log(s_max + (s_min - s_max) * i / (steps - 1)), lo, hi);
  } else if (d->discrete) {
    const int L = d->n_levels;
    if (steps > L) return errorf(err, errlen, "--steps %d exceeds the model's %d noise levels", steps, L);
    for (int i = 0; i < steps; i++) { /* ascending, reversed below */
      double t;
      if (spacing == SPACING_UNIFORM) t = (double)((long)i * L / steps);
      else if (spacing == SPACING_TRAILING) t = round((double)(i + 1) * L / steps) - 1.0;
      else t = steps == 1 ? 0.0 : floor(pow(sqrt(0.8 * L) * i / (steps - 1), 2));
      taus[steps - 1 - i] = t;
    }
  } else {
    if (steps < 2) return errorf(err, errlen, "--steps must be >= 2 for a continuous-time model");
    const double t_min = diffusion_tau_min(d), t_max = diffusion_tau_max(d);
    for (int i = 0; i < steps; i++) {
      const double u = (double)i / (steps - 1);
      taus[steps - 1 - i] = t_min + (t_max - t_min) * (spacing == SPACING_QUADRATIC ? u * u : u);
    }
  }
  for (int i = 0; i + 1 < steps; i++)
    if (!(taus[i] > taus[i + 1]))
      return errorf(err, errlen, "--steps %d with this spacing repeats timestep %g; use fewer steps or another --spacing",
                    steps, taus[i]);
  return 0;
}
