/* test_objective.c - the training loss of every diffusion objective (DDPM eps / x0 / v, linear and
 * cosine; NCSN; VP, sub-VP and VE SDEs; EDM; flow matching; min-SNR and likelihood weighting)
 * against PyTorch for the same x0, noise levels and noise (fixture: scripts/gen_objective_fixtures.py,
 * using the synthetic small U-Net), and the training-time distributions: EDM's log-normal sigma,
 * flow's logit-normal t and the likelihood weighting's importance-sampled t against their CDFs. */
#include <cJSON.h>
#include <math.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "diffusion/objective.h"
#include "synthetic.h"
#include "test_util.h"

#define LOSS_TOL 1e-5

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
  UNet m;
  unet_init(&m, &mc, backend_cpu());
  synthetic_params(&m.params);
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
    LossWeighting w;
    const cJSON *wname = cJSON_GetObjectItem(meta, "weighting"), *gamma = cJSON_GetObjectItem(meta, "gamma");
    EXPECT(cJSON_IsString(wname) && cJSON_IsNumber(gamma) &&
               loss_weighting_init(&w, &d, wname->valuestring, gamma->valuedouble, err, sizeof err) == 0,
           "%s: weighting: %s", name, err);
    cJSON_Delete(meta);
    graph_reset(&g);
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
    Tensor *loss = diffusion_loss_at(&d, &w, &m, &g, x0, tau, noise, NULL);
    snprintf(key, sizeof key, "%s loss", name);
    tensor_download(loss, &got);
    tensor_download(want, &expected);
    expect_close(key, &got, &expected, 1, LOSS_TOL);
    loss_weighting_free(&w);
    diffusion_free(&d);
    n_cases++;
  }
  EXPECT(n_cases == 12, "%d objective cases", n_cases);
  check_time_sampling();
  printf("objective: %d cases\n", n_cases);
  graph_free(&g);
  unet_free(&m);
  st_free(&st);
  return test_report("objective");
}
