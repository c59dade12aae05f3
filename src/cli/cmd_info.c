/* cmd_info.c - `diffuse info`: model summary (parameters, per-level shapes, forward GFLOPs per
 * image, memory estimate for a training batch). GFLOPs count 2 x multiply-adds of convolutions,
 * linears and attention, measured by running one forward pass; activation memory is measured as
 * the autograd arena's high-water mark for a forward+backward at batch 1 and 2 (unet_activation_bytes),
 * extrapolated linearly, as the trainer's memory check does. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "run_config_source.h"
#include "nn/checkpoint.h"

static double MiB(double bytes) { return bytes / (1024.0 * 1024.0); }

static void print_list(const int *v, int n) {
  printf("[");
  for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", v[i]);
  printf("]");
}

int cmd_info(int argc, char **argv) {
  const char *config_path = NULL, *ckpt_path = NULL;
  int batch = 1;
  bool devices = false;
  const ArgSpec specs[] = {{"--config", ARG_STRING, &config_path},
                           {"--ckpt", ARG_STRING, &ckpt_path},
                           {"--batch", ARG_INT, &batch},
                           {"--devices", ARG_FLAG, &devices}};
  const int parse_rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "info");
  if (parse_rc) return parse_rc;
  if (devices && !config_path && !ckpt_path) {
    backend_print_devices();
    return 0;
  }
  if (batch < 1) {
    fprintf(stderr, "diffuse info: --batch must be >= 1\n");
    return 2;
  }
  char err[1024];
  RunConfig run;
  if (resolve_run_config(config_path, ckpt_path, &run, err, sizeof err)) {
    fprintf(stderr, "diffuse info: %s\n", err);
    return 1;
  }
  const UNetConfig cfg = run.model;
  UNet m;
  unet_init(&m, &cfg, backend_cpu()); /* shapes, FLOPs and memory of the model, measured on the CPU */
  if (ckpt_path) {
    const CheckpointLoadOptions opt = {.use_ema = true};
    if (checkpoint_load(ckpt_path, &m, &opt, NULL, err, sizeof err)) {
      fprintf(stderr, "diffuse info: %s\n", err);
      unet_free(&m);
      return 1;
    }
  }
  size_t n_params = 0;
  for (int i = 0; i < m.params.count; i++) n_params += m.params.info[i].numel;
  printf("model       %s, %zu parameters (%.1f MiB as fp32), %d tensors\n",
         cfg.classifier ? "noise-conditional classifier (U-Net encoder, attention pool)" : "DDPM U-Net", n_params,
         MiB(4.0 * n_params), m.params.count);
  printf("config      resolution %d, in_channels %d, ch %d, ch_mult ", cfg.resolution, cfg.in_channels, cfg.ch);
  print_list(cfg.ch_mult, cfg.n_ch_mult);
  printf(", num_res_blocks %d, attn_resolutions ", cfg.num_res_blocks);
  print_list(cfg.attn_resolutions, cfg.n_attn_resolutions);
  printf(", dropout %g, groups %d, norm_eps %g", cfg.dropout, cfg.groups, cfg.norm_eps);
  if (cfg.num_classes) printf(", num_classes %d%s", cfg.num_classes, cfg.classifier ? ", classifier" : "");
  printf("\n\n%-8s %-11s %-9s %-11s %s\n", "block", "resolution", "channels", "res blocks", "attention");
  for (int i = 0; i < cfg.n_ch_mult; i++)
    printf("down.%-3d %4dx%-6d %-9d %-11d %s\n", i, m.down[i].resolution, m.down[i].resolution, m.down[i].out_ch,
           cfg.num_res_blocks, m.down[i].has_attn ? "yes" : "no");
  const UNetLevel *last = &m.down[cfg.n_ch_mult - 1];
  printf("%-8s %4dx%-6d %-9d %-11d %s\n", "mid", last->resolution, last->resolution, last->out_ch, 2, "yes");
  if (cfg.classifier)
    printf("%-8s %4dx%-6d %-9d %-11s %d head(s) -> %d logits\n", "pool", last->resolution, last->resolution,
           last->out_ch, "-", unet_pool_heads(&cfg), cfg.num_classes);
  for (int u = 0; u < cfg.n_ch_mult && !cfg.classifier; u++)
    printf("up.%-5d %4dx%-6d %-9d %-11d %s\n", u, m.up[u].resolution, m.up[u].resolution, m.up[u].out_ch,
           cfg.num_res_blocks + 1, m.up[u].has_attn ? "yes" : "no");

  double flops = 0.0;
  unet_activation_bytes(&m, 1, false, &flops);
  const size_t act1 = unet_activation_bytes(&m, 1, true, NULL), act2 = unet_activation_bytes(&m, 2, true, NULL);
  const double per_image = (double)act2 - (double)act1, fixed = (double)act1 - per_image;
  const double state = 5.0 * 4.0 * (double)m.params.total; /* weights, grads, 2 AdamW moments, EMA */
  printf("\nforward     %.2f GFLOP per image\n", flops / 1e9);
  printf("memory      training at batch %d: about %.0f MiB (parameter state %.0f MiB + activations %.0f MiB)\n", batch,
         MiB(state + fixed + per_image * batch), MiB(state), MiB(fixed + per_image * batch));
  unet_free(&m);
  return 0;
}
