/* diffusion.h - noise processes and their training objectives.
 *
 * Every process is described by its marginal x_tau = alpha(tau) x0 + sigma(tau) eps, where tau is
 * the process's native time: a discrete index for DDPM (t in 0..T-1) and NCSN (noise level i in
 * 0..L-1, sigma increasing with i), continuous t in [t_eps, 1] for the VP, sub-VP and VE SDEs
 * (Song et al. 2021). The network always sees (x_tau, label(tau)) with label on the DDPM scale
 * [0, 999] and its output is interpreted per `prediction`: eps, x0 or v (DDPM only). For
 * score-based processes the network predicts eps and the score is -eps/sigma, so the
 * sigma^2-weighted denoising score matching loss (Song & Ermon 2019; Song et al. 2021) is
 * lambda(sigma)/sigma^2 * ||eps_hat - eps||^2 with lambda = sigma^2. All schedule quantities are
 * computed in double.
 */
#ifndef DIFFUSION_DIFFUSION_H
#define DIFFUSION_DIFFUSION_H

#include <stdbool.h>
#include <stdint.h>

#include "io/config.h"

typedef enum { DIFFUSION_DDPM, DIFFUSION_NCSN, DIFFUSION_VPSDE, DIFFUSION_SUBVPSDE, DIFFUSION_VESDE } DiffusionKind;
typedef enum { PRED_EPS, PRED_X0, PRED_V } Prediction;

typedef struct {
  char type[CFG_STRING_MAX];          /* ddpm | ncsn | vpsde | subvpsde | vesde */
  int T;                              /* ddpm: diffusion steps */
  char beta_schedule[CFG_STRING_MAX]; /* ddpm: linear | cosine */
  double beta_start, beta_end;        /* ddpm linear schedule */
  double cosine_s;                    /* ddpm cosine schedule offset */
  char prediction[CFG_STRING_MAX];    /* eps | x0 | v */
  double sigma_min, sigma_max;        /* ncsn, vesde */
  int num_scales;                     /* ncsn: L noise levels */
  double beta_min, beta_max;          /* vpsde, subvpsde: beta(t) = beta_min + t (beta_max - beta_min) */
  double t_eps;                       /* continuous SDEs: smallest training / sampling time */
} DiffusionConfig;

extern const CfgField DIFFUSION_CONFIG_FIELDS[];
extern const int DIFFUSION_CONFIG_N_FIELDS;
void diffusion_config_default(DiffusionConfig *c); /* DDPM, T = 1000, linear 1e-4..0.02, eps */

typedef struct {
  DiffusionConfig cfg;
  DiffusionKind kind;
  Prediction prediction;
  bool discrete;          /* ddpm, ncsn */
  int n_levels;           /* discrete: T or L */
  double *betas;          /* ddpm (T) */
  double *alphas_cumprod; /* ddpm (T) */
  double *sigmas;         /* ncsn (L), increasing */
} Diffusion;

int diffusion_init(Diffusion *d, const DiffusionConfig *cfg, char *err, size_t errlen);
void diffusion_free(Diffusion *d);

/* Marginal coefficients at native time tau. Discrete processes also accept fractional tau (log alpha
 * of DDPM interpolated by a C1 cubic Hermite curve, log sigma of NCSN linearly between levels), which
 * gives every process a continuous-time view for the SDE/ODE samplers; at integer tau the tables are
 * returned exactly. */
void diffusion_marginal(const Diffusion *d, double tau, double *alpha, double *sigma);
/* d log alpha / d tau and d log sigma / d tau (of the interpolating curves for discrete processes;
 * at an integer tau of DDPM, the segment just below it). */
void diffusion_log_derivatives(const Diffusion *d, double tau, double *dlog_alpha, double *dlog_sigma);
/* The forward SDE dx = f x dtau + g dW with these marginals: f = dlog alpha/dtau and
 * g^2 = d sigma^2/dtau - 2 f sigma^2 (VP: f = -beta/2, g^2 = beta; VE: f = 0, g^2 = d sigma^2/dt). */
void diffusion_sde(const Diffusion *d, double tau, double *f, double *g2);
/* The network's time input for tau, on [0, 999]. */
double diffusion_label(const Diffusion *d, double tau);
/* Training draw of tau from u in [0, 1): uniform index (discrete) or t_eps + (1 - t_eps) u. */
double diffusion_sample_tau(const Diffusion *d, double u);
/* Largest tau (start of sampling) and smallest (end). */
double diffusion_tau_max(const Diffusion *d);
double diffusion_tau_min(const Diffusion *d);
/* Standard deviation of the prior x_{tau_max} ~ N(0, s^2): 1 for VP-type processes, sigma_max for VE. */
double diffusion_prior_std(const Diffusion *d);

#endif
