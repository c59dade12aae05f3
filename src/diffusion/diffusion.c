/* diffusion.c - schedules and marginals of the supported noise processes; see diffusion.h.
 *
 * DDPM (Ho et al. 2020): beta linear in [beta_start, beta_end]; cosine (Nichol & Dhariwal 2021):
 *   alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), beta_t = min(1 - ab_t/ab_{t-1}, 0.999).
 * NCSN (Song & Ermon 2019): sigma_i geometric from sigma_min (i = 0) to sigma_max (i = L-1).
 * VP SDE: alpha(t) = exp(-t^2 (b1 - b0)/4 - t b0/2), sigma^2 = 1 - alpha^2.
 * sub-VP SDE: same alpha, sigma = 1 - alpha^2.   VE SDE: alpha = 1, sigma = smin (smax/smin)^t.
 */
#include "diffusion/diffusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define F(k, t, m, lo, hi, help) {k, t, offsetof(DiffusionConfig, m), 0, lo, hi, help}
const CfgField DIFFUSION_CONFIG_FIELDS[] = {
    F("type", CFG_STRING, type, 0, 0, "ddpm | ncsn | vpsde | subvpsde | vesde"),
    F("T", CFG_INT, T, 2, 100000, "ddpm: number of diffusion steps"),
    F("beta_schedule", CFG_STRING, beta_schedule, 0, 0, "ddpm: linear | cosine"),
    F("beta_start", CFG_FLOAT, beta_start, 0.0, 1.0, "ddpm linear: first beta"),
    F("beta_end", CFG_FLOAT, beta_end, 0.0, 1.0, "ddpm linear: last beta"),
    F("cosine_s", CFG_FLOAT, cosine_s, 0.0, 1.0, "ddpm cosine: offset s"),
    F("prediction", CFG_STRING, prediction, 0, 0, "network output: eps | x0 | v"),
    F("sigma_min", CFG_FLOAT, sigma_min, 1e-8, 1e8, "ncsn/vesde: smallest noise level"),
    F("sigma_max", CFG_FLOAT, sigma_max, 1e-8, 1e8, "ncsn/vesde: largest noise level"),
    F("num_scales", CFG_INT, num_scales, 2, 100000, "ncsn: number of noise levels L"),
    F("beta_min", CFG_FLOAT, beta_min, 0.0, 1000.0, "vpsde/subvpsde: beta(0)"),
    F("beta_max", CFG_FLOAT, beta_max, 0.0, 1000.0, "vpsde/subvpsde: beta(1)"),
    F("t_eps", CFG_FLOAT, t_eps, 0.0, 0.5, "continuous SDEs: smallest time"),
};
#undef F
const int DIFFUSION_CONFIG_N_FIELDS = (int)(sizeof DIFFUSION_CONFIG_FIELDS / sizeof DIFFUSION_CONFIG_FIELDS[0]);

void diffusion_config_default(DiffusionConfig *c) {
  memset(c, 0, sizeof *c);
  strcpy(c->type, "ddpm");
  c->T = 1000;
  strcpy(c->beta_schedule, "linear");
  c->beta_start = 1e-4;
  c->beta_end = 0.02;
  c->cosine_s = 0.008;
  strcpy(c->prediction, "eps");
  c->sigma_min = 0.01;
  c->sigma_max = 50.0;
  c->num_scales = 232;
  c->beta_min = 0.1;
  c->beta_max = 20.0;
  c->t_eps = 1e-5;
}

static double cosine_f(double t, double T, double s) {
  const double c = cos(((t / T + s) / (1.0 + s)) * M_PI / 2.0);
  return c * c;
}

int diffusion_init(Diffusion *d, const DiffusionConfig *cfg, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  d->cfg = *cfg;
  static const char *const kinds[] = {"ddpm", "ncsn", "vpsde", "subvpsde", "vesde"};
  int k = -1;
  for (int i = 0; i < 5; i++)
    if (!strcmp(cfg->type, kinds[i])) k = i;
  if (k < 0) return errorf(err, errlen, "diffusion.type: '%s' is not one of ddpm, ncsn, vpsde, subvpsde, vesde", cfg->type);
  d->kind = (DiffusionKind)k;
  if (!strcmp(cfg->prediction, "eps")) d->prediction = PRED_EPS;
  else if (!strcmp(cfg->prediction, "x0")) d->prediction = PRED_X0;
  else if (!strcmp(cfg->prediction, "v")) d->prediction = PRED_V;
  else return errorf(err, errlen, "diffusion.prediction: '%s' is not one of eps, x0, v", cfg->prediction);
  if (d->kind != DIFFUSION_DDPM && d->prediction != PRED_EPS)
    return errorf(err, errlen, "diffusion.prediction: %s is only supported for type ddpm (score models predict eps)",
                  cfg->prediction);
  d->discrete = d->kind == DIFFUSION_DDPM || d->kind == DIFFUSION_NCSN;
  if (d->kind == DIFFUSION_DDPM) {
    const int T = cfg->T;
    d->n_levels = T;
    d->betas = xmalloc((size_t)T * sizeof(double));
    d->alphas_cumprod = xmalloc((size_t)T * sizeof(double));
    if (!strcmp(cfg->beta_schedule, "linear")) {
      if (!(cfg->beta_start > 0 && cfg->beta_end < 1 && cfg->beta_start <= cfg->beta_end))
        return errorf(err, errlen, "diffusion: need 0 < beta_start <= beta_end < 1");
      for (int t = 0; t < T; t++) d->betas[t] = cfg->beta_start + (cfg->beta_end - cfg->beta_start) * t / (T - 1);
    } else if (!strcmp(cfg->beta_schedule, "cosine")) {
      const double f0 = cosine_f(0, T, cfg->cosine_s);
      for (int t = 0; t < T; t++) {
        const double ab = cosine_f(t + 1, T, cfg->cosine_s) / f0, ab_prev = cosine_f(t, T, cfg->cosine_s) / f0;
        d->betas[t] = fmin(1.0 - ab / ab_prev, 0.999);
      }
    } else {
      return errorf(err, errlen, "diffusion.beta_schedule: '%s' is not one of linear, cosine", cfg->beta_schedule);
    }
    double ab = 1.0;
    for (int t = 0; t < T; t++) d->alphas_cumprod[t] = ab *= 1.0 - d->betas[t];
  } else if (d->kind == DIFFUSION_NCSN || d->kind == DIFFUSION_VESDE) {
    if (!(cfg->sigma_min < cfg->sigma_max))
      return errorf(err, errlen, "diffusion: need sigma_min < sigma_max");
    if (d->kind == DIFFUSION_NCSN) {
      const int L = cfg->num_scales;
      d->n_levels = L;
      d->sigmas = xmalloc((size_t)L * sizeof(double));
      for (int i = 0; i < L; i++)
        d->sigmas[i] = cfg->sigma_min * pow(cfg->sigma_max / cfg->sigma_min, (double)i / (L - 1));
    }
  } else if (!(cfg->beta_min > 0 && cfg->beta_min < cfg->beta_max)) {
    return errorf(err, errlen, "diffusion: need 0 < beta_min < beta_max");
  }
  return 0;
}

void diffusion_free(Diffusion *d) {
  free(d->betas);
  free(d->alphas_cumprod);
  free(d->sigmas);
  memset(d, 0, sizeof *d);
}

static double vp_log_alpha(const Diffusion *d, double t) {
  return -0.25 * t * t * (d->cfg.beta_max - d->cfg.beta_min) - 0.5 * t * d->cfg.beta_min;
}

/* Discrete processes at fractional tau (the continuous view samplers use): DDPM interpolates
 * log alpha between integer timesteps with a cubic Hermite curve (C1: DPM-Solver's piecewise-linear
 * choice gives a drift that jumps at every timestep, which costs adaptive ODE solvers accuracy),
 * NCSN's geometric ladder is log sigma linear in tau. At integer tau both are the tables exactly. */
static int discrete_segment(const Diffusion *d, double tau) {
  int n = (int)ceil(tau) - 1; /* tau in (n, n+1]: the segment below tau, where a sampler steps */
  if (n < 0) n = 0;
  if (n > d->n_levels - 2) n = d->n_levels - 2;
  return n;
}

static double ddpm_log_alpha(const Diffusion *d, int t) { return 0.5 * log(d->alphas_cumprod[t]); }

/* Slope of log alpha at knot t for the cubic Hermite interpolant: central difference, one-sided at
 * the ends (a C1 curve through the table, so the ODE samplers see a continuous drift). */
static double ddpm_knot_slope(const Diffusion *d, int t) {
  const int lo = t > 0 ? t - 1 : t, hi = t < d->n_levels - 1 ? t + 1 : t;
  return (ddpm_log_alpha(d, hi) - ddpm_log_alpha(d, lo)) / (hi - lo);
}

/* log alpha and its derivative at fractional tau in segment n (cubic Hermite, w = tau - n). */
static void ddpm_log_alpha_at(const Diffusion *d, double tau, double *la, double *dla) {
  const int n = discrete_segment(d, tau);
  const double w = tau - n, y0 = ddpm_log_alpha(d, n), y1 = ddpm_log_alpha(d, n + 1);
  const double m0 = ddpm_knot_slope(d, n), m1 = ddpm_knot_slope(d, n + 1), w2 = w * w, w3 = w2 * w;
  *la = (2 * w3 - 3 * w2 + 1) * y0 + (w3 - 2 * w2 + w) * m0 + (-2 * w3 + 3 * w2) * y1 + (w3 - w2) * m1;
  *dla = (6 * w2 - 6 * w) * y0 + (3 * w2 - 4 * w + 1) * m0 + (-6 * w2 + 6 * w) * y1 + (3 * w2 - 2 * w) * m1;
}

void diffusion_marginal(const Diffusion *d, double tau, double *alpha, double *sigma) {
  CHECK(tau >= diffusion_tau_min(d) - 1e-9 && tau <= diffusion_tau_max(d) + 1e-9);
  switch (d->kind) {
    case DIFFUSION_DDPM: {
      if (tau == floor(tau)) {
        const int t = (int)tau;
        *alpha = sqrt(d->alphas_cumprod[t]);
        *sigma = sqrt(1.0 - d->alphas_cumprod[t]);
        return;
      }
      double la, dla;
      ddpm_log_alpha_at(d, tau, &la, &dla);
      *alpha = exp(la);
      *sigma = sqrt(-expm1(2.0 * la));
      return;
    }
    case DIFFUSION_NCSN:
      *alpha = 1.0;
      *sigma = tau == floor(tau) ? d->sigmas[(int)tau]
                                 : d->cfg.sigma_min * pow(d->cfg.sigma_max / d->cfg.sigma_min, tau / (d->n_levels - 1));
      return;
    case DIFFUSION_VPSDE: {
      const double la = vp_log_alpha(d, tau);
      *alpha = exp(la);
      *sigma = sqrt(-expm1(2.0 * la));
      return;
    }
    case DIFFUSION_SUBVPSDE: {
      const double la = vp_log_alpha(d, tau);
      *alpha = exp(la);
      *sigma = -expm1(2.0 * la);
      return;
    }
    case DIFFUSION_VESDE:
      *alpha = 1.0;
      *sigma = d->cfg.sigma_min * pow(d->cfg.sigma_max / d->cfg.sigma_min, tau);
      return;
  }
  CHECK(0 && "unknown diffusion kind");
}

void diffusion_log_derivatives(const Diffusion *d, double tau, double *dlog_alpha, double *dlog_sigma) {
  double alpha, sigma;
  diffusion_marginal(d, tau, &alpha, &sigma);
  const double a2 = alpha * alpha;
  switch (d->kind) {
    case DIFFUSION_DDPM: { /* sigma^2 = 1 - alpha^2 */
      double la;
      ddpm_log_alpha_at(d, tau, &la, dlog_alpha);
      *dlog_sigma = -a2 * *dlog_alpha / (sigma * sigma);
      return;
    }
    case DIFFUSION_NCSN:
      *dlog_alpha = 0.0;
      *dlog_sigma = log(d->cfg.sigma_max / d->cfg.sigma_min) / (d->n_levels - 1);
      return;
    case DIFFUSION_VPSDE: /* d log alpha = -beta(t)/2 */
      *dlog_alpha = -0.5 * (d->cfg.beta_min + tau * (d->cfg.beta_max - d->cfg.beta_min));
      *dlog_sigma = -a2 * *dlog_alpha / (sigma * sigma);
      return;
    case DIFFUSION_SUBVPSDE: /* sigma = 1 - alpha^2 */
      *dlog_alpha = -0.5 * (d->cfg.beta_min + tau * (d->cfg.beta_max - d->cfg.beta_min));
      *dlog_sigma = -2.0 * a2 * *dlog_alpha / sigma;
      return;
    case DIFFUSION_VESDE:
      *dlog_alpha = 0.0;
      *dlog_sigma = log(d->cfg.sigma_max / d->cfg.sigma_min);
      return;
  }
  CHECK(0 && "unknown diffusion kind");
}

void diffusion_sde(const Diffusion *d, double tau, double *f, double *g2) {
  double alpha, sigma, dls;
  diffusion_marginal(d, tau, &alpha, &sigma);
  diffusion_log_derivatives(d, tau, f, &dls);
  *g2 = 2.0 * sigma * sigma * (dls - *f);
}

double diffusion_label(const Diffusion *d, double tau) {
  if (d->kind == DIFFUSION_DDPM) return tau;
  if (d->kind == DIFFUSION_NCSN) return 999.0 * tau / (d->n_levels - 1);
  return 999.0 * tau;
}

double diffusion_sample_tau(const Diffusion *d, double u) {
  if (d->discrete) {
    int i = (int)(u * d->n_levels);
    return i >= d->n_levels ? d->n_levels - 1 : i;
  }
  return d->cfg.t_eps + (1.0 - d->cfg.t_eps) * u;
}

double diffusion_tau_max(const Diffusion *d) { return d->discrete ? d->n_levels - 1 : 1.0; }
double diffusion_tau_min(const Diffusion *d) { return d->discrete ? 0.0 : d->cfg.t_eps; }

double diffusion_prior_std(const Diffusion *d) {
  if (d->kind == DIFFUSION_NCSN || d->kind == DIFFUSION_VESDE) {
    double alpha, sigma;
    diffusion_marginal(d, diffusion_tau_max(d), &alpha, &sigma);
    return sigma;
  }
  return 1.0;
}
