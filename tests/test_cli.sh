#!/bin/sh
# test_cli.sh - exit codes and messages of the command line (0 ok, 1 error, 2 usage / not implemented),
# and diffuse sample end to end on a tiny model trained here.
# usage: test_cli.sh path/to/diffuse
bin="$1"
fail=0
. "$(dirname "$0")/expect.sh" # expect CODE PATTERN ARGS...
expect 0 "usage: diffuse <command>" --help
expect 0 "^diffuse [0-9]" --version
expect 0 "BLAS: .*OpenBLAS" --version
expect 2 "usage: diffuse <command>"
expect 2 "unknown command 'frobnicate'" frobnicate
expect 2 "unknown option '--bogus'" --bogus
for cmd in train sample encode eval info report; do
  expect 0 "usage: diffuse $cmd" "$cmd" --help
done

# diffuse sample end to end: a tiny model trained for a few steps on generated shapes
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp "$(dirname "$0")/tiny_model.json" "$tmp/tiny.json" # a tiny U-Net: 4 training steps on generated shapes
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run" --quiet
ck="$tmp/run/ckpt.safetensors"
# learning-rate schedules: cosine reaches 0 at the last step (log line of step 4); unknown names refused
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_cos" --quiet --set train.lr_schedule=cosine --set train.warmup=0 \
  --set train.ema_profile=power
grep -q '"step": 4, .*"lr": 0,' "$tmp/run_cos/log.jsonl" || { echo "FAIL: cosine schedule does not end at lr 0"; cat "$tmp/run_cos/log.jsonl"; fail=1; }
grep -q '"step": 2, .*"lr": 0.0001,' "$tmp/run_cos/log.jsonl" || { echo "FAIL: cosine schedule not at lr/2 halfway"; fail=1; }
expect 1 "train.lr_schedule: 'linear' is not constant, cosine or inverse_sqrt" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set train.lr_schedule=linear
# the other objectives end to end: EDM (type defaults: sigma 0.002..80, prediction edm), flow matching,
# min-SNR and likelihood weighting; each trains, samples and is refused where it does not apply
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_edm" --quiet --set diffusion.type=edm
grep -q '"sigma_max":[[:space:]]*80' "$tmp/run_edm/config.json" || { echo "FAIL: edm run lacks its sigma range"; fail=1; }
expect 0 "NFE 15" sample --ckpt "$tmp/run_edm/ckpt.safetensors" --sampler heun --steps 8 --n 2 --out "$tmp/g.png"
# EDM's default grid is karras for ddim too (the prior's std is sigma_max, not 1)
expect 0 "" sample --ckpt "$tmp/run_edm/ckpt.safetensors" --steps 4 --n 1 --save-tensor "$tmp/edm_default.st"
expect 0 "" sample --ckpt "$tmp/run_edm/ckpt.safetensors" --steps 4 --n 1 --spacing karras --save-tensor "$tmp/edm_karras.st"
cmp -s "$tmp/edm_default.st" "$tmp/edm_karras.st" || { echo "FAIL: ddim on an EDM model does not default to karras spacing"; fail=1; }
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_flow" --quiet --set diffusion.type=flow --set diffusion.t_sampling=logit_normal
expect 0 "NFE 10" sample --ckpt "$tmp/run_flow/ckpt.safetensors" --sampler ode --method euler --steps 10 --n 2 --out "$tmp/g.png"
expect 0 "" sample --ckpt "$tmp/run_flow/ckpt.safetensors" --sampler unipc --steps 5 --n 2 --outdir "$tmp/flow_pngs"
expect 0 "bits/dim" eval nll --ckpt "$tmp/run_flow/ckpt.safetensors" --data "$tmp/flow_pngs" --n 2 --method ode
# the held-out training loss: the model's own objective, repeatable for a seed
expect 0 "(flow, prediction velocity, loss simple, weighting none; 2 test images x 3 draws" eval loss --ckpt "$tmp/run_flow/ckpt.safetensors" --data "$tmp/flow_pngs" --repeats 3
l1=$("$bin" eval loss --ckpt "$tmp/run_edm/ckpt.safetensors" --data "$tmp/flow_pngs" --seed 4 | cut -d' ' -f2)
l2=$("$bin" eval loss --ckpt "$tmp/run_edm/ckpt.safetensors" --data "$tmp/flow_pngs" --seed 4 | cut -d' ' -f2)
[ -n "$l1" ] && [ "$l1" = "$l2" ] || { echo "FAIL: eval loss not repeatable ($l1 vs $l2)"; fail=1; }
expect 1 "--n, --batch and --repeats must be >= 1" eval loss --ckpt "$tmp/run_edm/ckpt.safetensors" --data "$tmp/flow_pngs" --repeats 0
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_snr" --quiet --set train.loss_weighting=min_snr
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_ll" --quiet --set diffusion.type=vpsde --set train.loss_weighting=likelihood
expect 1 "likelihood weighting is for the continuous SDEs" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set train.loss_weighting=likelihood
expect 1 "min_snr does not apply to type edm" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set diffusion.type=edm --set train.loss_weighting=min_snr
expect 1 "type edm trains prediction edm (remove the key), not v" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set diffusion.type=edm --set diffusion.prediction=v
expect 1 "diffusion.t_sampling: 'beta' is not uniform or logit_normal" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set diffusion.type=flow --set diffusion.t_sampling=beta
# learned variance (iDDPM): hybrid and vlb train; ancestral sampling and eval nll use the variance by default
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_sigma" --quiet --set diffusion.learn_sigma=true --set train.loss=hybrid
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_vlb" --quiet --set diffusion.learn_sigma=true --set train.loss=vlb
cks="$tmp/run_sigma/ckpt.safetensors"
expect 0 "NFE 10" sample --ckpt "$cks" --sampler ancestral --steps 10 --n 2 --outdir "$tmp/sigma_pngs"
expect 0 "NFE 100" sample --ckpt "$tmp/run_vlb/ckpt.safetensors" --sampler ancestral --n 2 --out "$tmp/g.png"
expect 0 "NFE 5" sample --ckpt "$cks" --sampler ddim --steps 5 --n 2 --out "$tmp/g.png"
expect 0 "(variational bound, variance learned, stratified terms, 2 test images" eval nll --ckpt "$cks" --data "$tmp/sigma_pngs" --terms 4
expect 0 "(variational bound, variance fixed_large, stratified terms" eval nll --ckpt "$cks" --data "$tmp/sigma_pngs" --terms 4 --variance fixed_large
expect 0 "(ddpm, prediction eps, loss hybrid, weighting none" eval loss --ckpt "$cks" --data "$tmp/sigma_pngs"
expect 1 "--variance learned needs a model trained with diffusion.learn_sigma" sample --ckpt "$ck" --sampler ancestral --variance learned --n 1 --out "$tmp/g.png"
expect 1 "--variance learned needs a model trained with diffusion.learn_sigma" eval nll --ckpt "$ck" --data "$tmp/sigma_pngs" --variance learned
expect 1 "diffusion.learn_sigma: set train.loss to hybrid or vlb" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set diffusion.learn_sigma=true
expect 1 "train.loss: vlb trains the model's variance, so it needs diffusion.learn_sigma true" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set train.loss=vlb
expect 1 "train.loss: 'kl' is not one of simple, hybrid, vlb" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set train.loss=kl
expect 1 "learn_sigma: the learned variance interpolates DDPM's beta and beta-tilde, so it needs type ddpm" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set diffusion.type=vpsde --set diffusion.learn_sigma=true
# SDEdit: an image of the model's size taken part of the way to the noise and sampled back
img="$tmp/sigma_pngs/000000.png"
expect 0 "NFE 5 per image" sample --ckpt "$ck" --steps 10 --image "$img" --strength 0.5 --n 3 --out "$tmp/sd.png"
expect 0 "NFE 20 per image" sample --ckpt "$ck" --sampler ancestral --image "$img" --strength 0.2 --n 2 --out "$tmp/sd.png"
expect 1 "png_gray.png is 5x3, not the 8x8 needed" sample --ckpt "$ck" --image "$(dirname "$0")/fuzz/corpus_image/png_gray.png" --strength 0.5 --out "$tmp/sd.png"
expect 1 "regress_hdr_truncated_rle.png: " sample --ckpt "$ck" --image "$(dirname "$0")/fuzz/corpus_image/regress_hdr_truncated_rle.png" --strength 0.5 --out "$tmp/sd.png"
expect 2 "--image needs a task: --strength S" sample --ckpt "$ck" --image "$img" --out "$tmp/sd.png"
expect 2 "--strength is for --image" sample --ckpt "$ck" --strength 0.5 --out "$tmp/sd.png"
expect 1 "--strength must be in (0, 1]" sample --ckpt "$ck" --image "$img" --strength 1.5 --out "$tmp/sd.png"
expect 1 "--strength 0.05 keeps 0 of the 10 grid points" sample --ckpt "$ck" --steps 10 --image "$img" --strength 0.05 --out "$tmp/sd.png"
expect 1 "--strength needs a fixed grid" sample --ckpt "$ck" --sampler ode --image "$img" --strength 0.5 --out "$tmp/sd.png"
# inpainting (white = keep), colourisation and ILVR: the grid shows input | mask or reference | samples
fx="$(dirname "$0")/fixtures"
expect 0 "NFE 10 per image" sample --ckpt "$ck" --sampler ancestral --steps 10 --image "$img" --mask "$fx/mask8_left.png" --n 3 --out "$tmp/inp.png"
# RePaint, 10 points, J 2, R 3: jump points at levels 0, 2, 4, 6 each redo 2 steps twice, 16 more evaluations
expect 0 "NFE 26 per image" sample --ckpt "$ck" --sampler ancestral --steps 10 --image "$img" --mask "$fx/mask8_left.png" --resample 3 --jump 2 --n 2 --out "$tmp/inp.png"
expect 0 "NFE 20 per image" sample --ckpt "$ck" --sampler pc --steps 10 --image "$img" --mask "$fx/mask8_left.png" --n 2 --out "$tmp/inp.png"
expect 0 "NFE 10 per image" sample --ckpt "$ck" --steps 10 --image "$img" --colorize --n 2 --out "$tmp/col.png"
expect 0 "NFE 10 per image" sample --ckpt "$ck" --steps 10 --lowres "$fx/lowres4.png" --factor 2 --n 2 --out "$tmp/ilvr.png"
expect 0 "NFE 10 per image" sample --ckpt "$ck" --sampler ancestral --steps 10 --lowres "$fx/lowres2.png" --factor 4 --n 2 --outdir "$tmp/ilvr4"
expect 1 "--lowres (1/2 of the model's 8x8): .*lowres2.png is 2x2, not the 4x4 needed" sample --ckpt "$ck" --lowres "$fx/lowres2.png" --factor 2 --out "$tmp/ilvr.png"
expect 2 "--factor must be 2 or 4" sample --ckpt "$ck" --lowres "$fx/lowres2.png" --factor 3 --out "$tmp/ilvr.png"
expect 2 "--lowres needs --factor 2 or 4" sample --ckpt "$ck" --lowres "$fx/lowres2.png" --out "$tmp/ilvr.png"
expect 2 "--mask needs --image" sample --ckpt "$ck" --mask "$fx/mask8_left.png" --out "$tmp/inp.png"
expect 2 "are different tasks: give one" sample --ckpt "$ck" --image "$img" --mask "$fx/mask8_left.png" --strength 0.5 --out "$tmp/inp.png"
expect 2 "--resample and --jump (RePaint) are for --mask, --colorize or --lowres" sample --ckpt "$ck" --image "$img" --strength 0.5 --resample 2 --out "$tmp/inp.png"
expect 1 "runs on the samplers that step between grid points one at a time: ancestral (RePaint), ddim or pc" sample --ckpt "$ck" --sampler dpmpp --image "$img" --mask "$fx/mask8_left.png" --out "$tmp/inp.png"
expect 1 "--mask .*lowres4.png is 4x4, not the 8x8 needed" sample --ckpt "$ck" --image "$img" --mask "$fx/lowres4.png" --out "$tmp/inp.png"
expect 2 "--jump J is the length of RePaint's resampling jumps: it needs --resample R > 1" sample --ckpt "$ck" --image "$img" --mask "$fx/mask8_left.png" --jump 3 --out "$tmp/inp.png"
expect 1 "--jump 10 must be less than --steps 10" sample --ckpt "$ck" --sampler ddim --steps 10 --image "$img" --mask "$fx/mask8_left.png" --resample 2 --out "$tmp/inp.png"
expect 1 "--resample must be in \[1, 1000\]" sample --ckpt "$ck" --image "$img" --mask "$fx/mask8_left.png" --resample 0 --out "$tmp/inp.png"
# classifier guidance: a noise-conditional classifier trained by diffuse train guides every sampler family
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/clf" --quiet --set model.classifier=true --set model.num_classes=4
clf="$tmp/clf/ckpt.safetensors"
for s in ddim ancestral pc; do
  expect 0 "classifier scale 2 (a classifier gradient per evaluation)" sample --ckpt "$ck" --classifier "$clf" --classifier-scale 2 --sampler $s --steps 5 --class 1,3 --n 4 --out "$tmp/cg.png"
done
expect 0 "sampler ode: 4 images" sample --ckpt "$ck" --classifier "$clf" --sampler ode --method heun --steps 5 --class 2 --n 4 --save-tensor "$tmp/cg.safetensors"
expect 0 "accuracy [01].[0-9]* (.* of 4 samples, labelled by the --class rule)" eval accuracy --classifier "$clf" --samples "$tmp/cg.safetensors" --class 2
expect 2 "--n and --split choose dataset images" eval accuracy --classifier "$clf" --samples "$tmp/cg.safetensors" --n 3
expect 1 "bench times denoisers" bench --config "$tmp/clf/config.json" --mode sample --steps 1 --warmup 0
expect 1 "is a classifier checkpoint (model.classifier), not a denoiser" sample --ckpt "$clf" --out "$tmp/cg.png"
expect 1 "is a denoiser checkpoint, not a classifier" sample --ckpt "$ck" --classifier "$ck" --out "$tmp/cg.png"
expect 1 "is a denoiser checkpoint, not a classifier" eval accuracy --classifier "$ck" --samples "$tmp/cg.safetensors"
expect 2 "--classifier-scale is for --classifier" sample --ckpt "$ck" --classifier-scale 2 --out "$tmp/cg.png"
expect 1 "--classifier-scale must be >= 0" sample --ckpt "$ck" --classifier "$clf" --classifier-scale -1 --out "$tmp/cg.png"
expect 1 "--class 7 but the model has 4 classes" sample --ckpt "$ck" --classifier "$clf" --class 7 --out "$tmp/cg.png"
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/clf50" --quiet --steps 1 --set model.classifier=true --set model.num_classes=4 --set diffusion.T=50
expect 1 "the classifier was trained on times 0..49, the model on 0..99" sample --ckpt "$ck" --classifier "$tmp/clf50/ckpt.safetensors" --out "$tmp/cg.png"
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/clfcos" --quiet --steps 1 --set model.classifier=true --set model.num_classes=4 --set diffusion.beta_schedule=cosine
expect 1 "trained on another noise process" sample --ckpt "$ck" --classifier "$tmp/clfcos/ckpt.safetensors" --out "$tmp/cg.png"
expect 1 "model.classifier: set model.num_classes" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set model.classifier=true
expect 1 "train.p_uncond is for denoisers" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set model.classifier=true --set model.num_classes=4 --set train.p_uncond=0.1
# PF-ODE encoding: the latent decodes back with sample --sampler ode; slerp between two latents
expect 0 "round trip: decode(encode(image)) differs from the image by at most" encode --ckpt "$ck" --image "$img" --out "$tmp/z.safetensors" --verify
expect 0 "sampler ode: 1 images" sample --ckpt "$ck" --init-noise "$tmp/z.safetensors" --sampler ode --out "$tmp/recon.png"
expect 0 "sampler ode: 4 images" sample --ckpt "$ck" --init-noise "$tmp/z.safetensors" --interpolate "$tmp/z.safetensors" --frames 4 --sampler ode --out "$tmp/interp.png"
expect 2 "--frames is for --interpolate" sample --ckpt "$ck" --init-noise "$tmp/z.safetensors" --frames 4 --out "$tmp/interp.png"
expect 2 "--interpolate B goes from the latent of --init-noise A" sample --ckpt "$ck" --interpolate "$tmp/z.safetensors" --frames 4 --out "$tmp/interp.png"
expect 1 "--frames must be in \[2, 4096\]" sample --ckpt "$ck" --init-noise "$tmp/z.safetensors" --interpolate "$tmp/z.safetensors" --frames 1 --out "$tmp/interp.png"
expect 1 "encode: .*not the 8x8 needed" encode --ckpt "$ck" --image "$fx/lowres4.png" --out "$tmp/z2.safetensors"
expect 2 "--ckpt, --image and --out are required" encode --ckpt "$ck" --image "$img"
# classifier-free guidance: label dropout to a null class in training, --guidance in sample and eval fid
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_cfg" --quiet --set model.num_classes=3 --set train.p_uncond=0.2
ckc="$tmp/run_cfg/ckpt.safetensors"
expect 0 "guidance 3 (2 network rows per image)" sample --ckpt "$ckc" --steps 4 --n 6 --class 2,0 --guidance 3 --out "$tmp/g.png"
expect 0 "NFE 4 per image, [0-9]" sample --ckpt "$ckc" --steps 4 --n 2 --class 1 --out "$tmp/g.png"
expect 1 "--guidance needs a class-conditional model" sample --ckpt "$ck" --steps 4 --n 2 --guidance 1 --out "$tmp/g.png"
expect 0 "" train --config "$tmp/tiny.json" --out "$tmp/run_cond" --quiet --set model.num_classes=3
expect 1 "--guidance needs a model trained with train.p_uncond > 0" sample --ckpt "$tmp/run_cond/ckpt.safetensors" --steps 4 --n 2 --guidance 1 --out "$tmp/g.png"
expect 1 "--guidance must be >= 0" sample --ckpt "$ckc" --steps 4 --n 2 --guidance -1 --out "$tmp/g.png"
expect 1 "--class 3 but the model has 3 classes (0..2)" sample --ckpt "$ckc" --steps 4 --n 2 --class 1,3 --out "$tmp/g.png"
expect 1 "--class -7 but the model has 3 classes (0..2)" sample --ckpt "$ckc" --steps 4 --n 2 --class -7 --out "$tmp/g.png"
expect 1 "--class '1,x': expected a class or a comma-separated list" sample --ckpt "$ckc" --steps 4 --n 2 --class 1,x --out "$tmp/g.png"
expect 1 "--class needs a class-conditional model" sample --ckpt "$ck" --steps 4 --n 2 --class 1 --out "$tmp/g.png"
expect 1 "train.p_uncond drops class labels, so it needs a class-conditional model" train --config "$tmp/tiny.json" --out "$tmp/run_bad" --set train.p_uncond=0.1
# devices: the CPU backend only in this build; cuda is refused naming the build option, before any work
expect 0 "compiled backends: cpu" info --devices
expect 0 '"device": "cpu"' bench --config "$tmp/tiny.json" --mode sample --batch 1 --steps 1 --warmup 0 --device cpu
if "$bin" --version | grep -q "^CUDA: *built"; then # a CUDA build: the devices are listed, bad names still refused
  expect 0 "compiled backends: cpu, cuda" info --devices
else
  expect 1 "built without the CUDA backend (rebuild with cmake -DDIFFUSE_CUDA=ON)" train --config "$tmp/tiny.json" --out "$tmp/cuda_run" --device cuda
  [ -e "$tmp/cuda_run" ] && { echo "FAIL: a refused --device created the run directory"; fail=1; }
  expect 1 "device 'cuda:1': this diffuse was built without" sample --ckpt "$ck" --out "$tmp/g.png" --device cuda:1
  expect 1 "built without the CUDA backend" eval stats --images "$tmp" --out "$tmp/s.npz" --device cuda
  expect 1 "built without the CUDA backend" bench --mode gemm --device cuda
fi
expect 1 "train.device: device 'gpu' is not one of cpu, cuda, cuda:N" train --config "$tmp/tiny.json" --out "$tmp/cuda_run" --set train.device=gpu
expect 1 "write cuda or cuda:N" eval nll --ckpt "$ck" --data "$tmp" --device cuda:x
expect 0 "sampler ddim: 2 images" sample --ckpt "$ck" --steps 4 --n 2 --out "$tmp/g.png" --device cpu
expect 0 "sampler ddim: 5 images, NFE 10" sample --ckpt "$ck" --steps 10 --n 5 --batch 2 --out "$tmp/g.png" --save-tensor "$tmp/a.st"
[ -s "$tmp/g.png" ] || { echo "FAIL: no grid written"; fail=1; }
# --precision bf16: bf16 convolutions where the CPU has AVX512-BF16 or AMX (other samples than fp32's,
# by bf16 rounding), elsewhere fp32 with a message saying so (the same samples)
expect 0 "sampler ddim: 5 images, NFE 10" sample --ckpt "$ck" --steps 10 --n 5 --batch 2 --precision bf16 --save-tensor "$tmp/a_bf16.st"
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then
  cmp -s "$tmp/a.st" "$tmp/a_bf16.st" && { echo "FAIL: --precision bf16 gave fp32's samples on a bf16 CPU"; fail=1; }
else
  expect 0 "--precision bf16: .*running in fp32" sample --ckpt "$ck" --steps 10 --n 5 --batch 2 --precision bf16 --save-tensor "$tmp/a_bf16.st"
  cmp -s "$tmp/a.st" "$tmp/a_bf16.st" || { echo "FAIL: the fp32 fallback of --precision bf16 differs from fp32"; fail=1; }
fi
expect 1 "--precision: 'fp16' is not fp32 or bf16" sample --ckpt "$ck" --steps 4 --n 1 --precision fp16 --out "$tmp/g.png"
expect 2 "sampler flags and --precision apply to images generated with --ckpt" eval fid --images "$tmp" --ref "$tmp/x.npz" --precision bf16
expect 2 "--precision is for --mode sample" bench --config "$tmp/tiny.json" --mode train --precision bf16
expect 0 "NFE 100" sample --ckpt "$ck" --sampler ancestral --n 3 --out "$tmp/g.png"
expect 0 "NFE 8" sample --ckpt "$ck" --sampler ddim --eta 1 --spacing quadratic --steps 8 --n 3 --out "$tmp/g.png"
expect 0 "NFE 20" sample --ckpt "$ck" --sampler pc --steps 10 --predictor euler_maruyama --n 3 --out "$tmp/g.png"
expect 0 "NFE 19" sample --ckpt "$ck" --sampler ode --method heun --steps 10 --n 3 --out "$tmp/g.png"
expect 0 "sampler ode" sample --ckpt "$ck" --sampler ode --n 3 --out "$tmp/g.png"
expect 0 "NFE 8" sample --ckpt "$ck" --sampler dpmpp --steps 8 --n 3 --out "$tmp/g.png"
expect 0 "NFE 20" sample --ckpt "$ck" --sampler ancestral --steps 20 --n 3 --out "$tmp/g.png"
expect 0 "NFE 8" sample --ckpt "$ck" --sampler dpmpp_sde --steps 8 --n 3 --out "$tmp/g.png"
expect 0 "NFE 15" sample --ckpt "$ck" --sampler dpmpp_2s --eta 1 --steps 8 --n 3 --out "$tmp/g.png"
expect 0 "NFE 8" sample --ckpt "$ck" --sampler dpmpp_3m --steps 8 --n 3 --out "$tmp/g.png"
expect 0 "NFE 8" sample --ckpt "$ck" --sampler unipc --steps 8 --spacing karras --n 3 --out "$tmp/g.png"
expect 0 "NFE 8" sample --ckpt "$ck" --sampler euler_ancestral --steps 8 --n 3 --out "$tmp/g.png"
expect 0 "NFE 15" sample --ckpt "$ck" --sampler heun --steps 8 --s-churn 10 --n 3 --out "$tmp/g.png"
# --init-noise reproduces a run exactly, whatever the batch; --outdir never overwrites without --force
expect 0 "" sample --ckpt "$ck" --steps 10 --n 5 --batch 2 --seed 3 --save-tensor "$tmp/noise.st" --sampler ddim --eta 1
expect 0 "5 images" sample --ckpt "$ck" --steps 10 --init-noise "$tmp/noise.st" --batch 5 --save-tensor "$tmp/b.st"
expect 0 "5 images" sample --ckpt "$ck" --steps 10 --init-noise "$tmp/noise.st" --batch 2 --save-tensor "$tmp/c.st"
cmp -s "$tmp/b.st" "$tmp/c.st" || { echo "FAIL: --init-noise samples depend on --batch"; fail=1; }
expect 0 "" sample --ckpt "$ck" --steps 10 --n 5 --batch 1 --out "$tmp/g1.png" --save-tensor "$tmp/a1.st"
cmp -s "$tmp/a.st" "$tmp/a1.st" || { echo "FAIL: DDIM samples depend on --batch"; fail=1; }
expect 0 "" sample --ckpt "$ck" --steps 5 --n 3 --outdir "$tmp/pngs"
[ -s "$tmp/pngs/000002.png" ] || { echo "FAIL: --outdir wrote no numbered PNGs"; fail=1; }
expect 1 "[0-9].png exists (use --force" sample --ckpt "$ck" --steps 5 --n 3 --outdir "$tmp/pngs"
expect 0 "" sample --ckpt "$ck" --steps 5 --n 3 --outdir "$tmp/pngs" --force
# diffuse eval: NLL of the tiny model on its own samples; FID needs the user's Inception weights
expect 0 "bits/dim (variational bound, variance fixed_small, stratified terms, 3 test images" eval nll --ckpt "$ck" --data "$tmp/pngs" --terms 5
expect 0 "bits/dim (probability-flow ODE" eval nll --ckpt "$ck" --data "$tmp/pngs" --method ode --rtol 1e-3 --atol 1e-3
unset DIFFUSE_INCEPTION
expect 1 "no Inception weights: give --inception" eval stats --images "$tmp/pngs" --out "$tmp/s.npz"
expect 1 "convert_inception.py" eval stats --images "$tmp/pngs" --out "$tmp/s.npz" --inception "$tmp/none.safetensors"
expect 1 "s.npz: cannot open" eval fid --ref "$tmp/s.npz" --images "$tmp/pngs" --inception "$tmp/none.safetensors"
fixtures="$(dirname "$0")/fixtures"
expect 1 "mu must have shape (2048,)" eval fid --ref "$fixtures/fid_stats_a.npz" --images "$tmp/pngs" --inception "$tmp/none.safetensors"
expect 2 "exactly one image source" eval fid --ref "$tmp/s.npz" --inception "$tmp/none.safetensors"
expect 2 "unknown evaluation 'kid'" eval kid
[ -e "$tmp/s.npz" ] && { echo "FAIL: a failed eval stats wrote its output"; fail=1; }

# diffuse bench: one JSON line; --profile's table covers the ops of a training step
expect 0 '"mode": "sample", "config"' bench --config "$tmp/tiny.json" --mode sample --batch 2 --steps 2 --warmup 1
expect 0 "conv2d" bench --config "$tmp/tiny.json" --batch 2 --steps 2 --warmup 1 --profile
expect 2 "profile times recorded ops" bench --config "$tmp/tiny.json" --mode sample --profile
expect 0 '"mode": "gemm", "n": 2048' bench --mode gemm --steps 1 --warmup 0
expect 2 "train|sample|gemm" bench --mode fast

# --set on a string key takes the value as a string, whatever it looks like
expect 1 "2020: cannot open" train --config "$tmp/tiny.json" --out "$tmp/run2020" --set data.path=2020
expect 1 "true: cannot open" train --config "$tmp/tiny.json" --out "$tmp/run2020" --set data.path=true

# a streamed folder with an unreadable image: the steps done are saved, and no message claims a checkpoint
# that does not exist
mkdir "$tmp/stream"
for i in $(seq 10 99); do cp "$(dirname "$0")/fuzz/corpus_image/png_rgb.png" "$tmp/stream/$i.png"; done
for i in 0 1 2 3 4 5 6 7 8 9; do echo "not an image" > "$tmp/stream/bad$i.png"; done
out=$("$bin" train --config "$tmp/tiny.json" --out "$tmp/runs" --data "$tmp/stream" --steps 500 --quiet \
  --set model.resolution=64 --set 'model.ch_mult=[1,2,2,2]' --set 'model.attn_resolutions=[]' --set data.cache_mb=1 2>&1)
got=$?
[ $got = 1 ] || { echo "FAIL: a streamed unreadable image exited $got, expected 1"; fail=1; }
printf '%s' "$out" | grep -q "bad[0-9].png: cannot decode image" || { echo "FAIL: no decode error: $out"; fail=1; }
if printf '%s' "$out" | grep -q "steps done are saved in"; then
  "$bin" info --ckpt "$tmp/runs/ckpt.safetensors" > /dev/null || { echo "FAIL: the saved steps do not load"; fail=1; }
elif ! printf '%s' "$out" | grep -q "no checkpoint was written yet"; then
  echo "FAIL: the stop names no checkpoint state: $out"; fail=1
fi

# sampler flags that mean nothing to the chosen sampler are refused, naming where they apply
expect 2 "--clip has no effect with --sampler ddim; it is for ancestral" sample --ckpt "$ck" --clip --out "$tmp/g.png"
expect 2 "--eta has no effect with --sampler dpmpp; it is for ddim" sample --ckpt "$ck" --sampler dpmpp --eta 0.5 --out "$tmp/g.png"
expect 2 "--variance has no effect with --sampler dpmpp" sample --ckpt "$ck" --sampler dpmpp --variance fixed_large --out "$tmp/g.png"
expect 2 "--snr has no effect with --sampler dpmpp; it is for pc" sample --ckpt "$ck" --sampler dpmpp --snr 0.2 --out "$tmp/g.png"
expect 2 "--s-churn has no effect with --sampler ddim; it is for heun" sample --ckpt "$ck" --s-churn 5 --out "$tmp/g.png"
expect 2 "--eta has no effect with --sampler unipc" sample --ckpt "$ck" --sampler unipc --eta 1 --out "$tmp/g.png"
expect 1 "ancestral sampler steps on integer timesteps" sample --ckpt "$ck" --sampler ancestral --steps 10 --spacing karras --out "$tmp/g.png"
expect 2 "unknown sampler 'euler' (ancestral, ddim, .*, heun)" sample --ckpt "$ck" --sampler euler --out "$tmp/g.png"
expect 2 "--rtol has no effect with --sampler ode" sample --ckpt "$ck" --sampler ode --method heun --rtol 1e-3 --out "$tmp/g.png"
expect 2 "--eta has no effect with --sampler pc" eval fid --ref "$tmp/s.npz" --ckpt "$ck" --n 4 --sampler pc --eta 1

# a --config that disagrees with the checkpoint's embedded config is an error naming the keys; an equal one is fine
sed 's/"ch": 8/"ch": 16/' "$tmp/tiny.json" > "$tmp/other.json"
expect 1 "differs from it in 1 key(s): model.ch 8 vs 16" sample --ckpt "$ck" --config "$tmp/other.json" --out "$tmp/g.png"
expect 0 "5 images" sample --ckpt "$ck" --config "$tmp/tiny.json" --steps 2 --n 5 --out "$tmp/g.png"

# NLL of zero-padded IDX images (6x6 padded to the 8x8 model, as Fashion-MNIST's 28 to 32) says the padding counts
printf '\000\000\010\003\000\000\000\004\000\000\000\006\000\000\000\006' > "$tmp/p-images-idx3-ubyte"
head -c 144 /dev/urandom >> "$tmp/p-images-idx3-ubyte"
expect 0 "the 6x6 images are zero-padded to 8x8" eval nll --ckpt "$ck" --data "$tmp/p-images-idx3-ubyte" --terms 2

# meaningless or malformed requests
expect 1 "variance-exploding" sample --ckpt "$ck" --sampler langevin --out "$tmp/g.png"
expect 2 "unknown sampler 'euler'" sample --ckpt "$ck" --sampler euler --out "$tmp/g.png"
expect 2 "--method must be" sample --ckpt "$ck" --sampler ode --method rk4 --out "$tmp/g.png"
expect 1 "exceeds the model's 100 noise levels" sample --ckpt "$ck" --steps 500 --out "$tmp/g.png"
expect 1 "holds 5 samples but --n is 4" sample --ckpt "$ck" --init-noise "$tmp/noise.st" --n 4 --out "$tmp/g.png"
expect 1 "no tensor named" sample --ckpt "$ck" --init-noise "$ck" --out "$tmp/g.png"

[ $fail = 0 ] && echo "cli: all checks passed"
exit $fail
