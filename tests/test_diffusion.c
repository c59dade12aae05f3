/* test_diffusion.c - noise processes against reference formulas (fixture from
 * scripts/gen_diffusion_fixtures.py: DDPM linear/cosine, NCSN sigmas, VP/sub-VP/VE marginals), plus
 * the invariants the samplers rely on, and the DDIM sampler on an analytic denoiser. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "diffusion/denoiser.h"
#include "diffusion/diffusion.h"
#include "samplers/ancestral.h"
#include "samplers/ddim.h"
#include "test_util.h"

#define SCHEDULE_TOL 2e-6 /* float32 storage of float64 references */

static void init(Diffusion *d, const char *type, const char *schedule) {
  DiffusionConfig c;
  diffusion_config_default(&c);
  strcpy(c.type, type);
  strcpy(c.beta_schedule, schedule);
  char err[256];
  EXPECT(diffusion_init(d, &c, err, sizeof err) == 0, "%s", err);
}

/* Compare f(tau_i) with the fixture for taus given by `taus` (or 0..n-1 when NULL). */
static void check_curve(const char *what, const Diffusion *d, const SafeTensors *st, const char *name,
                        const float *taus, int which /* 0 alpha, 1 sigma, 2 alpha^2 */) {
  const StTensor *ref = st_find(st, name);
  EXPECT(ref != NULL, "fixture lacks %s", name);
  if (!ref) return;
  float *want = malloc(ref->numel * sizeof(float)), *got = malloc(ref->numel * sizeof(float));
  char err[128];
  st_tensor_to_f32(ref, want, err, sizeof err);
  for (size_t i = 0; i < ref->numel; i++) {
    double a, s;
    diffusion_marginal(d, taus ? taus[i] : (double)i, &a, &s);
    got[i] = (float)(which == 0 ? a : which == 1 ? s : a * a);
  }
  expect_close(what, got, want, ref->numel, SCHEDULE_TOL);
  free(want);
  free(got);
}

/* Gaussian data N(mu, s^2) per coordinate: eps_hat(x, tau) is exact (x = alpha x0 + sigma eps). */
typedef struct {
  const Diffusion *d;
  float mu, s;
} GaussCtx;

static void gauss_eps(Denoiser *self, float *eps, const float *x, int B, double tau) {
  const GaussCtx *g = self->ctx;
  double a, sg;
  diffusion_marginal(g->d, tau, &a, &sg);
  const double var = a * a * g->s * g->s + sg * sg; /* x ~ N(a mu, var); E[eps|x] = sg (x - a mu) / var */
  for (int i = 0; i < B; i++) eps[i] = (float)(sg * (x[i] - a * g->mu) / var);
  self->nfe++;
}

int main(void) {
  SafeTensors st;
  load_fixture(&st, "diffusion.safetensors");
  Diffusion d;
  init(&d, "ddpm", "linear");
  check_curve("ddpm linear alphas_cumprod", &d, &st, "ddpm_linear.alphas_cumprod", NULL, 2);
  diffusion_free(&d);
  init(&d, "ddpm", "cosine");
  check_curve("ddpm cosine alphas_cumprod", &d, &st, "ddpm_cosine.alphas_cumprod", NULL, 2);
  diffusion_free(&d);
  init(&d, "ncsn", "linear");
  check_curve("ncsn sigmas", &d, &st, "ncsn.sigmas", NULL, 1);
  diffusion_free(&d);

  const StTensor *tt = st_find(&st, "sde.t");
  float t[16];
  char err[128];
  EXPECT(tt && tt->numel <= 16 && st_tensor_to_f32(tt, t, err, sizeof err) == 0, "sde.t");
  const char *kinds[3] = {"vpsde", "subvpsde", "vesde"};
  for (int k = 0; k < 3; k++) {
    init(&d, kinds[k], "linear");
    char name[64];
    if (k < 2) {
      snprintf(name, sizeof name, "%s.alpha", kinds[k]);
      check_curve(name, &d, &st, name, t, 0);
    }
    snprintf(name, sizeof name, "%s.sigma", kinds[k]);
    check_curve(name, &d, &st, name, t, 1);
    EXPECT(!d.discrete && diffusion_tau_max(&d) == 1.0, "%s should be continuous on [t_eps, 1]", kinds[k]);
    diffusion_free(&d);
  }

  /* training draws cover the range: discrete indices in [0, T-1], continuous in [t_eps, 1] */
  init(&d, "ddpm", "linear");
  EXPECT(diffusion_sample_tau(&d, 0.0) == 0 && diffusion_sample_tau(&d, 0.99999) == 999, "ddpm tau range");
  EXPECT(diffusion_label(&d, 517) == 517, "ddpm label is the timestep");

  /* DDIM (eta = 0) on exact Gaussian denoiser: samples have the data mean and variance */
  const int N = 20000;
  float *x = malloc(N * sizeof(float)), *work = malloc(N * sizeof(float));
  const char *procs[5] = {"ddpm", "ddpm", "vpsde", "vesde", "ncsn"};
  for (int k = 0; k < 5; k++) {
    const DdimSpacing spacing = k == 0 ? DDIM_UNIFORM : DDIM_TRAILING;
    Diffusion dd;
    init(&dd, procs[k], "linear");
    GaussCtx ctx = {&dd, 0.3f, 0.5f};
    Denoiser den = {gauss_eps, 0, &ctx};
    rng_fill_normal(x, N, 3, (uint64_t)k, 0);
    const float prior = (float)diffusion_prior_std(&dd);
    for (int i = 0; i < N; i++) x[i] *= prior;
    ddim_sample(&dd, &den, x, N, 1, 100, spacing, work);
    double m = 0, v = 0;
    for (int i = 0; i < N; i++) m += x[i];
    m /= N;
    for (int i = 0; i < N; i++) v += (x[i] - m) * (x[i] - m);
    v /= N - 1;
    /* statistical error: mean 0.5/sqrt(N) = 0.0035, variance 0.25 sqrt(2/N) = 0.0025; plus the
     * discretisation error of 100 DDIM steps */
    EXPECT(fabs(m - 0.3) < 0.02 && fabs(sqrt(v) - 0.5) < 0.02, "%s DDIM: mean %.4f (0.3) std %.4f (0.5)", procs[k], m,
           sqrt(v));
    EXPECT(den.nfe == 100, "%s DDIM used %ld evaluations", procs[k], den.nfe);
    diffusion_free(&dd);
  }
  /* DDPM ancestral sampling, both variances, on the same exact denoiser */
  for (int v = 0; v < 2; v++) {
    GaussCtx ctx = {&d, 0.3f, 0.5f};
    Denoiser den = {gauss_eps, 0, &ctx};
    rng_fill_normal(x, N, 4, (uint64_t)v, 0);
    ancestral_sample(&d, &den, x, N, 1, v ? VARIANCE_FIXED_LARGE : VARIANCE_FIXED_SMALL, false, 9, 0, work);
    double m = 0, var = 0;
    for (int i = 0; i < N; i++) m += x[i];
    m /= N;
    for (int i = 0; i < N; i++) var += (x[i] - m) * (x[i] - m);
    var /= N - 1;
    /* fixed_large adds beta_1 = 1e-4 of extra variance at the last step: std 0.5001, within tolerance */
    EXPECT(fabs(m - 0.3) < 0.02 && fabs(sqrt(var) - 0.5) < 0.02, "ancestral (%s): mean %.4f std %.4f",
           v ? "fixed_large" : "fixed_small", m, sqrt(var));
    EXPECT(den.nfe == 1000, "ancestral used %ld evaluations", den.nfe);
  }
  free(x), free(work);
  diffusion_free(&d);
  st_free(&st);
  return test_report("diffusion");
}
