/* test_objective.c - the training loss of every diffusion objective (DDPM eps / x0 / v, linear and
 * cosine; NCSN; VP, sub-VP and VE SDEs; EDM; flow matching; min-SNR and likelihood weighting)
 * against PyTorch for the same x0, noise levels and noise (fixture: scripts/gen_objective_fixtures.py,
 * using the synthetic small U-Net), the learned-variance losses (hybrid, vlb) with their parameter
 * gradients, and the training-time distributions: EDM's log-normal sigma, flow's logit-normal t, the
 * likelihood weighting's importance-sampled t against their CDFs, and L_vlb's loss-history sampler. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "diffusion/objective.h"
#include "synthetic.h"
#include "test_util.h"

#define LOSS_TOL 1e-5
/* float32 network and backward against a float64 loss on float32 outputs: 1e-4 of the gradient's scale */
#define GRAD_TOL 1e-4

/* iDDPM's second-moment resampler: uniform until every t has 10 terms, then p_t proportional to the
 * RMS of the last 10 (mixed with 0.001 uniform); old terms drop out; the weight is 1 / p_t. */
static void check_loss_history(void) {
  DiffusionConfig c;
  diffusion_config_default(&c);
  c.T = 4;
  c.learn_sigma = true;
  Diffusion d;
  char err[256];
  EXPECT(diffusion_init(&d, &c, err, sizeof err) == 0, "%s", err);
  Objective o;
  EXPECT(objective_init(&o, &d, "vlb", "none", 5.0, err, sizeof err) == 0, "%s", err);
  double tau[40], terms[40];
  for (int i = 0; i < 40; i++) tau[i] = i % 4, terms[i] = 1.0 + (i % 4); /* t: 10 terms each of 1 + t */
  objective_record_terms(&o, tau, terms, 39);
  EXPECT(!o.history.warm && fabs(o.history.p[2] - 0.25) < 1e-15, "not warm with 9 terms at t = 3");
  objective_record_terms(&o, tau + 39, terms + 39, 1);
  const double total = 1 + 2 + 3 + 4;
  double worst = 0;
  for (int t = 0; t < 4; t++) worst = fmax(worst, fabs(o.history.p[t] - (0.999 * (1 + t) / total + 0.001 / 4)));
  EXPECT(o.history.warm && worst < 1e-12, "warm p off by %.2e", worst);
  /* u on the CDF: t = 3 holds the top 0.999 * 4 / 10 + 0.001 / 4 of the mass */
  EXPECT(o.history.cdf[4] >= 1.0 && fabs(o.history.cdf[3] - (1 - o.history.p[3])) < 1e-12, "cdf");
  /* ten new terms of 8 at t = 0 replace the old ones: p_0 = 8 / (8 + 2 + 3 + 4) */
  double t0[10] = {0}, big[10];
  for (int i = 0; i < 10; i++) big[i] = 8.0;
  objective_record_terms(&o, t0, big, 10);
  EXPECT(fabs(o.history.p[0] - (0.999 * 8 / 17 + 0.00025)) < 1e-12, "history window: p_0 %.6f", o.history.p[0]);
  /* a corrupt table is refused on load */
  o.history.table[0] = 11;
  EXPECT(objective_history_loaded(&o, err, sizeof err) != 0 && strstr(err, "t = 0"), "bad count accepted");
  objective_free(&o);
  /* loss / variance combinations that make no sense */
  EXPECT(objective_init(&o, &d, "simple", "none", 5.0, err, sizeof err) != 0 && strstr(err, "train.loss to hybrid or vlb"),
         "learn_sigma with the simple loss: %s", err);
  objective_free(&o);
  EXPECT(objective_init(&o, &d, "vlb", "min_snr", 5.0, err, sizeof err) != 0 && strstr(err, "train.loss_weighting"),
         "vlb with min_snr: %s", err);
  objective_free(&o);
  diffusion_free(&d);
  c.learn_sigma = false;
  EXPECT(diffusion_init(&d, &c, err, sizeof err) == 0, "%s", err);
  EXPECT(objective_init(&o, &d, "hybrid", "none", 5.0, err, sizeof err) != 0 && strstr(err, "diffusion.learn_sigma true"),
         "hybrid without learn_sigma: %s", err);
  objective_free(&o);
  diffusion_free(&d);
  strcpy(c.type, "vpsde");
  c.learn_sigma = true;
  EXPECT(diffusion_init(&d, &c, err, sizeof err) != 0 && strstr(err, "needs type ddpm"), "learn_sigma on vpsde: %s", err);
  diffusion_free(&d);
}

/* The gradient of parameter `name` of m against the fixture's <case>.grad.<name>. */
static void check_param_grad(const SafeTensors *st, UNet *m, Graph *g, const char *case_name, const char *name) {
  char key[160];
  snprintf(key, sizeof key, "%s.grad.%s", case_name, name);
  Tensor *want = fixture_tensor(g, st, key);
  const int i = params_find(&m->params, name);
  EXPECT(want && i >= 0 && m->params.info[i].numel == want->numel, "%s: fixture gradient missing", key);
  if (!(want && i >= 0)) return;
  float *got = xmalloc(want->numel * sizeof(float)), *expected = xmalloc(want->numel * sizeof(float));
  params_read(&m->params, m->params.grad, i, got);
  tensor_download(want, expected);
  expect_close(key, got, expected, want->numel, GRAD_TOL);
  free(got), free(expected);
}

/* The training draws at given u against the closed-form quantiles. */
static void check_time_sampling(void) {
  DiffusionConfig c;
  char err[256];
  Diffusion d;
  diffusion_config_default(&c);
  strcpy(c.type, "edm");
  diffusion_config_type_defaults(&c, "edm");
  EXPECT(diffusion_init(&d, &c, err, sizeof err) == 0, "%s", err);
  /* ln sigma ~ N(-1.2, 1.2^2): the median is e^-1.2, Phi(1) = 0.8413447460685429 gives e^0 */
  EXPECT(fabs(diffusion_sample_tau(&d, 0.5) - exp(-1.2)) < 1e-12, "edm median sigma %.15g", diffusion_sample_tau(&d, 0.5));
  EXPECT(fabs(diffusion_sample_tau(&d, 0.8413447460685429) - 1.0) < 1e-9, "edm sigma at Phi(1): %.15g",
         diffusion_sample_tau(&d, 0.8413447460685429));
  EXPECT(diffusion_sample_tau(&d, 0.0) == 0.002 && diffusion_sample_tau(&d, 0.9999999) <= 80.0, "edm sigma clamped");
  diffusion_free(&d);
  diffusion_config_default(&c);
  strcpy(c.type, "flow");
  diffusion_config_type_defaults(&c, "flow");
  strcpy(c.t_sampling, "logit_normal");
  EXPECT(diffusion_init(&d, &c, err, sizeof err) == 0, "%s", err);
  /* Phi(-1) = 0.15865525393145707: t = sigmoid(-1) */
  EXPECT(fabs(diffusion_sample_tau(&d, 0.5) - 0.5) < 1e-12 &&
             fabs(diffusion_sample_tau(&d, 0.15865525393145707) - 1.0 / (1.0 + exp(1.0))) < 1e-9,
         "flow logit-normal t");
  diffusion_free(&d);
  /* likelihood weighting on the VP SDE: P(t <= t*) = [log(e^B - 1)] from t_eps to t*, normalised */
  diffusion_config_default(&c);
  strcpy(c.type, "vpsde");
  EXPECT(diffusion_init(&d, &c, err, sizeof err) == 0, "%s", err);
  LossWeighting w;
  EXPECT(loss_weighting_init(&w, &d, "likelihood", 5.0, err, sizeof err) == 0, "%s", err);
  const double b0 = c.beta_min, b1 = c.beta_max, eps = c.t_eps;
#define LOG_EXPM1_B(t) log(expm1((t) * b0 + 0.5 * (t) * (t) * (b1 - b0)))
  const double z0 = LOG_EXPM1_B(eps), z = LOG_EXPM1_B(1.0) - z0;
  double worst = 0, wmin = INFINITY, wmax = 0;
  for (int k = 1; k < 100; k++) {
    const double u = k / 100.0, t = loss_weighting_sample_tau(&w, &d, u), cdf = (LOG_EXPM1_B(t) - z0) / z;
    worst = fmax(worst, fabs(cdf - u));
    const double wt = loss_weighting_weight(&w, &d, t);
    wmin = fmin(wmin, wt), wmax = fmax(wmax, wt);
  }
#undef LOG_EXPM1_B
  /* density linear on each of 4096 log-spaced segments: the error is of the trapezoid rule, ~1e-6 */
  EXPECT(worst < 1e-5, "likelihood-weighted t: CDF off by %.2e", worst);
  /* the weight is g^2/sigma^2 over the density: the constant Z / (1 - t_eps) up to the same error */
  EXPECT(fabs(wmin / (z / (1 - eps)) - 1) < 1e-5 && fabs(wmax / (z / (1 - eps)) - 1) < 1e-5,
         "likelihood weights %.6g..%.6g, want %.6g", wmin, wmax, z / (1 - eps));
  loss_weighting_free(&w);
  diffusion_free(&d);
  /* weightings refused where they do not apply */
  diffusion_config_default(&c);
  EXPECT(diffusion_init(&d, &c, err, sizeof err) == 0, "%s", err);
  EXPECT(loss_weighting_init(&w, &d, "likelihood", 5.0, err, sizeof err) != 0 && strstr(err, "continuous SDEs"),
         "likelihood weighting on ddpm must be refused");
  EXPECT(loss_weighting_init(&w, &d, "snr", 5.0, err, sizeof err) != 0 && strstr(err, "none, min_snr, likelihood"),
         "unknown weighting");
  diffusion_free(&d);
}

static cJSON *section(const char *name, const char *json) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddItemToObject(root, name, cJSON_Parse(json));
  return root;
}

int main(void) {
  SafeTensors st;
  load_fixture(&st, "objective.safetensors");
  char err[512];
  UNetConfig mc;
  unet_config_default(&mc);
  cJSON *mroot = section("model", st_meta_get(&st, "model"));
  EXPECT(cfg_read_section(mroot, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, &mc, err, sizeof err) == 0, "%s", err);
  cJSON_Delete(mroot);
  UNet m, learned;
  unet_init(&m, &mc, backend_cpu());
  synthetic_params(&m.params);
  mc.learn_sigma = true;
  unet_init(&learned, &mc, backend_cpu());
  synthetic_params(&learned.params);
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 22);
  g.grad_enabled = false;
  int n_cases = 0;
  for (int i = 0; i < st.n_meta; i++) {
    const char *name = st.meta[i].key;
    if (!strcmp(name, "model")) continue;
    DiffusionConfig dc;
    diffusion_config_default(&dc);
    cJSON *meta = cJSON_Parse(st.meta[i].value);
    const cJSON *type = cJSON_GetObjectItem(cJSON_GetObjectItem(meta, "diffusion"), "type");
    diffusion_config_type_defaults(&dc, cJSON_IsString(type) ? type->valuestring : "");
    EXPECT(cfg_read_section(meta, "diffusion", DIFFUSION_CONFIG_FIELDS, DIFFUSION_CONFIG_N_FIELDS, &dc, err,
                            sizeof err) == 0, "%s: %s", name, err);
    Diffusion d;
    EXPECT(diffusion_init(&d, &dc, err, sizeof err) == 0, "%s: %s", name, err);
    Objective o;
    const cJSON *wname = cJSON_GetObjectItem(meta, "weighting"), *gamma = cJSON_GetObjectItem(meta, "gamma");
    const cJSON *lname = cJSON_GetObjectItem(meta, "loss");
    EXPECT(cJSON_IsString(wname) && cJSON_IsNumber(gamma) && cJSON_IsString(lname) &&
               objective_init(&o, &d, lname->valuestring, wname->valuestring, gamma->valuedouble, err, sizeof err) == 0,
           "%s: objective: %s", name, err);
    cJSON_Delete(meta);
    const bool learned_variance = dc.learn_sigma;
    UNet *model = learned_variance ? &learned : &m;
    graph_reset(&g);
    g.grad_enabled = learned_variance;
    if (learned_variance) params_zero_grad(&learned.params);
    Tensor *x0 = fixture_tensor(&g, &st, "x0"), *noise = fixture_tensor(&g, &st, "noise");
    char key[128];
    snprintf(key, sizeof key, "%s.tau", name);
    Tensor *tau_f = fixture_tensor(&g, &st, key);
    snprintf(key, sizeof key, "%s.loss", name);
    Tensor *want = fixture_tensor(&g, &st, key);
    EXPECT(x0 && noise && tau_f && want && tau_f->numel == (size_t)x0->shape[0], "%s: fixture incomplete", name);
    if (!(x0 && noise && tau_f && want)) continue;
    double tau[8];
    float tau_host[8], got, expected;
    CHECK(tau_f->numel <= 8);
    tensor_download(tau_f, tau_host);
    for (int b = 0; b < x0->shape[0]; b++) tau[b] = tau_host[b];
    Tensor *loss = diffusion_loss_at(&d, &o, model, &g, x0, tau, noise, NULL, NULL);
    snprintf(key, sizeof key, "%s loss", name);
    tensor_download(loss, &got);
    tensor_download(want, &expected);
    expect_close(key, &got, &expected, 1, LOSS_TOL);
    if (learned_variance) {
      graph_backward(&g, loss);
      check_param_grad(&st, model, &g, name, "conv_in.weight");
      check_param_grad(&st, model, &g, name, "conv_out.weight");
    }
    objective_free(&o);
    diffusion_free(&d);
    n_cases++;
  }
  EXPECT(n_cases == 16, "%d objective cases", n_cases);
  check_time_sampling();
  check_loss_history();
  printf("objective: %d cases\n", n_cases);
  graph_free(&g);
  unet_free(&m);
  unet_free(&learned);
  st_free(&st);
  return test_report("objective");
}
