/* test_diffusion.c - noise processes against reference formulas (fixture from
 * scripts/gen_diffusion_fixtures.py: DDPM linear/cosine, NCSN sigmas, VP/sub-VP/VE marginals), plus
 * the continuous-time view (fractional tau, SDE coefficients) the samplers rely on. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "diffusion/denoiser.h"
#include "diffusion/diffusion.h"
#include "test_util.h"

#define SCHEDULE_TOL 2e-6 /* float32 storage of float64 references */


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

/* The continuous view samplers use: fractional tau interpolates between the tables, and the SDE
 * coefficients are the derivatives of the marginals (central differences in double). */
static void check_continuous_view(void) {
  const char *procs[8][2] = {{"ddpm", "linear"},     {"ddpm", "cosine"}, {"ncsn", "linear"}, {"vpsde", "linear"},
                             {"subvpsde", "linear"}, {"vesde", "linear"}, {"edm", "linear"},  {"flow", "linear"}};
  for (int k = 0; k < 8; k++) {
    Diffusion d;
    init_diffusion(&d, procs[k][0], procs[k][1]);
    const double lo = diffusion_tau_min(&d), hi = diffusion_tau_max(&d);
    for (int i = 1; i < 10; i++) {
      /* discrete: mid-segment points, where the interpolation is smooth */
      const double tau = d.discrete ? floor(lo + (hi - lo) * i / 10.0) + 0.5 : lo + (hi - lo) * i / 10.0;
      const double h = d.discrete ? 0.25 : 1e-5;
      double a0, s0, a1, s1, a, s, dla, dls, f, g2;
      diffusion_marginal(&d, tau - h, &a0, &s0);
      diffusion_marginal(&d, tau + h, &a1, &s1);
      diffusion_marginal(&d, tau, &a, &s);
      diffusion_log_derivatives(&d, tau, &dla, &dls);
      diffusion_sde(&d, tau, &f, &g2);
      const double fd_la = (log(a1) - log(a0)) / (2 * h), fd_ls = (log(s1) - log(s0)) / (2 * h);
      const double tol = 1e-5 * (1.0 + fabs(fd_ls)) + (d.discrete ? 1e-3 * fabs(fd_ls) : 0.0);
      EXPECT(fabs(dla - fd_la) <= 1e-5 * (1.0 + fabs(fd_la)) && fabs(dls - fd_ls) <= tol,
             "%s %s tau %g: dlog alpha %.8g (fd %.8g), dlog sigma %.8g (fd %.8g)", procs[k][0], procs[k][1], tau, dla,
             fd_la, dls, fd_ls);
      EXPECT(fabs(g2 - 2 * s * s * (dls - dla)) <= 1e-12 * (1 + fabs(g2)) && g2 > 0, "%s g^2 %.6g", procs[k][0], g2);
      if (d.kind == DIFFUSION_EDM) /* dx = sqrt(2 sigma) dW: the EDM ODE dx/dsigma = -sigma score */
        EXPECT(f == 0.0 && fabs(g2 - 2 * tau) < 1e-12 * tau && a == 1.0 && s == tau, "EDM: f %g g2 %.8g", f, g2);
      if (d.kind == DIFFUSION_FLOW) /* x_t = (1 - t) x0 + t eps */
        EXPECT(fabs(a - (1 - tau)) < 1e-15 && s == tau, "flow marginal at %g: %g %g", tau, a, s);
      if (d.kind == DIFFUSION_VPSDE) {
        const double beta = d.cfg.beta_min + tau * (d.cfg.beta_max - d.cfg.beta_min);
        EXPECT(fabs(f + 0.5 * beta) < 1e-12 && fabs(g2 - beta) < 1e-9 * beta, "VP SDE: f %.8g g2 %.8g beta %.8g", f, g2, beta);
      }
    }
    if (d.discrete) { /* integer tau: the tables exactly; fractional tau between its neighbours */
      double a, s, a5, s5, a6, s6;
      diffusion_marginal(&d, 5.0, &a5, &s5);
      diffusion_marginal(&d, 6.0, &a6, &s6);
      diffusion_marginal(&d, 5.5, &a, &s);
      EXPECT((d.kind == DIFFUSION_DDPM ? a5 * a5 == d.alphas_cumprod[5] || fabs(a5 * a5 - d.alphas_cumprod[5]) < 1e-15
                                       : s5 == d.sigmas[5]) &&
                 s > fmin(s5, s6) && s < fmax(s5, s6),
             "%s: tau 5.5 sigma %.8g not between %.8g and %.8g", procs[k][0], s, s5, s6);
    }
    diffusion_free(&d);
  }
}

int main(void) {
  SafeTensors st;
  load_fixture(&st, "diffusion.safetensors");
  Diffusion d;
  init_diffusion(&d, "ddpm", "linear");
  check_curve("ddpm linear alphas_cumprod", &d, &st, "ddpm_linear.alphas_cumprod", NULL, 2);
  diffusion_free(&d);
  init_diffusion(&d, "ddpm", "cosine");
  check_curve("ddpm cosine alphas_cumprod", &d, &st, "ddpm_cosine.alphas_cumprod", NULL, 2);
  diffusion_free(&d);
  init_diffusion(&d, "ncsn", "linear");
  check_curve("ncsn sigmas", &d, &st, "ncsn.sigmas", NULL, 1);
  diffusion_free(&d);

  const StTensor *tt = st_find(&st, "sde.t");
  float t[16];
  char err[128];
  EXPECT(tt && tt->numel <= 16 && st_tensor_to_f32(tt, t, err, sizeof err) == 0, "sde.t");
  const char *kinds[3] = {"vpsde", "subvpsde", "vesde"};
  for (int k = 0; k < 3; k++) {
    init_diffusion(&d, kinds[k], "linear");
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
  init_diffusion(&d, "ddpm", "linear");
  EXPECT(diffusion_sample_tau(&d, 0.0) == 0 && diffusion_sample_tau(&d, 0.99999) == 999, "ddpm tau range");
  EXPECT(diffusion_label(&d, 517) == 517, "ddpm label is the timestep");
  diffusion_free(&d);
  init_diffusion(&d, "edm", "linear"); /* Karras et al.'s ranges and c_noise */
  EXPECT(diffusion_tau_min(&d) == 0.002 && diffusion_tau_max(&d) == 80 && diffusion_prior_std(&d) == 80 &&
             fabs(diffusion_label(&d, 2.0) - 0.25 * log(2.0)) < 1e-15,
         "edm range / label");
  diffusion_free(&d);
  init_diffusion(&d, "flow", "linear");
  EXPECT(diffusion_tau_min(&d) == d.cfg.t_eps && diffusion_tau_max(&d) == 1 - d.cfg.t_eps && diffusion_prior_std(&d) == 1,
         "flow range");

  diffusion_free(&d);
  check_continuous_view();
  st_free(&st);
  return test_report("diffusion");
}
