/* diffusion.h - noise processes and their training objectives.
 *
 * Every process is described by its marginal x_tau = alpha(tau) x0 + sigma(tau) eps, where tau is
 * the process's native time: a discrete index for DDPM (t in 0..T-1) and NCSN (noise level i in
 * 0..L-1, sigma increasing with i), continuous t in [t_eps, 1] for the VP, sub-VP and VE SDEs
 * (Song et al. 2021), sigma itself in [sigma_min, sigma_max] for EDM (Karras et al. 2022: alpha = 1),
 * and t in [t_eps, 1 - t_eps] for flow matching (alpha = 1 - t, sigma = t: the linear interpolant
 * of rectified flow, Lipman et al. 2023, Liu et al. 2023). The network F sees (c_in x_tau,
 * label(tau)), label on the DDPM scale [0, 999] (EDM: c_noise = ln(sigma) / 4), and its output
 * is interpreted per `prediction` (diffusion_network_io): eps, x0 or v (DDPM only), EDM's
 * preconditioned F, or the flow velocity. For score-based processes the network predicts eps and
 * the score is -eps/sigma, so the sigma^2-weighted denoising score matching loss (Song & Ermon
 * 2019; Song et al. 2021) is lambda(sigma)/sigma^2 * ||eps_hat - eps||^2 with lambda = sigma^2.
 * All schedule quantities are computed in double.
 */
#ifndef DIFFUSION_DIFFUSION_H
#define DIFFUSION_DIFFUSION_H

#include <stdbool.h>
#include <stdint.h>

#include "io/config.h"

typedef enum {
  DIFFUSION_DDPM,
  DIFFUSION_NCSN,
  DIFFUSION_VPSDE,
  DIFFUSION_SUBVPSDE,
  DIFFUSION_VESDE,
  DIFFUSION_EDM,
  DIFFUSION_FLOW
} DiffusionKind;
typedef enum { PRED_EPS, PRED_X0, PRED_V, PRED_EDM, PRED_VELOCITY } Prediction;

typedef struct {
  char type[CFG_STRING_MAX];          /* ddpm | ncsn | vpsde | subvpsde | vesde | edm | flow */
  int T;                              /* ddpm: diffusion steps */
  char beta_schedule[CFG_STRING_MAX]; /* ddpm: linear | cosine */
  double beta_start, beta_end;        /* ddpm linear schedule */
  double cosine_s;                    /* ddpm cosine schedule offset */
  char prediction[CFG_STRING_MAX];    /* eps | x0 | v (ddpm), edm (edm), velocity (flow) */
  double sigma_min, sigma_max;        /* ncsn, vesde, edm */
  int num_scales;                     /* ncsn: L noise levels */
  double beta_min, beta_max;          /* vpsde, subvpsde: beta(t) = beta_min + t (beta_max - beta_min) */
  double t_eps;                       /* continuous SDEs: smallest training / sampling time; flow: both ends */
  double sigma_data;                  /* edm: the data's standard deviation in the preconditioning */
  double p_mean, p_std;               /* edm: ln(sigma) ~ N(p_mean, p_std^2) in training */
  char t_sampling[CFG_STRING_MAX];    /* flow: uniform | logit_normal training times */
  double logit_mean, logit_std;       /* flow logit_normal: t = sigmoid(N(logit_mean, logit_std^2)) */
  bool learn_sigma;                   /* ddpm: the network also outputs v, log variance (1 + v) / 2 log beta_t
                                         + (1 - v) / 2 log beta_tilde_t (Nichol & Dhariwal 2021) */
} DiffusionConfig;

extern const CfgField DIFFUSION_CONFIG_FIELDS[];
extern const int DIFFUSION_CONFIG_N_FIELDS;
void diffusion_config_default(DiffusionConfig *c); /* DDPM, T = 1000, linear 1e-4..0.02, eps */
/* The defaults that depend on the type, applied before a config's own keys: edm sigma 0.002..80 and
 * prediction edm, flow prediction velocity and t_eps 1e-3 (Karras et al. 2022; the flow papers). */
void diffusion_config_type_defaults(DiffusionConfig *c, const char *type);

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
/* The network's time input for tau, on [0, 999] (EDM: ln(sigma) / 4). */
double diffusion_label(const Diffusion *d, double tau);
/* The network's view at tau: it sees c_in x, and eps_hat = c_x x + c_f F. */
void diffusion_network_io(const Diffusion *d, double tau, double *c_in, double *c_x, double *c_f);
/* The training target of F for x_tau = alpha x0 + sigma noise: F* = t_x0 x0 + t_noise noise (for
 * which c_x x_tau + c_f F* = noise). EDM: F* = (x0 - c_skip x) / c_out, whose unweighted MSE is
 * EDM's lambda(sigma)-weighted loss on D; flow: the velocity noise - x0. */
void diffusion_network_target(const Diffusion *d, double tau, double *t_x0, double *t_noise);
/* Training draw of tau from u in [0, 1): uniform index (discrete), t_eps + (1 - t_eps) u (SDEs),
 * exp(p_mean + p_std Phi^-1(u)) (edm), uniform or logit-normal t (flow); the last two are clamped
 * to the process's range. */
double diffusion_sample_tau(const Diffusion *d, double u);
/* Largest tau (start of sampling) and smallest (end). */
double diffusion_tau_max(const Diffusion *d);
double diffusion_tau_min(const Diffusion *d);
/* Standard deviation of the prior x_{tau_max} ~ N(0, s^2): 1 for VP-type processes, sigma_max for VE. */
double diffusion_prior_std(const Diffusion *d);

#endif
