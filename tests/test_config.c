/* test_config.c - config sections: defaults, unknown keys and wrong types named, bounds, --set
 * overrides, and a write -> read round trip. */
#include <string.h>

#include "io/config.h"
#include "nn/unet.h"
#include "test_util.h"

static int read_model(const char *json, UNetConfig *c, char *err, size_t errlen) {
  cJSON *root = cJSON_Parse(json);
  unet_config_default(c);
  int rc = cfg_read_section(root, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, c, err, errlen);
  if (rc == 0) rc = unet_config_validate(c, err, errlen);
  cJSON_Delete(root);
  return rc;
}

static void expect_error(const char *json, const char *part) {
  UNetConfig c;
  char err[512] = "";
  EXPECT(read_model(json, &c, err, sizeof err) != 0 && strstr(err, part), "%s: error '%s' lacks '%s'", json, err, part);
}

int main(void) {
  UNetConfig c;
  char err[512];
  EXPECT(read_model("{\"model\": {\"ch\": 64, \"ch_mult\": [1, 2], \"resolution\": 16}}", &c, err, sizeof err) == 0, "%s", err);
  EXPECT(c.ch == 64 && c.n_ch_mult == 2 && c.ch_mult[1] == 2 && c.resolution == 16 && c.num_res_blocks == 2,
         "values or defaults wrong");
  expect_error("{\"model\": {\"chh\": 64}}", "model.chh: unknown key");
  expect_error("{\"model\": {\"ch\": \"64\"}}", "model.ch: expected an integer");
  expect_error("{\"model\": {\"ch\": 64.5}}", "model.ch: expected an integer");
  expect_error("{\"model\": {\"dropout\": 1.5}}", "model.dropout: 1.5 is outside");
  expect_error("{\"model\": {\"ch_mult\": [1, \"2\"]}}", "model.ch_mult");
  expect_error("{\"model\": {\"ch_mult\": [1,1,1,1,1,1,1,1,1]}}", "at most 8");
  expect_error("{\"model\": {\"groups\": 7}}", "model.groups");
  expect_error("{\"model\": {\"resolution\": 30}}", "model.resolution");
  expect_error("{\"model\": 3}", "model: expected an object");

  cJSON *root = cJSON_Parse("{\"model\": {\"ch\": 64}}");
  EXPECT(cfg_apply_override(root, "model.dropout=0.3", NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(cfg_apply_override(root, "model.ch=32", NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(cfg_apply_override(root, "model.ch_mult=[1,2]", NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(cfg_apply_override(root, "nodot=3", NULL, err, sizeof err) != 0 && strstr(err, "section.key=value"), "bad --set");
  unet_config_default(&c);
  EXPECT(cfg_read_section(root, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, &c, err, sizeof err) == 0, "%s", err);
  EXPECT(c.ch == 32 && c.dropout == 0.3 && c.n_ch_mult == 2, "overrides not applied");
  const char *const known[] = {"model", NULL};
  EXPECT(cfg_apply_override(root, "trian.steps=3", NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(cfg_check_sections(root, known, err, sizeof err) != 0 && strstr(err, "trian: unknown config section"), "'%s'", err);
  cJSON_Delete(root);

  /* round trip: write every field, read back the same struct */
  UNetConfig w;
  unet_config_default(&w);
  w.num_classes = 10;
  root = cJSON_CreateObject();
  cfg_write_section(root, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, &w);
  UNetConfig r;
  memset(&r, 0x55, sizeof r);
  EXPECT(cfg_read_section(root, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, &r, err, sizeof err) == 0, "%s", err);
  cJSON *again = cJSON_CreateObject();
  cfg_write_section(again, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, &r);
  EXPECT(cJSON_Compare(root, again, 1), "config round trip differs");
  EXPECT(r.num_classes == 10 && r.ch == 128 && r.n_attn_resolutions == 1 && r.attn_resolutions[0] == 16 &&
             r.norm_eps == 1e-6 && r.dropout == 0.1,
         "round-trip values");
  cJSON_Delete(again);
  cJSON_Delete(root);
  return test_report("config");
}
