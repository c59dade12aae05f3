/* diffusion.c - schedules and marginals of the supported noise processes; see diffusion.h.
 *
 * DDPM (Ho et al. 2020): beta linear in [beta_start, beta_end]; cosine (Nichol & Dhariwal 2021):
 *   alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), beta_t = min(1 - ab_t/ab_{t-1}, 0.999).
 * NCSN (Song & Ermon 2019): sigma_i geometric from sigma_min (i = 0) to sigma_max (i = L-1).
 * VP SDE: alpha(t) = exp(-t^2 (b1 - b0)/4 - t b0/2), sigma^2 = 1 - alpha^2.
 * sub-VP SDE: same alpha, sigma = 1 - alpha^2.   VE SDE: alpha = 1, sigma = smin (smax/smin)^t.
 * EDM (Karras et al. 2022): alpha = 1, sigma = tau; c_skip = sd^2 / (sigma^2 + sd^2),
 *   c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4.
 * Flow: alpha = 1 - t, sigma = t, velocity v = noise - x0 = dx/dt.
 */
#include "diffusion/diffusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

#define F(k, t, m, lo, hi, help) {k, t, offsetof(DiffusionConfig, m), 0, lo, hi, help}
const CfgField DIFFUSION_CONFIG_FIELDS[] = {
    F("type", CFG_STRING, type, 0, 0, "ddpm | ncsn | vpsde | subvpsde | vesde | edm | flow"),
    F("T", CFG_INT, T, 2, 100000, "ddpm: number of diffusion steps"),
    F("beta_schedule", CFG_STRING, beta_schedule, 0, 0, "ddpm: linear | cosine"),
    F("beta_start", CFG_FLOAT, beta_start, 0.0, 1.0, "ddpm linear: first beta"),
    F("beta_end", CFG_FLOAT, beta_end, 0.0, 1.0, "ddpm linear: last beta"),
    F("cosine_s", CFG_FLOAT, cosine_s, 0.0, 1.0, "ddpm cosine: offset s"),
    F("prediction", CFG_STRING, prediction, 0, 0, "network output: eps | x0 | v (ddpm); edm; velocity (flow)"),
    F("sigma_min", CFG_FLOAT, sigma_min, 1e-8, 1e8, "ncsn/vesde/edm: smallest noise level"),
    F("sigma_max", CFG_FLOAT, sigma_max, 1e-8, 1e8, "ncsn/vesde/edm: largest noise level"),
    F("num_scales", CFG_INT, num_scales, 2, 100000, "ncsn: number of noise levels L"),
    F("beta_min", CFG_FLOAT, beta_min, 0.0, 1000.0, "vpsde/subvpsde: beta(0)"),
    F("beta_max", CFG_FLOAT, beta_max, 0.0, 1000.0, "vpsde/subvpsde: beta(1)"),
    F("t_eps", CFG_FLOAT, t_eps, 0.0, 0.5, "continuous SDEs: smallest time; flow: distance of t from 0 and 1"),
    F("sigma_data", CFG_FLOAT, sigma_data, 1e-6, 1e6, "edm: data standard deviation"),
    F("p_mean", CFG_FLOAT, p_mean, -20.0, 20.0, "edm: mean of ln(sigma) in training"),
    F("p_std", CFG_FLOAT, p_std, 0.0, 20.0, "edm: std of ln(sigma) in training"),
    F("t_sampling", CFG_STRING, t_sampling, 0, 0, "flow: uniform | logit_normal training times"),
    F("logit_mean", CFG_FLOAT, logit_mean, -20.0, 20.0, "flow logit_normal: mean of logit(t)"),
    F("logit_std", CFG_FLOAT, logit_std, 0.0, 20.0, "flow logit_normal: std of logit(t)"),
    F("learn_sigma", CFG_BOOL, learn_sigma, 0, 0, "ddpm: the network also outputs its reverse-step variance (iDDPM; train.loss hybrid or vlb)"),
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
  c->sigma_data = 0.5;
  c->p_mean = -1.2;
  c->p_std = 1.2;
  strcpy(c->t_sampling, "uniform");
  c->logit_mean = 0.0;
  c->logit_std = 1.0;
}

void diffusion_config_type_defaults(DiffusionConfig *c, const char *type) {
  if (!strcmp(type, "edm")) {
    c->sigma_min = 0.002, c->sigma_max = 80.0;
    strcpy(c->prediction, "edm");
  } else if (!strcmp(type, "flow")) {
    strcpy(c->prediction, "velocity");
    c->t_eps = 1e-3; /* t in [1e-3, 0.999]: eps_hat = x + (1 - t) v keeps v to ~1e-4 in float at the top */
  }
}

static double cosine_f(double t, double T, double s) {
  const double c = cos(((t / T + s) / (1.0 + s)) * M_PI / 2.0);
  return c * c;
}

int diffusion_init(Diffusion *d, const DiffusionConfig *cfg, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  d->cfg = *cfg;
  static const char *const kinds[] = {"ddpm", "ncsn", "vpsde", "subvpsde", "vesde", "edm", "flow"};
  int k = -1;
  for (int i = 0; i < 7; i++)
    if (!strcmp(cfg->type, kinds[i])) k = i;
  if (k < 0)
    return errorf(err, errlen, "diffusion.type: '%s' is not one of ddpm, ncsn, vpsde, subvpsde, vesde, edm, flow",
                  cfg->type);
  d->kind = (DiffusionKind)k;
  static const char *const predictions[] = {"eps", "x0", "v", "edm", "velocity"};
  int p = -1;
  for (int i = 0; i < 5; i++)
    if (!strcmp(cfg->prediction, predictions[i])) p = i;
  if (p < 0) return errorf(err, errlen, "diffusion.prediction: '%s' is not one of eps, x0, v, edm, velocity", cfg->prediction);
  d->prediction = (Prediction)p;
  const Prediction own = d->kind == DIFFUSION_EDM ? PRED_EDM : d->kind == DIFFUSION_FLOW ? PRED_VELOCITY : PRED_EPS;
  if (d->kind == DIFFUSION_EDM || d->kind == DIFFUSION_FLOW) {
    if (d->prediction != own)
      return errorf(err, errlen, "diffusion.prediction: type %s trains prediction %s (remove the key), not %s", cfg->type,
                    predictions[own], cfg->prediction);
  } else if (d->prediction == PRED_EDM || d->prediction == PRED_VELOCITY) {
    return errorf(err, errlen, "diffusion.prediction: %s belongs to type %s", cfg->prediction,
                  d->prediction == PRED_EDM ? "edm" : "flow");
  } else if (d->kind != DIFFUSION_DDPM && d->prediction != PRED_EPS) {
    return errorf(err, errlen, "diffusion.prediction: %s is only supported for type ddpm (score models predict eps)",
                  cfg->prediction);
  }
  if (cfg->learn_sigma && d->kind != DIFFUSION_DDPM)
    return errorf(err, errlen, "diffusion.learn_sigma: the learned variance interpolates DDPM's beta and beta-tilde, so "
                               "it needs type ddpm, not %s", cfg->type);
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
  } else if (d->kind == DIFFUSION_FLOW) {
    if (!(cfg->t_eps > 0.0)) return errorf(err, errlen, "diffusion.t_eps: flow needs t_eps > 0 (alpha = 1 - t is 0 at t = 1)");
    if (strcmp(cfg->t_sampling, "uniform") && strcmp(cfg->t_sampling, "logit_normal"))
      return errorf(err, errlen, "diffusion.t_sampling: '%s' is not uniform or logit_normal", cfg->t_sampling);
  } else if (d->kind == DIFFUSION_NCSN || d->kind == DIFFUSION_VESDE || d->kind == DIFFUSION_EDM) {
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
    case DIFFUSION_EDM:
      *alpha = 1.0;
      *sigma = tau;
      return;
    case DIFFUSION_FLOW:
      *alpha = 1.0 - tau;
      *sigma = tau;
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
    case DIFFUSION_EDM:
      *dlog_alpha = 0.0;
      *dlog_sigma = 1.0 / tau;
      return;
    case DIFFUSION_FLOW:
      *dlog_alpha = -1.0 / (1.0 - tau);
      *dlog_sigma = 1.0 / tau;
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
  if (d->kind == DIFFUSION_EDM) return 0.25 * log(tau);
  return 999.0 * tau;
}

void diffusion_network_io(const Diffusion *d, double tau, double *c_in, double *c_x, double *c_f) {
  double a, s;
  diffusion_marginal(d, tau, &a, &s);
  *c_in = 1.0;
  switch (d->prediction) {
    case PRED_EPS: *c_x = 0.0, *c_f = 1.0; return;
    case PRED_X0: *c_x = 1.0 / s, *c_f = -a / s; return;  /* eps = (x - alpha x0_hat) / sigma */
    case PRED_V: *c_x = s, *c_f = a; return;              /* alpha^2 + sigma^2 = 1: eps = sigma x + alpha v */
    case PRED_VELOCITY: *c_x = 1.0, *c_f = a; return;     /* eps = x + (1 - t) v */
    case PRED_EDM: {                                      /* eps = (x - c_skip x - c_out F) / sigma */
      const double sd = d->cfg.sigma_data, q = s * s + sd * sd;
      *c_in = 1.0 / sqrt(q);
      *c_x = (1.0 - sd * sd / q) / s;
      *c_f = -(sd / sqrt(q));
      return;
    }
  }
  CHECK(0 && "unknown prediction");
}

void diffusion_network_target(const Diffusion *d, double tau, double *t_x0, double *t_noise) {
  double a, s;
  diffusion_marginal(d, tau, &a, &s);
  switch (d->prediction) {
    case PRED_EPS: *t_x0 = 0.0, *t_noise = 1.0; return;
    case PRED_X0: *t_x0 = 1.0, *t_noise = 0.0; return;
    case PRED_V: *t_x0 = -s, *t_noise = a; return; /* v = alpha eps - sigma x0 */
    case PRED_VELOCITY: *t_x0 = -1.0, *t_noise = 1.0; return;
    case PRED_EDM: { /* ((1 - c_skip) x0 - c_skip sigma noise) / c_out */
      const double sd = d->cfg.sigma_data, q = s * s + sd * sd, c_skip = sd * sd / q, c_out = s * sd / sqrt(q);
      *t_x0 = (1.0 - c_skip) / c_out;
      *t_noise = -c_skip * s / c_out;
      return;
    }
  }
  CHECK(0 && "unknown prediction");
}

double diffusion_sample_tau(const Diffusion *d, double u) {
  if (d->discrete) {
    int i = (int)(u * d->n_levels);
    return i >= d->n_levels ? d->n_levels - 1 : i;
  }
  const double lo = diffusion_tau_min(d), hi = diffusion_tau_max(d);
  if (d->kind == DIFFUSION_EDM) return fmin(hi, fmax(lo, exp(d->cfg.p_mean + d->cfg.p_std * normal_quantile(u))));
  if (d->kind == DIFFUSION_FLOW) {
    if (!strcmp(d->cfg.t_sampling, "uniform")) return lo + (hi - lo) * u;
    const double t = 1.0 / (1.0 + exp(-(d->cfg.logit_mean + d->cfg.logit_std * normal_quantile(u))));
    return fmin(hi, fmax(lo, t));
  }
  return d->cfg.t_eps + (1.0 - d->cfg.t_eps) * u;
}

double diffusion_tau_max(const Diffusion *d) {
  if (d->discrete) return d->n_levels - 1;
  if (d->kind == DIFFUSION_EDM) return d->cfg.sigma_max;
  if (d->kind == DIFFUSION_FLOW) return 1.0 - d->cfg.t_eps;
  return 1.0;
}

double diffusion_tau_min(const Diffusion *d) {
  if (d->discrete) return 0.0;
  if (d->kind == DIFFUSION_EDM) return d->cfg.sigma_min;
  return d->cfg.t_eps;
}

double diffusion_prior_std(const Diffusion *d) {
  if (d->kind == DIFFUSION_NCSN || d->kind == DIFFUSION_VESDE || d->kind == DIFFUSION_EDM) {
    double alpha, sigma;
    diffusion_marginal(d, diffusion_tau_max(d), &alpha, &sigma);
    return sigma;
  }
  return 1.0;
}
