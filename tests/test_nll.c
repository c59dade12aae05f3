/* test_nll.c - bits/dim: the DDPM variational bound against a PyTorch reference of
 * improved-diffusion's calc_bpd_loop (scripts/gen_nll_fixtures.py, small synthetic-weight U-Net,
 * injected noise), and the probability-flow ODE likelihood against exact log-densities of Gaussian
 * data (exact divergence: the Jacobian is diagonal, so the Rademacher estimate is exact) and of a
 * 2-D Gaussian mixture (the Hutchinson estimate averaged over samples). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "diffusion/denoiser.h"
#include "eval/nll.h"
#include "synthetic.h"
#include "test_util.h"

/* ---- (a) the bound vs PyTorch ---- */
typedef struct {
  const float *z; /* (T, B * per) */
} FixtureNoise;

static void fixture_noise(NoiseSource *self, float *z, int B, size_t per, long draw) {
  const FixtureNoise *f = self->ctx;
  memcpy(z, f->z + (size_t)draw * B * per, (size_t)B * per * sizeof(float));
}

static float *fixture_copy(const SafeTensors *st, const char *name, size_t want) {
  const StTensor *t = st_find(st, name);
  EXPECT(t && t->numel == want, "fixture lacks %s (or has the wrong size)", name);
  if (!t || t->numel != want) exit(1);
  float *v = malloc(want * sizeof(float));
  char err[128];
  st_tensor_to_f32(t, v, err, sizeof err);
  return v;
}

static void check_vlb_reference(void) {
  SafeTensors st;
  load_fixture(&st, "nll_vlb.safetensors");
  enum { T = 20, B = 2 };
  SyntheticDenoiser sd;
  synthetic_denoiser_init(&sd, T, "eps");
  const size_t per = 3 * 16 * 16;
  float *x0 = fixture_copy(&st, "x0", B * per), *z = fixture_copy(&st, "z", (size_t)T * B * per);
  FixtureNoise fn = {z};
  NoiseSource noise = {fixture_noise, 0, 0, &fn};
  float *work = malloc(nll_vlb_work_floats(B, per) * sizeof(float));
  double bpd[B], terms[(T + 1) * B];
  const char *names[2] = {"small.terms", "large.terms"};
  for (int v = 0; v < 2; v++) {
    nll_vlb(&sd.d, &sd.den, &noise, x0, B, per, v ? VARIANCE_FIXED_LARGE : VARIANCE_FIXED_SMALL, 0, bpd, terms, work);
    float *want = fixture_copy(&st, names[v], (T + 1) * B);
    float got[(T + 1) * B];
    for (int i = 0; i < (T + 1) * B; i++) got[i] = (float)terms[i];
    /* float32 network in both; float64 bound arithmetic in both: 1e-4 of the terms' scale */
    expect_close(names[v], got, want, (T + 1) * B, 1e-4);
    for (int b = 0; b < B; b++) {
      double sum = 0;
      for (int t = 0; t <= T; t++) sum += want[t * B + b];
      EXPECT(fabs(bpd[b] - sum) < 1e-4 * sum, "%s: bound %.6f, reference %.6f bits/dim", names[v], bpd[b], sum);
    }
    free(want);
  }
  free(x0), free(z), free(work);
  synthetic_denoiser_free(&sd);
  st_free(&st);
}

/* ---- (b) ODE likelihood on exact scores ---- */
typedef struct {
  const Diffusion *d;
  int K, D;
  double w[2], mu[2][2], s; /* isotropic std s for every component */
} Mixture;

/* log density of x_tau and its eps_hat = -sigma grad log p, Jacobian-vector product -sigma H z. */
static double mixture_eval(const Mixture *m, const float *x, double tau, float *eps, const float *z, float *jz) {
  double a, sg;
  diffusion_marginal(m->d, tau, &a, &sg);
  const double v = a * a * m->s * m->s + sg * sg;
  double logp[2], mx = -INFINITY, g[2][2];
  for (int k = 0; k < m->K; k++) {
    logp[k] = log(m->w[k]) - 0.5 * m->D * log(2 * M_PI * v);
    for (int j = 0; j < m->D; j++) {
      const double r = x[j] - a * m->mu[k][j];
      logp[k] -= 0.5 * r * r / v;
      g[k][j] = -r / v;
    }
    mx = fmax(mx, logp[k]);
  }
  double zs = 0, r[2];
  for (int k = 0; k < m->K; k++) zs += r[k] = exp(logp[k] - mx);
  double G[2] = {0, 0};
  for (int k = 0; k < m->K; k++) {
    r[k] /= zs;
    for (int j = 0; j < m->D; j++) G[j] += r[k] * g[k][j];
  }
  for (int j = 0; j < m->D && eps; j++) eps[j] = (float)(-sg * G[j]);
  if (z) { /* H = sum_k r_k (g_k g_k^T - I / v) - G G^T */
    double gz[2] = {0, 0}, Gz = 0;
    for (int k = 0; k < m->K; k++)
      for (int j = 0; j < m->D; j++) gz[k] += g[k][j] * z[j];
    for (int j = 0; j < m->D; j++) Gz += G[j] * z[j];
    for (int j = 0; j < m->D; j++) {
      double h = -z[j] / v - G[j] * Gz;
      for (int k = 0; k < m->K; k++) h += r[k] * g[k][j] * gz[k];
      jz[j] = (float)(-sg * h);
    }
  }
  return mx + log(zs);
}

static void mixture_eps(Denoiser *self, float *eps, const float *x, int B, double tau) {
  const Mixture *m = self->ctx;
  for (int b = 0; b < B; b++) mixture_eval(m, x + (size_t)b * m->D, tau, eps + (size_t)b * m->D, NULL, NULL);
  self->nfe++;
}

static void mixture_eps_vjp(Denoiser *self, float *eps, float *vjp, const float *x, const float *v, int B, double tau) {
  const Mixture *m = self->ctx;
  for (int b = 0; b < B; b++) {
    const size_t o = (size_t)b * m->D;
    mixture_eval(m, x + o, tau, eps + o, v + o, vjp + o);
  }
  self->nfe++;
}

/* The U-Net denoiser's VJP (v-prediction, so the eps conversion is included) against central
 * differences along random directions: v . (eps(x + h u) - eps(x - h u)) / 2h = (J^T v) . u. */
static void check_unet_vjp(void) {
  SyntheticDenoiser sd;
  synthetic_denoiser_init(&sd, 50, "v");
  enum { B = 2 };
  const size_t n = B * 3 * 16 * 16;
  float *x = malloc(n * sizeof(float)), *u = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
  float *eps = malloc(n * sizeof(float)), *vjp = malloc(n * sizeof(float)), *xp = malloc(n * sizeof(float));
  float *ep = malloc(n * sizeof(float)), *em = malloc(n * sizeof(float));
  rng_fill_normal(x, n, 21, 0, 0);
  rng_fill_normal(v, n, 21, 1, 0);
  const double tau = 17.0, h = 1e-2;
  sd.den.predict_eps_vjp(&sd.den, eps, vjp, x, v, B, tau);
  for (int dir = 0; dir < 3; dir++) {
    rng_fill_normal(u, n, 21, 2 + (uint64_t)dir, 0);
    for (size_t i = 0; i < n; i++) xp[i] = (float)(x[i] + h * u[i]);
    sd.den.predict_eps(&sd.den, ep, xp, B, tau);
    for (size_t i = 0; i < n; i++) xp[i] = (float)(x[i] - h * u[i]);
    sd.den.predict_eps(&sd.den, em, xp, B, tau);
    double fd = 0, an = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
      fd += (double)v[i] * (ep[i] - em[i]) / (2 * h);
      an += (double)vjp[i] * u[i];
      scale += fabs((double)vjp[i] * u[i]);
    }
    /* float32 network: differences of O(1) outputs at h = 1e-2 carry ~1e-5 relative noise per element */
    EXPECT(fabs(fd - an) < 1e-3 * scale, "U-Net VJP direction %d: analytic %.6f, finite differences %.6f (scale %.3f)", dir,
           an, fd, scale);
  }
  sd.den.predict_eps(&sd.den, ep, x, B, tau); /* the VJP call's eps is the plain forward's */
  float worst = 0;
  for (size_t i = 0; i < n; i++) worst = fmaxf(worst, fabsf(ep[i] - eps[i]));
  EXPECT(worst < 1e-5f, "eps from the VJP call differs from predict_eps by %.2e", worst);
  free(x), free(u), free(v), free(eps), free(vjp), free(xp), free(ep), free(em);
  synthetic_denoiser_free(&sd);
}

/* The stratified subset of the bound's KL terms is an unbiased estimate of the full sum. */
static void check_vlb_stratified(void) {
  DiffusionConfig dc;
  diffusion_config_default(&dc);
  dc.T = 20;
  strcpy(dc.beta_schedule, "cosine");
  Diffusion d;
  char err[256];
  EXPECT(diffusion_init(&d, &dc, err, sizeof err) == 0, "%s", err);
  Mixture m = {&d, 2, 2, {0.3, 0.7}, {{-0.6, -0.2}, {0.5, 0.4}}, 0.2};
  Denoiser den = {mixture_eps, 0, &m, NULL, NULL};
  enum { B = 64 };
  float x0[2 * B], work[4 * 2 * B];
  for (int i = 0; i < 2 * B; i++) x0[i] = roundf((rng_uniform(3, 0, i) * 2 - 1) * 127.5f) / 127.5f;
  double bpd[B], full = 0, diff = 0, diff2 = 0;
  const int R = 200;
  for (int r = 0; r < R; r++) { /* both estimators on the same x_t noise; the strata draws vary with r */
    NoiseSource noise = noise_source_rng(1000 + (uint64_t)r, 0);
    double a = 0, s = 0;
    nll_vlb(&d, &den, &noise, x0, B, 2, VARIANCE_FIXED_SMALL, 0, bpd, NULL, work);
    for (int b = 0; b < B; b++) a += bpd[b] / B;
    nll_vlb(&d, &den, &noise, x0, B, 2, VARIANCE_FIXED_SMALL, 5, bpd, NULL, work);
    for (int b = 0; b < B; b++) s += bpd[b] / B;
    full += a / R, diff += (s - a) / R, diff2 += (s - a) * (s - a) / R;
  }
  const double se = sqrt((diff2 - diff * diff) / (R - 1));
  EXPECT(fabs(diff) < 4 * se && se < 0.1 * full, "stratified (5 of 19 terms) minus all terms: %.4f +- %.4f bits/dim (bound %.4f)",
         diff, se, full);
  diffusion_free(&d);
}

/* The bound with a learned variance output held at v = -1 is the fixed_small bound, term by term; at
 * v = +1 the KL terms are fixed_large's (whose decoder keeps beta_tilde_1, where the learned range's
 * top is beta_0). */
typedef struct {
  Mixture *m;
  float v;
} ConstantVariance;

static void constant_variance_eps_var(Denoiser *self, float *eps, float *var, const float *x, int B, double tau) {
  ConstantVariance *c = self->ctx;
  for (int b = 0; b < B; b++) mixture_eval(c->m, x + (size_t)b * c->m->D, tau, eps + (size_t)b * c->m->D, NULL, NULL);
  for (int i = 0; i < B * c->m->D; i++) var[i] = c->v;
  self->nfe++;
}

static void check_vlb_learned_variance(void) {
  DiffusionConfig dc;
  diffusion_config_default(&dc);
  dc.T = 20;
  dc.learn_sigma = true;
  strcpy(dc.beta_schedule, "cosine");
  Diffusion d;
  char err[256];
  EXPECT(diffusion_init(&d, &dc, err, sizeof err) == 0, "%s", err);
  Mixture m = {&d, 2, 2, {0.3, 0.7}, {{-0.6, -0.2}, {0.5, 0.4}}, 0.2};
  enum { B = 16, T = 20 };
  float x0[2 * B], work[4 * 2 * B];
  for (int i = 0; i < 2 * B; i++) x0[i] = roundf((rng_uniform(4, 0, i) * 2 - 1) * 127.5f) / 127.5f;
  double bpd[B], fixed[(T + 1) * B], learned[(T + 1) * B];
  for (int end = 0; end < 2; end++) {
    Denoiser plain = {mixture_eps, 0, &m, NULL, NULL};
    ConstantVariance cv = {&m, end ? 1.0f : -1.0f};
    Denoiser with_var = {NULL, 0, &cv, NULL, constant_variance_eps_var};
    NoiseSource n1 = noise_source_rng(9, 0), n2 = noise_source_rng(9, 0);
    nll_vlb(&d, &plain, &n1, x0, B, 2, end ? VARIANCE_FIXED_LARGE : VARIANCE_FIXED_SMALL, 0, bpd, fixed, work);
    nll_vlb(&d, &with_var, &n2, x0, B, 2, VARIANCE_LEARNED, 0, bpd, learned, work);
    double worst = 0, scale = 0;
    for (int i = end ? B : 0; i < (T + 1) * B; i++) /* v = +1: from t = 1 */
      worst = fmax(worst, fabs(fixed[i] - learned[i])), scale = fmax(scale, fabs(fixed[i]));
    EXPECT(scale > 0 && worst < 1e-6 * scale, "bound terms with learned variance at v = %+d vs %s: %.2e of %.2e",
           end ? 1 : -1, end ? "fixed_large" : "fixed_small", worst, scale);
  }
  diffusion_free(&d);
}

static void check_ode_likelihood(const char *process, int K, double tol_mean, int B) {
  DiffusionConfig dc;
  diffusion_config_default(&dc);
  strcpy(dc.type, process);
  Diffusion d;
  char err[256];
  EXPECT(diffusion_init(&d, &dc, err, sizeof err) == 0, "%s", err);
  Mixture m = {&d, K, 2, {K == 1 ? 1.0 : 0.3, 0.7}, {{-1.0, -0.5}, {1.0, 0.8}}, 0.3};
  Denoiser den = {mixture_eps, 0, &m, mixture_eps_vjp, NULL};
  float *x = malloc((size_t)B * 2 * sizeof(float)), *work = malloc(nll_ode_work_floats(B, 2) * sizeof(float));
  for (int b = 0; b < B; b++) {
    const int k = K == 1 || rng_uniform(9, 0, b) < 0.3f ? 0 : 1;
    for (int j = 0; j < 2; j++) x[2 * b + j] = (float)(m.mu[k][j] + m.s * rng_normal(9, 1, 2 * b + j));
  }
  double *logp = malloc((size_t)B * sizeof(double)), *log_prior = malloc((size_t)B * sizeof(double));
  float *xT = malloc((size_t)B * 2 * sizeof(float));
  const long nfe = nll_ode(&d, &den, x, B, 2, 1e-5, 1e-5, 4, 0, logp, xT, log_prior, work);
  double mean_err = 0, sq_err = 0, worst = 0;
  for (int b = 0; b < B; b++) {
    /* the flow's part only: the data's own p_T(x_T) replaces the N(0, prior) approximation */
    const double got = logp[b] - log_prior[b] + mixture_eval(&m, xT + 2 * b, diffusion_tau_max(&d), NULL, NULL, NULL);
    const double exact = mixture_eval(&m, x + 2 * b, diffusion_tau_min(&d), NULL, NULL, NULL);
    mean_err += (got - exact) / B, sq_err += (got - exact) * (got - exact) / B;
    worst = fmax(worst, fabs(got - exact));
  }
  if (K == 1) /* diagonal Jacobian: the Rademacher estimate is the exact trace, only ODE error remains */
    EXPECT(worst < tol_mean, "%s Gaussian: ODE log-likelihood off by up to %.2e nats (%ld NFE)", process, worst, nfe);
  else { /* Hutchinson: unbiased; the mean error within 4 standard errors (plus the ODE's 2e-3) */
    const double se = sqrt(fmax(sq_err - mean_err * mean_err, 0.0) / (B - 1));
    EXPECT(fabs(mean_err) < 4 * se + tol_mean && se < 0.5, "%s mixture: mean ODE log-likelihood error %.4f nats +- %.4f (%d samples)",
           process, mean_err, se, B);
  }
  free(x), free(work), free(logp), free(log_prior), free(xT);
  diffusion_free(&d);
}

int main(void) {
  check_vlb_reference();
  check_vlb_stratified();
  check_vlb_learned_variance();
  check_unet_vjp();
  check_ode_likelihood("vpsde", 1, 2e-3, 64);
  check_ode_likelihood("ddpm", 1, 2e-3, 64);
  check_ode_likelihood("vesde", 1, 2e-3, 64);
  check_ode_likelihood("vpsde", 2, 2e-3, 400);
  return test_report("nll");
}
