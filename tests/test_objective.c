/* test_objective.c - the training loss of every diffusion objective (DDPM eps / x0 / v, linear and
 * cosine; NCSN; VP, sub-VP and VE SDEs) against PyTorch for the same x0, noise levels and noise
 * (fixture: scripts/gen_objective_fixtures.py, using the synthetic small U-Net). */
#include <cJSON.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "diffusion/objective.h"
#include "synthetic.h"
#include "test_util.h"

#define LOSS_TOL 1e-5

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
    cJSON *droot = section("diffusion", st.meta[i].value);
    EXPECT(cfg_read_section(droot, "diffusion", DIFFUSION_CONFIG_FIELDS, DIFFUSION_CONFIG_N_FIELDS, &dc, err,
                            sizeof err) == 0, "%s: %s", name, err);
    cJSON_Delete(droot);
    Diffusion d;
    EXPECT(diffusion_init(&d, &dc, err, sizeof err) == 0, "%s: %s", name, err);
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
    Tensor *loss = diffusion_loss_at(&d, &m, &g, x0, tau, noise, NULL);
    snprintf(key, sizeof key, "%s loss", name);
    tensor_download(loss, &got);
    tensor_download(want, &expected);
    expect_close(key, &got, &expected, 1, LOSS_TOL);
    diffusion_free(&d);
    n_cases++;
  }
  EXPECT(n_cases == 7, "%d objective cases", n_cases);
  printf("objective: %d cases\n", n_cases);
  graph_free(&g);
  unet_free(&m);
  st_free(&st);
  return test_report("objective");
}
