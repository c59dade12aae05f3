/* test_condition.c - inpainting, colourisation and ILVR (SamplerCondition) on exact scores.
 *
 * Data x ~ N(mu, S) with a full covariance S over a few "pixels", so the known part P x carries
 * information about the rest. The exact eps_hat(x, tau) = sigma (alpha^2 S + sigma^2 I)^-1 (x - alpha mu)
 * is the model. Given the known part P x = P y (A x = A y, A the orthonormal rows spanning P's range),
 * the exact conditional is N(mu + S A^T (A S A^T)^-1 A (y - mu), S - S A^T (A S A^T)^-1 A S). Each sampler
 * family that takes a condition (ancestral with RePaint's resampling, ddim, pc) must reproduce its mean
 * and covariance within statistical error, and keep the known part (inpainting: the very values).
 * Plain replacement (no resampling) is not exact on correlated data; the test measures its bias too,
 * which shows the comparison can fail.
 *
 * Classifier guidance (diffusion/classifier_guidance.h) on a two-class mixture with overlapping
 * components and its exact classifier: scale 1 samples the class's own component (the noised
 * conditional's score, exact), scale 0 the mixture, and scale 3 pushes further toward the class.
 *
 * Classifier-free guidance (diffusion/classifier_free_guidance.h) on the same two classes, the model a
 * LabelledEps with the exact conditional scores. Closed form: where the null pass is the Gaussian
 * N(m_u, s^2 I) (the classes' common covariance), (1 + w) eps(x, c) - w eps(x, null) is exactly the eps
 * of N(m_c + w (m_c - m_u), s^2 I), so every sampler must move the mass there. With the null pass the
 * exact mixture, w = 0 is the class's component, and since eps(x, c) - eps(x, null) = -sigma grad log
 * p(c | x), guidance w is classifier guidance of scale 1 + w with the exact classifier: the same
 * samples, whose probability of the class rises with w.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "diffusion/classifier_free_guidance.h"
#include "diffusion/classifier_guidance.h"
#include "diffusion/denoiser.h"
#include "diffusion/diffusion.h"
#include "samplers/sampler.h"
#include "test_util.h"

#define MAX_D 8

typedef struct {
  const Diffusion *d;
  int D;
  double mu[MAX_D], S[MAX_D][MAX_D];
} FullGaussian;

/* inv <- m^-1 (n x n, row stride MAX_D), Gauss-Jordan with partial pivoting. */
static void invert(int n, double m[MAX_D][MAX_D], double inv[MAX_D][MAX_D]) {
  double a[MAX_D][2 * MAX_D];
  for (int i = 0; i < n; i++)
    for (int j = 0; j < 2 * n; j++) a[i][j] = j < n ? m[i][j] : (j - n == i);
  for (int c = 0; c < n; c++) {
    int p = c;
    for (int i = c + 1; i < n; i++)
      if (fabs(a[i][c]) > fabs(a[p][c])) p = i;
    for (int j = 0; j < 2 * n; j++) {
      const double t = a[c][j];
      a[c][j] = a[p][j], a[p][j] = t;
    }
    const double piv = a[c][c];
    for (int j = 0; j < 2 * n; j++) a[c][j] /= piv;
    for (int i = 0; i < n; i++) {
      if (i == c) continue;
      const double f = a[i][c];
      for (int j = 0; j < 2 * n; j++) a[i][j] -= f * a[c][j];
    }
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) inv[i][j] = a[i][n + j];
}

static void full_gaussian_eps(Denoiser *self, float *eps, const float *x, int B, double tau) {
  const FullGaussian *g = self->ctx;
  double a, s, C[MAX_D][MAX_D], Ci[MAX_D][MAX_D];
  diffusion_marginal(g->d, tau, &a, &s);
  for (int i = 0; i < g->D; i++)
    for (int j = 0; j < g->D; j++) C[i][j] = a * a * g->S[i][j] + (i == j ? s * s : 0.0);
  invert(g->D, C, Ci);
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * g->D;
    for (int i = 0; i < g->D; i++) {
      double e = 0;
      for (int j = 0; j < g->D; j++) e += Ci[i][j] * (xb[j] - a * g->mu[j]);
      eps[(size_t)b * g->D + i] = (float)(s * e);
    }
  }
  self->nfe++;
}

/* S_ij = s_i s_j 0.8^|i-j|: neighbouring pixels correlated 0.8, as in images. */
static void make_gaussian(FullGaussian *g, const Diffusion *d, int D) {
  memset(g, 0, sizeof *g);
  g->d = d, g->D = D;
  for (int i = 0; i < D; i++) {
    g->mu[i] = 0.3 * sin(1.0 + i);
    for (int j = 0; j < D; j++) {
      const double si = 0.4 + 0.05 * i, sj = 0.4 + 0.05 * j;
      g->S[i][j] = si * sj * pow(0.8, abs(i - j));
    }
  }
}

typedef struct {
  const char *name;
  SamplerCondition c;
  int k;                 /* rows of A */
  double A[MAX_D][MAX_D]; /* orthonormal rows spanning the known part */
  float keep[MAX_D];
} Known;

/* Inpainting: 2x3 pixels (row-major), keep pixels 0, 2, 5. */
static void known_inpaint(Known *kn) {
  memset(kn, 0, sizeof *kn);
  kn->name = "inpaint";
  const int kept[3] = {0, 2, 5};
  for (int r = 0; r < 3; r++) kn->A[r][kept[r]] = 1.0, kn->keep[kept[r]] = 1.0f;
  kn->k = 3;
  kn->c = (SamplerCondition){.kind = CONDITION_INPAINT, .keep = kn->keep, .channels = 1, .height = 2, .width = 3};
}

/* Colourisation: 3 channels of 1x2 pixels (channel-major); known: each pixel's channel mean. */
static void known_colorize(Known *kn) {
  memset(kn, 0, sizeof *kn);
  kn->name = "colorize";
  for (int p = 0; p < 2; p++)
    for (int ch = 0; ch < 3; ch++) kn->A[p][ch * 2 + p] = 1.0 / sqrt(3.0);
  kn->k = 2;
  kn->c = (SamplerCondition){.kind = CONDITION_COLORIZE, .channels = 3, .height = 1, .width = 2};
}

/* ILVR x2: 1 channel of 2x4 pixels; known: the two 2x2 block means. */
static void known_lowres(Known *kn) {
  memset(kn, 0, sizeof *kn);
  kn->name = "lowres";
  for (int blk = 0; blk < 2; blk++)
    for (int y = 0; y < 2; y++)
      for (int x = 0; x < 2; x++) kn->A[blk][y * 4 + blk * 2 + x] = 0.5;
  kn->k = 2;
  kn->c = (SamplerCondition){.kind = CONDITION_LOWRES, .channels = 1, .height = 2, .width = 4, .factor = 2};
}

/* sampler_condition_project is A^T A. */
static void check_projection(const Known *kn, int D) {
  double worst = 0;
  for (int e = 0; e < D; e++) {
    float v[MAX_D] = {0};
    v[e] = 1.0f;
    sampler_condition_project(&kn->c, v, 1);
    for (int i = 0; i < D; i++) {
      double want = 0;
      for (int r = 0; r < kn->k; r++) want += kn->A[r][i] * kn->A[r][e];
      worst = fmax(worst, fabs(v[i] - want));
    }
  }
  EXPECT(worst < 1e-6, "%s: the projection differs from A^T A by %.2e", kn->name, worst);
}

/* The exact conditional mean and covariance of x given A x = A y. */
static void exact_conditional(const FullGaussian *g, const Known *kn, const double *y, double *mean,
                              double cov[MAX_D][MAX_D]) {
  const int D = g->D, k = kn->k;
  double SAt[MAX_D][MAX_D] = {{0}}, ASA[MAX_D][MAX_D] = {{0}}, ASAi[MAX_D][MAX_D], r[MAX_D];
  for (int i = 0; i < D; i++)
    for (int q = 0; q < k; q++)
      for (int j = 0; j < D; j++) SAt[i][q] += g->S[i][j] * kn->A[q][j];
  for (int p = 0; p < k; p++)
    for (int q = 0; q < k; q++)
      for (int i = 0; i < D; i++) ASA[p][q] += kn->A[p][i] * SAt[i][q];
  invert(k, ASA, ASAi);
  for (int p = 0; p < k; p++) {
    double v = 0;
    for (int i = 0; i < D; i++) v += kn->A[p][i] * (y[i] - g->mu[i]);
    r[p] = v;
  }
  for (int i = 0; i < D; i++) {
    mean[i] = g->mu[i];
    for (int p = 0; p < k; p++)
      for (int q = 0; q < k; q++) mean[i] += SAt[i][p] * ASAi[p][q] * r[q];
    for (int j = 0; j < D; j++) {
      double c = g->S[i][j];
      for (int p = 0; p < k; p++)
        for (int q = 0; q < k; q++) c -= SAt[i][p] * ASAi[p][q] * SAt[j][q];
      cov[i][j] = c;
    }
  }
}

/* ---- the algorithm's own output distribution, by exact moment propagation ----
 * With the exact Gaussian scores, every ancestral and ddim step, every replacement and every
 * forward re-noising is affine in x plus independent Gaussian noise, so the samples' mean and
 * covariance follow in closed form: x' = M x + b + N(0, Q) gives m' = M m + b, C' = M C M^T + Q.
 * The schedule is RePaint's get_schedule_jump as written there (a list of levels), independently of
 * condition.c's bookkeeping. */
typedef struct {
  int D;
  double m[MAX_D], C[MAX_D][MAX_D];
} Moments;

static void affine(Moments *s, double M[MAX_D][MAX_D], const double *b, double q, double Qm[MAX_D][MAX_D]) {
  const int D = s->D;
  double m[MAX_D], MC[MAX_D][MAX_D] = {{0}};
  for (int i = 0; i < D; i++) {
    m[i] = b[i];
    for (int j = 0; j < D; j++) m[i] += M[i][j] * s->m[j];
  }
  for (int i = 0; i < D; i++)
    for (int j = 0; j < D; j++)
      for (int k = 0; k < D; k++) MC[i][j] += M[i][k] * s->C[k][j];
  for (int i = 0; i < D; i++) {
    s->m[i] = m[i];
    for (int j = 0; j < D; j++) {
      double c = q * (Qm ? Qm[i][j] : (i == j));
      for (int k = 0; k < D; k++) c += MC[i][k] * M[j][k];
      s->C[i][j] = c;
    }
  }
}

/* eps_hat = E x + e0 at tau. */
static void eps_affine(const FullGaussian *g, double tau, double E[MAX_D][MAX_D], double *e0) {
  double a, s, C[MAX_D][MAX_D], Ci[MAX_D][MAX_D];
  diffusion_marginal(g->d, tau, &a, &s);
  for (int i = 0; i < g->D; i++)
    for (int j = 0; j < g->D; j++) C[i][j] = a * a * g->S[i][j] + (i == j ? s * s : 0.0);
  invert(g->D, C, Ci);
  for (int i = 0; i < g->D; i++) {
    e0[i] = 0;
    for (int j = 0; j < g->D; j++) E[i][j] = s * Ci[i][j], e0[i] -= s * a * Ci[i][j] * g->mu[j];
  }
}

/* One reverse step from grid point i (ancestral_step / ddim_step's update). */
static void oracle_step(Moments *s, const FullGaussian *g, const SamplerOptions *o, const double *taus, int i,
                        int steps) {
  const int D = g->D;
  double E[MAX_D][MAX_D], e0[MAX_D], M[MAX_D][MAX_D], b[MAX_D], q;
  eps_affine(g, taus[i], E, e0);
  const bool last = i + 1 == steps;
  if (o->kind == SAMPLER_ANCESTRAL) {
    const Diffusion *d = g->d;
    const int t = (int)taus[i], prev = last ? -1 : (int)taus[i + 1];
    const double ab = d->alphas_cumprod[t], ab_prev = prev >= 0 ? d->alphas_cumprod[prev] : 1.0;
    const double beta = 1.0 - ab / ab_prev;
    const double var = o->variance == VARIANCE_FIXED_LARGE ? beta : beta * (1.0 - ab_prev) / (1.0 - ab);
    const double c0 = sqrt(ab_prev) * beta / (1.0 - ab), ct = sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab);
    for (int r = 0; r < D; r++) {
      b[r] = -c0 * sqrt(1.0 - ab) * e0[r] / sqrt(ab);
      for (int c = 0; c < D; c++) M[r][c] = c0 * ((r == c) - sqrt(1.0 - ab) * E[r][c]) / sqrt(ab) + ct * (r == c);
    }
    q = last ? 0.0 : var;
  } else {
    double a, sg, an = 1.0, sn = 0.0;
    diffusion_marginal(g->d, taus[i], &a, &sg);
    if (!last) diffusion_marginal(g->d, taus[i + 1], &an, &sn);
    const double ratio = a / an, tail = sg * sg - ratio * ratio * sn * sn;
    const double c = o->eta * sn / sg * sqrt(tail > 0.0 ? tail : 0.0);
    const double cx = an / a, ce = sqrt(sn * sn - c * c) - an * sg / a;
    for (int r = 0; r < D; r++) {
      b[r] = ce * e0[r];
      for (int k = 0; k < D; k++) M[r][k] = cx * (r == k) + ce * E[r][k];
    }
    q = c * c;
  }
  affine(s, M, b, q, NULL);
}

/* x <- (I - P) x + P (alpha ref + sigma z). */
static void oracle_keep(Moments *s, const Known *kn, const float *ref, double alpha, double sigma) {
  const int D = s->D;
  double P[MAX_D][MAX_D] = {{0}}, M[MAX_D][MAX_D], b[MAX_D] = {0};
  for (int i = 0; i < D; i++)
    for (int j = 0; j < D; j++)
      for (int r = 0; r < kn->k; r++) P[i][j] += kn->A[r][i] * kn->A[r][j];
  for (int i = 0; i < D; i++)
    for (int j = 0; j < D; j++) M[i][j] = (i == j) - P[i][j], b[i] += alpha * P[i][j] * ref[j];
  affine(s, M, b, sigma * sigma, P);
}

static void oracle_renoise(Moments *s, const Diffusion *d, double tau_lo, double tau_hi) {
  double a_lo, s_lo, a_hi, s_hi, M[MAX_D][MAX_D] = {{0}}, b[MAX_D] = {0};
  diffusion_marginal(d, tau_lo, &a_lo, &s_lo);
  diffusion_marginal(d, tau_hi, &a_hi, &s_hi);
  const double ratio = a_hi / a_lo;
  for (int i = 0; i < s->D; i++) M[i][i] = ratio;
  affine(s, M, b, s_hi * s_hi - ratio * ratio * s_lo * s_lo, NULL);
}

static void oracle_run(Moments *s, const FullGaussian *g, const SamplerOptions *o, const Known *kn, const float *ref) {
  const Diffusion *d = g->d;
  const int steps = o->steps, R = o->resample, J = o->jump;
  double *taus = malloc((size_t)steps * sizeof(double)), a, sg;
  char err[256];
  EXPECT(sampler_time_grid(d, steps, o->spacing, taus, err, sizeof err) == 0, "%s", err);
  memset(s, 0, sizeof *s);
  s->D = g->D;
  const double prior = diffusion_prior_std(d);
  for (int i = 0; i < g->D; i++) s->C[i][i] = prior * prior;
  diffusion_marginal(d, taus[0], &a, &sg);
  oracle_keep(s, kn, ref, a, sg);
  /* RePaint's get_schedule_jump(t_T = steps, jump_length = J, jump_n_sample = R) */
  int *jumps = calloc((size_t)steps, sizeof(int)), *ts = malloc((size_t)(steps * (2 * R + 1) + 2) * sizeof(int)), n = 0;
  for (int j = 0; j < steps - J; j += J) jumps[j] = R - 1;
  for (int t = steps; t >= 1;) {
    ts[n++] = --t;
    if (jumps[t] > 0) {
      jumps[t]--;
      for (int k = 0; k < J; k++) ts[n++] = ++t;
    }
  }
  ts[n++] = -1;
  /* ts[0] = steps - 1 is the prior; level t is grid point steps - 1 - t */
  for (int k = 1; k < n; k++) {
    const int from = ts[k - 1], to = ts[k];
    if (to < from) {
      oracle_step(s, g, o, taus, steps - 1 - from, steps);
      if (to >= 0) {
        diffusion_marginal(d, taus[steps - 1 - to], &a, &sg);
        oracle_keep(s, kn, ref, a, sg);
      } else {
        oracle_keep(s, kn, ref, 1.0, 0.0);
      }
    } else {
      oracle_renoise(s, d, taus[steps - 1 - from], taus[steps - 1 - to]);
    }
  }
  free(jumps), free(ts), free(taus);
}

/* The largest deviation of (m, C) from (mean, cov) in standard errors of B samples of (mean, cov)
 * (mean sqrt(C_ii / B), covariance sqrt((C_ii C_jj + C_ij^2) / B)); a direction without spread is held
 * to 1e-5. */
static double deviation(int D, const double *m, double c[MAX_D][MAX_D], const double *mean, double cov[MAX_D][MAX_D],
                        int B) {
  double worst = 0;
  for (int i = 0; i < D; i++) {
    const double se_m = sqrt(fmax(cov[i][i], 0.0) / B);
    worst = fmax(worst, fabs(m[i] - mean[i]) / fmax(se_m, 1e-5));
    for (int j = 0; j < D; j++) {
      const double se_c = sqrt((fmax(cov[i][i], 0.0) * fmax(cov[j][j], 0.0) + cov[i][j] * cov[i][j]) / B);
      worst = fmax(worst, fabs(c[i][j] - cov[i][j]) / fmax(se_c, 1e-5));
    }
  }
  return worst;
}

typedef struct {
  double vs_algorithm, vs_exact, algorithm_vs_exact; /* deviations in standard errors of B samples */
  bool known_kept;
} ConditionResult;

/* B conditioned samples of the Gaussian (independent: no correlation between the known part and the
 * rest) against the algorithm's own distribution (ancestral, ddim) and the exact conditional. */
static ConditionResult run_condition(const char *process, SamplerKind kind, int steps, int R, int J,
                                     AncestralVariance variance, Known *kn, int D, bool independent) {
  Diffusion d;
  init_diffusion(&d, process, "linear");
  FullGaussian g;
  make_gaussian(&g, &d, D);
  if (independent) /* zero the covariance between the known directions and their complement */
    for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++) g.S[i][j] = (kn->keep[i] != 0.0f) == (kn->keep[j] != 0.0f) ? g.S[i][j] : 0.0;
  float ref[MAX_D];
  double y[MAX_D];
  for (int i = 0; i < D; i++) y[i] = ref[i] = (float)(g.mu[i] + (i % 2 ? 0.5 : -0.4)); /* an unlikely input */
  kn->c.reference = ref;
  SamplerOptions o;
  sampler_options_default(&o, kind, steps);
  o.resample = R, o.jump = J, o.variance = variance;
  if (kind == SAMPLER_DDIM) o.eta = 1.0;
  char err[256];
  EXPECT(sampler_check(&o, &d, err, sizeof err) == 0 && sampler_check_condition(&o, &kn->c, D, err, sizeof err) == 0,
         "%s", err);
  enum { B = 4000 };
  const size_t n = (size_t)B * D;
  float *x = malloc(n * sizeof(float)), *work = malloc(sampler_work_floats(&o, n) * sizeof(float));
  rng_fill_normal(x, n, 51, 0, 0);
  const float prior = (float)diffusion_prior_std(&d);
  for (size_t i = 0; i < n; i++) x[i] *= prior;
  Denoiser den = {full_gaussian_eps, 0, &g, NULL, NULL};
  NoiseSource noise = noise_source_rng(52, 0);
  sampler_run_conditioned(&o, &d, &den, &noise, &kn->c, x, B, D, work);

  double mean[MAX_D], cov[MAX_D][MAX_D], m[MAX_D] = {0}, c[MAX_D][MAX_D] = {{0}};
  exact_conditional(&g, kn, y, mean, cov);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < D; i++) m[i] += x[(size_t)b * D + i] / B;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++) c[i][j] += (x[(size_t)b * D + i] - m[i]) * (x[(size_t)b * D + j] - m[j]) / (B - 1);
  ConditionResult res = {0, deviation(D, m, c, mean, cov, B), 0, true};
  if (kind != SAMPLER_PC) { /* pc's corrector step depends on the batch's norms: not affine */
    Moments alg;
    oracle_run(&alg, &g, &o, kn, ref);
    res.vs_algorithm = deviation(D, m, c, alg.m, alg.C, B);
    res.algorithm_vs_exact = deviation(D, alg.m, alg.C, mean, cov, B);
  }
  /* the known part: P x = P y for every sample (inpainting: the same bits) */
  for (int b = 0; b < B; b++) {
    float px[MAX_D], py[MAX_D];
    memcpy(px, x + (size_t)b * D, D * sizeof(float));
    memcpy(py, ref, D * sizeof(float));
    sampler_condition_project(&kn->c, px, 1);
    sampler_condition_project(&kn->c, py, 1);
    for (int i = 0; i < D; i++) {
      if (kn->c.kind == CONDITION_INPAINT && kn->keep[i] != 0.0f && x[(size_t)b * D + i] != ref[i]) res.known_kept = false;
      if (fabs(px[i] - py[i]) > 1e-5) res.known_kept = false;
    }
  }
  char alg[96] = "pc: no closed form";
  if (kind != SAMPLER_PC)
    snprintf(alg, sizeof alg, "samples vs algorithm %5.2f, algorithm vs exact %6.2f", res.vs_algorithm,
             res.algorithm_vs_exact);
  printf("condition: %-8s %-5s %-9s %4d steps R %2d J %2d%s: samples vs exact %6.2f; %s (standard errors of %d samples)\n",
         kn->name, process, sampler_kind_name(kind), steps, R, J, independent ? " independent" : "", res.vs_exact, alg, B);
  EXPECT(res.known_kept, "%s %s: the known part is not kept", kn->name, sampler_kind_name(kind));
  free(x), free(work);
  diffusion_free(&d);
  return res;
}

/* ---- classifier guidance on a 2-D two-class mixture: 0.5 N(m0, s^2 I) + 0.5 N(m1, s^2 I) ---- */
typedef struct {
  const Diffusion *d;
  double m[2][2], s;
} TwoClass;

/* The posterior r_k(x) of each class at (alpha, sigma) and the component variance v. */
static void two_class_posterior(const TwoClass *tc, const float *x, double a, double sg, double *r, double *v) {
  *v = a * a * tc->s * tc->s + sg * sg;
  double lp[2];
  for (int k = 0; k < 2; k++) {
    const double d0 = x[0] - a * tc->m[k][0], d1 = x[1] - a * tc->m[k][1];
    lp[k] = -0.5 * (d0 * d0 + d1 * d1) / *v;
  }
  const double mx = fmax(lp[0], lp[1]), z = exp(lp[0] - mx) + exp(lp[1] - mx);
  for (int k = 0; k < 2; k++) r[k] = exp(lp[k] - mx) / z;
}

static void two_class_eps(Denoiser *self, float *eps, const float *x, int B, double tau) {
  const TwoClass *tc = self->ctx;
  double a, sg, r[2], v;
  diffusion_marginal(tc->d, tau, &a, &sg);
  for (int b = 0; b < B; b++) {
    two_class_posterior(tc, x + 2 * b, a, sg, r, &v);
    for (int j = 0; j < 2; j++)
      eps[2 * b + j] = (float)(sg * (r[0] * (x[2 * b + j] - a * tc->m[0][j]) + r[1] * (x[2 * b + j] - a * tc->m[1][j])) / v);
  }
  self->nfe++;
}

/* grad log p(y | x) = grad log p(x | y) - grad log p(x) */
static void two_class_grad(ClassifierGrad *self, float *grad, const float *x, const int *labels, int B, double tau) {
  const TwoClass *tc = self->ctx;
  double a, sg, r[2], v;
  diffusion_marginal(tc->d, tau, &a, &sg);
  for (int b = 0; b < B; b++) {
    two_class_posterior(tc, x + 2 * b, a, sg, r, &v);
    const int y = labels[b];
    for (int j = 0; j < 2; j++) {
      const double xj = x[2 * b + j];
      grad[2 * b + j] = (float)((-(xj - a * tc->m[y][j]) + r[0] * (xj - a * tc->m[0][j]) + r[1] * (xj - a * tc->m[1][j])) / v);
    }
  }
  self->nfe++;
}

/* The two classes as a LabelledEps: labels 0 and 1 their components' exact eps, the null label 2 the
 * mixture's (gaussian_null: the Gaussian N(m_u, s^2 I) with the mixture's mean m_u instead). */
typedef struct {
  TwoClass *tc;
  bool gaussian_null;
  long calls, rows; /* model calls, and rows in the last */
} LabelledTwoClass;

static void labelled_two_class_predict(LabelledEps *self, float *eps, float *var, const float *x, const int *labels,
                                       int B, int passes, double tau) {
  LabelledTwoClass *l = self->ctx;
  const TwoClass *tc = l->tc;
  EXPECT(var == NULL, "variance requested of a model without one");
  double a, sg, r[2], v;
  diffusion_marginal(tc->d, tau, &a, &sg);
  for (int p = 0; p < passes; p++)
    for (int b = 0; b < B; b++) {
      const float *xb = x + 2 * b;
      float *e = eps + 2 * ((size_t)p * B + b);
      const int y = labels[p * B + b];
      two_class_posterior(tc, xb, a, sg, r, &v);
      for (int j = 0; j < 2; j++) {
        const double mu_u = 0.5 * (tc->m[0][j] + tc->m[1][j]);
        const double mean = y < 2 ? a * tc->m[y][j] : l->gaussian_null ? a * mu_u : -1;
        e[j] = (float)(sg * (mean != -1 ? xb[j] - mean
                                       : r[0] * (xb[j] - a * tc->m[0][j]) + r[1] * (xb[j] - a * tc->m[1][j])) / v);
      }
    }
  l->calls++, l->rows = passes * B;
}

#define GUIDED_B 2000

typedef enum { GUIDE_CLASSIFIER, GUIDE_FREE, GUIDE_FREE_GAUSSIAN_NULL } Guide;

typedef struct {
  double mean[2], sd[2];
  double p1; /* the exact classifier's mean probability of class 1 at t = 0 */
} GuidedStats;

/* B samples of class 1 under `guide` at scale S (classifier guidance) or weight S (classifier-free);
 * x_out (2 B floats, may be NULL) receives them. */
static GuidedStats guided_samples(const char *process, SamplerKind kind, int steps, Guide guide, double S, float *x_out) {
  Diffusion d;
  init_diffusion(&d, process, "linear");
  TwoClass tc = {&d, {{-0.5, 0.0}, {0.5, 0.3}}, 0.5};
  enum { B = GUIDED_B };
  SamplerOptions o;
  sampler_options_default(&o, kind, steps);
  if (kind == SAMPLER_ODE) o.method = ODE_HEUN;
  char err[256];
  EXPECT(sampler_check(&o, &d, err, sizeof err) == 0, "%s", err);
  float *x = malloc(2 * B * sizeof(float)), *work = malloc(sampler_work_floats(&o, 2 * B) * sizeof(float));
  float *grad = malloc(2 * B * sizeof(float));
  void *scratch = malloc(classifier_free_scratch_bytes(B, 2));
  int *labels = malloc(B * sizeof(int));
  for (int b = 0; b < B; b++) labels[b] = 1;
  rng_fill_normal(x, 2 * B, 61, 0, 0);
  const float prior = (float)diffusion_prior_std(&d);
  for (int i = 0; i < 2 * B; i++) x[i] *= prior;
  Denoiser mixture = {two_class_eps, 0, &tc, NULL, NULL};
  ClassifierGrad exact = {two_class_grad, 0, &tc};
  ClassifierGuided cg = {&mixture, &exact, &d, labels, S, 2, grad};
  LabelledTwoClass lt = {&tc, guide == GUIDE_FREE_GAUSSIAN_NULL, 0, 0};
  LabelledEps model = {.predict = labelled_two_class_predict, .null_label = 2, .ctx = &lt};
  ClassifierFree cf = {&model, labels, S, 2, scratch};
  Denoiser guided = guide == GUIDE_CLASSIFIER ? classifier_guided_denoiser(&cg) : classifier_free_denoiser(&cf);
  NoiseSource noise = noise_source_rng(62, 0);
  sampler_run(&o, &d, &guided, &noise, x, B, 2, work);
  GuidedStats st = {0};
  for (int j = 0; j < 2; j++) {
    double s1 = 0, s2 = 0;
    for (int b = 0; b < B; b++) s1 += x[2 * b + j];
    st.mean[j] = s1 / B;
    for (int b = 0; b < B; b++) s2 += (x[2 * b + j] - st.mean[j]) * (x[2 * b + j] - st.mean[j]);
    st.sd[j] = sqrt(s2 / (B - 1));
  }
  for (int b = 0; b < B; b++) {
    double r[2], v;
    two_class_posterior(&tc, x + 2 * b, 1, 0, r, &v);
    st.p1 += r[1] / B;
  }
  if (guide == GUIDE_CLASSIFIER)
    EXPECT(S == 0.0 || exact.nfe == guided.nfe, "%s: %ld classifier gradients for %ld evaluations",
           sampler_kind_name(kind), exact.nfe, guided.nfe);
  else /* one model call per evaluation, of 2 B rows when guided */
    EXPECT(lt.calls == guided.nfe && lt.rows == (S != 0.0 ? 2 * B : B), "%s: %ld model calls (last %ld rows) for %ld "
           "evaluations of %d images", sampler_kind_name(kind), lt.calls, lt.rows, guided.nfe, B);
  if (x_out) memcpy(x_out, x, 2 * B * sizeof(float));
  free(x), free(work), free(grad), free(labels), free(scratch);
  diffusion_free(&d);
  return st;
}

static void check_classifier_guidance(void) {
  const struct { const char *process; SamplerKind kind; int steps; } cases[] = {
      {"ddpm", SAMPLER_DDIM, 100}, {"ddpm", SAMPLER_ANCESTRAL, 250}, {"vpsde", SAMPLER_PC, 500}, {"vesde", SAMPLER_ODE, 100},
  };
  const double se_m = 0.5 / sqrt(GUIDED_B), se_s = 0.5 / sqrt(2.0 * GUIDED_B);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const GuidedStats g = guided_samples(cases[i].process, cases[i].kind, cases[i].steps, GUIDE_CLASSIFIER, 1.0, NULL);
    printf("condition: classifier guidance %s %s scale 1: mean (%.4f, %.4f) std (%.4f, %.4f), p(1) %.3f\n",
           cases[i].process, sampler_kind_name(cases[i].kind), g.mean[0], g.mean[1], g.sd[0], g.sd[1], g.p1);
    /* class 1's component N((0.5, 0.3), 0.25 I): 4 standard errors + 1% of the std for the steps */
    EXPECT(fabs(g.mean[0] - 0.5) < 4 * se_m + 0.005 && fabs(g.mean[1] - 0.3) < 4 * se_m + 0.005 &&
               fabs(g.sd[0] - 0.5) < 4 * se_s + 0.005 && fabs(g.sd[1] - 0.5) < 4 * se_s + 0.005,
           "classifier guidance %s %s scale 1: mean (%.4f, %.4f) std (%.4f, %.4f), want (0.5, 0.3) (0.5, 0.5)",
           cases[i].process, sampler_kind_name(cases[i].kind), g.mean[0], g.mean[1], g.sd[0], g.sd[1]);
    if (i) continue;
    const GuidedStats g0 = guided_samples(cases[i].process, cases[i].kind, cases[i].steps, GUIDE_CLASSIFIER, 0.0, NULL);
    const GuidedStats g3 = guided_samples(cases[i].process, cases[i].kind, cases[i].steps, GUIDE_CLASSIFIER, 3.0, NULL);
    printf("condition: classifier guidance %s %s: scale 0 mean (%.4f, %.4f) p(1) %.3f; scale 3 mean (%.4f, %.4f) "
           "p(1) %.3f\n", cases[i].process, sampler_kind_name(cases[i].kind), g0.mean[0], g0.mean[1], g0.p1, g3.mean[0],
           g3.mean[1], g3.p1);
    /* scale 0: the mixture, mean (0, 0.15) (coordinate stds 0.71 and 0.52) */
    EXPECT(fabs(g0.mean[0]) < 4 * 0.71 / sqrt(GUIDED_B) + 0.005 && fabs(g0.mean[1] - 0.15) < 4 * 0.52 / sqrt(GUIDED_B) + 0.005,
           "classifier guidance scale 0: mean (%.4f, %.4f), want the mixture's (0, 0.15)", g0.mean[0], g0.mean[1]);
    /* scale 3 has no closed form (the tilt at each noise level is not the noised tilt); it must push further
     * toward class 1 than its own component does */
    EXPECT(g3.p1 > g.p1 + 0.05 && g3.mean[0] > g.mean[0] + 0.1,
           "classifier guidance scale 3: p(1) %.3f mean %.4f, scale 1: %.3f %.4f", g3.p1, g3.mean[0], g.p1, g.mean[0]);
  }
}

static void check_classifier_free_guidance(void) {
  const struct { const char *process; SamplerKind kind; int steps; } cases[] = {
      {"ddpm", SAMPLER_DDIM, 100}, {"ddpm", SAMPLER_ANCESTRAL, 250}, {"vpsde", SAMPLER_PC, 500},
      {"vesde", SAMPLER_ODE, 100}, {"ddpm", SAMPLER_DPMPP, 20},
  };
  const double se_m = 0.5 / sqrt(GUIDED_B), se_s = 0.5 / sqrt(2.0 * GUIDED_B);
  /* the closed form: N(m_1 + w (m_1 - m_u), s^2 I), m_1 = (0.5, 0.3), m_u = (0, 0.15) */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (double w = 1; w <= 3; w += 2) {
      const GuidedStats g = guided_samples(cases[i].process, cases[i].kind, cases[i].steps, GUIDE_FREE_GAUSSIAN_NULL, w, NULL);
      const double want[2] = {0.5 + w * 0.5, 0.3 + w * 0.15};
      printf("condition: classifier-free %s %s w %g (Gaussian null): mean (%.4f, %.4f) std (%.4f, %.4f), closed form "
             "(%.3f, %.3f) (0.5, 0.5)\n", cases[i].process, sampler_kind_name(cases[i].kind), w, g.mean[0], g.mean[1],
             g.sd[0], g.sd[1], want[0], want[1]);
      /* 4 standard errors + 1% of the std for the steps */
      EXPECT(fabs(g.mean[0] - want[0]) < 4 * se_m + 0.005 && fabs(g.mean[1] - want[1]) < 4 * se_m + 0.005 &&
                 fabs(g.sd[0] - 0.5) < 4 * se_s + 0.005 && fabs(g.sd[1] - 0.5) < 4 * se_s + 0.005,
             "classifier-free %s %s w %g: mean (%.4f, %.4f) std (%.4f, %.4f), want (%.3f, %.3f) (0.5, 0.5)",
             cases[i].process, sampler_kind_name(cases[i].kind), w, g.mean[0], g.mean[1], g.sd[0], g.sd[1], want[0],
             want[1]);
    }
  /* the exact mixture as the null pass (ddim): w = 0 is class 1's component; w is classifier guidance of
   * scale 1 + w; the class's probability rises with w */
  enum { N = 2 * GUIDED_B };
  float *free_x = malloc(N * sizeof(float)), *cg_x = malloc(N * sizeof(float));
  double last_p1 = 0, last_mean = 0;
  for (int w = 0; w <= 3; w++) {
    const GuidedStats g = guided_samples("ddpm", SAMPLER_DDIM, 100, GUIDE_FREE, w, free_x);
    guided_samples("ddpm", SAMPLER_DDIM, 100, GUIDE_CLASSIFIER, 1.0 + w, cg_x);
    double diff = 0;
    for (int i = 0; i < N; i++) diff = fmax(diff, fabs(free_x[i] - cg_x[i]));
    printf("condition: classifier-free ddpm ddim w %d (mixture null): mean (%.4f, %.4f) p(1) %.3f; vs classifier "
           "guidance scale %d: max |diff| %.2e\n", w, g.mean[0], g.mean[1], g.p1, 1 + w, diff);
    EXPECT(diff < 1e-4, "classifier-free w %d vs classifier guidance scale %d: max |diff| %.2e", w, 1 + w, diff);
    if (w == 0)
      EXPECT(fabs(g.mean[0] - 0.5) < 4 * se_m + 0.005 && fabs(g.mean[1] - 0.3) < 4 * se_m + 0.005 &&
                 fabs(g.sd[0] - 0.5) < 4 * se_s + 0.005 && fabs(g.sd[1] - 0.5) < 4 * se_s + 0.005,
             "classifier-free w 0: mean (%.4f, %.4f) std (%.4f, %.4f), want class 1's (0.5, 0.3) (0.5, 0.5)", g.mean[0],
             g.mean[1], g.sd[0], g.sd[1]);
    else
      EXPECT(g.p1 > last_p1 && g.mean[0] > last_mean + 0.1, "classifier-free w %d: p(1) %.3f mean %.4f, not above "
             "w %d's %.3f %.4f", w, g.p1, g.mean[0], w - 1, last_p1, last_mean);
    last_p1 = g.p1, last_mean = g.mean[0];
  }
  free(free_x), free(cg_x);
}

int main(void) {
  check_classifier_guidance();
  check_classifier_free_guidance();
  Known kn[3];
  known_inpaint(&kn[0]);
  known_colorize(&kn[1]);
  known_lowres(&kn[2]);
  const int dims[3] = {6, 6, 8};
  for (int k = 0; k < 3; k++) check_projection(&kn[k], dims[k]);
  { /* refusals */
    SamplerOptions o;
    char err[256];
    sampler_options_default(&o, SAMPLER_DPMPP, 20);
    EXPECT(sampler_check_condition(&o, &kn[0].c, 6, err, sizeof err) == -1 && strstr(err, "ancestral"), "dpmpp: %s", err);
    sampler_options_default(&o, SAMPLER_DDIM, 20);
    o.strength = 0.5;
    EXPECT(sampler_check_condition(&o, &kn[0].c, 6, err, sizeof err) == -1 && strstr(err, "--strength"), "strength: %s", err);
    o.strength = 1.0, o.resample = 0;
    EXPECT(sampler_check_condition(&o, &kn[0].c, 6, err, sizeof err) == -1 && strstr(err, "--resample"), "R 0: %s", err);
    o.resample = 1;
    EXPECT(sampler_check_condition(&o, &kn[0].c, 8, err, sizeof err) == -1 && strstr(err, "layout"), "size: %s", err);
    SamplerCondition gray = {.kind = CONDITION_COLORIZE, .channels = 1, .height = 2, .width = 3};
    EXPECT(sampler_check_condition(&o, &gray, 6, err, sizeof err) == -1 && strstr(err, "3-channel"), "gray: %s", err);
    SamplerCondition odd = {.kind = CONDITION_LOWRES, .channels = 1, .height = 2, .width = 3, .factor = 2};
    EXPECT(sampler_check_condition(&o, &odd, 6, err, sizeof err) == -1 && strstr(err, "--factor"), "factor: %s", err);
    EXPECT(sampler_check_condition(&o, &kn[2].c, 8, err, sizeof err) == 0, "lowres: %s", err);
  }
  /* 44 statistics per run (the mean and covariance entries): 5 standard errors bounds their largest at
   * p ~ 1e-5 under the null (Bonferroni) */
  const double tol = 5.0;
  for (int k = 0; k < 3; k++) {
    const ConditionResult plain = run_condition("ddpm", SAMPLER_ANCESTRAL, 250, 1, 10, VARIANCE_FIXED_SMALL, &kn[k], dims[k], false);
    const ConditionResult repaint = run_condition("ddpm", SAMPLER_ANCESTRAL, 250, 10, 10, VARIANCE_FIXED_SMALL, &kn[k], dims[k], false);
    EXPECT(plain.vs_algorithm < tol && repaint.vs_algorithm < tol, "%s ancestral: the samples are %.2f (R 1) / %.2f "
           "(R 10) standard errors from the algorithm's distribution", kn[k].name, plain.vs_algorithm, repaint.vs_algorithm);
    /* replacement alone is biased on correlated data (the comparison can see it); resampling reduces it */
    EXPECT(plain.algorithm_vs_exact > tol && repaint.algorithm_vs_exact < plain.algorithm_vs_exact,
           "%s: plain replacement %.2f, RePaint R 10 %.2f standard errors from the exact conditional", kn[k].name,
           plain.algorithm_vs_exact, repaint.algorithm_vs_exact);
  }
  const ConditionResult ddim = run_condition("vpsde", SAMPLER_DDIM, 100, 5, 5, VARIANCE_FIXED_SMALL, &kn[2], dims[2], false);
  EXPECT(ddim.vs_algorithm < tol, "lowres ddim: %.2f standard errors from the algorithm's distribution", ddim.vs_algorithm);
  /* where the known part tells nothing about the rest, replacement is exact: every family */
  const struct { const char *process; SamplerKind kind; int steps, R; } exact_cases[] = {
      {"ddpm", SAMPLER_ANCESTRAL, 250, 1}, {"ddpm", SAMPLER_ANCESTRAL, 1000, 2}, {"vesde", SAMPLER_DDIM, 250, 1},
      {"ddpm", SAMPLER_PC, 1000, 1},       {"vpsde", SAMPLER_PC, 500, 2},
  };
  for (size_t i = 0; i < sizeof exact_cases / sizeof exact_cases[0]; i++) {
    const ConditionResult r = run_condition(exact_cases[i].process, exact_cases[i].kind, exact_cases[i].steps,
                                            exact_cases[i].R, 10, VARIANCE_FIXED_SMALL, &kn[0], dims[0], true);
    EXPECT(r.vs_exact < tol, "inpaint %s %s on independent data: %.2f standard errors from the exact conditional",
           exact_cases[i].process, sampler_kind_name(exact_cases[i].kind), r.vs_exact);
  }
  return test_report("condition");
}
