/* main.c - the `diffuse` command line: dispatch to subcommands, global --help / --version.
 *
 * Exit codes: 0 success, 1 user or environment error (bad file, bad config, a flag value out of
 * range), 2 usage error (unknown command or flag, missing value, a value that is not a number,
 * missing or conflicting flags); `train` stopped by a signal: 128 + the signal.
 */
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "commands.h"
#include "backend/backend.h"
#include "backend/comm.h"

typedef struct {
  const char *name;
  const char *summary;
  const char *usage; /* shown by `diffuse <cmd> --help` */
  int (*run)(int argc, char **argv);
} Command;

static const Command COMMANDS[] = {
    {"train", "train a diffusion model on an image folder, CIFAR-10 batches or IDX files",
     "usage: diffuse train --config F [--data PATH] [--out DIR] [--steps N] [--batch N] [--seed S]\n"
     "                     [--resume CKPT | --force] [--set section.key=value ...] [--skip-bad] [--quiet]\n"
     "  --config F       JSON config with sections model, diffusion, train, data (see configs/)\n"
     "  --data PATH      image folder (png/jpg/bmp/tga, recursive), CIFAR-10 binary batches dir,\n"
     "                   or IDX file/dir (MNIST format, .gz ok); overrides data.path\n"
     "  --out DIR        output dir: config.json, log.jsonl, ckpt.safetensors, samples/, report.html\n"
     "                   (default out)\n"
     "  --steps/--batch/--seed  override train.steps / train.batch / train.seed\n"
     "  --resume CKPT    continue a run exactly from a training checkpoint\n"
     "  --force          start over in an --out that holds a run (deletes its log, checkpoint, grids);\n"
     "                   without --resume or --force such an --out is refused\n"
     "  --set S.K=V      override any config key (V parsed as JSON, else a string); repeatable\n"
     "  --skip-bad       skip unreadable images (counted) instead of stopping\n"
     "  --quiet          plain log lines instead of a progress bar\n"
     "  --device D       where to train: cpu (default), cuda or cuda:N; overrides train.device\n"
     "SIGINT, SIGTERM, SIGHUP: checkpoint and exit 130, 143, 129; a second signal stops at once\n",
     cmd_train},
    {"sample", "generate images from a checkpoint with any sampler",
     "usage: diffuse sample --ckpt F [--config C] [--sampler NAME] [--steps N] [--n N] --out grid.png\n"
     "                      [--outdir DIR] [--force] [--save-tensor F] [--init-noise F] [--seed S] [--batch N]\n"
     "                      [--no-ema] [--class C[,C...]] [--guidance W] [sampler options]\n"
     "  --sampler NAME   ddim (default), ancestral, langevin, pc, ode, dpmpp, dpmpp_sde, dpmpp_2s, dpmpp_3m,\n"
     "                   unipc, euler_ancestral or heun; ancestral needs a DDPM model, langevin an NCSN or VE\n"
     "                   SDE one, every other sampler accepts every type (ddpm ncsn vpsde subvpsde vesde edm flow)\n"
     "  --steps N        time-grid points (default 50; ancestral: all T levels, or a respaced subset of N;\n"
     "                   ode rk45 is adaptive; heun: 2N-1 network evaluations, the others 1 per point, dpmpp_2s 2)\n"
     "  --spacing S      uniform (t = 0, T/S, 2T/S, ...; ddim default, trailing for VE models), quadratic,\n"
     "                   trailing (ends at T-1; ancestral, langevin, pc, ode default), logsnr (dpmpp*, unipc\n"
     "                   default), karras (rho = 7 in sigma/alpha; euler_ancestral, heun default)\n"
     "  --eta E          ddim: 0 deterministic (default) .. 1 stochastic; dpmpp_sde (default 1), dpmpp_2s,\n"
     "                   dpmpp_3m (default 0) and euler_ancestral (default 1): the noise added per step\n"
     "  --variance V     ancestral: fixed_small (posterior beta-tilde, default), fixed_large (beta) or\n"
     "                   learned (the model's own; the default for diffusion.learn_sigma models)\n"
     "  --clip           ancestral: clip the predicted x0 to [-1, 1]\n"
     "  --step-size E    langevin: step E sigma_i^2 / sigma_min^2 (default 6.2e-6)\n"
     "  --corrector-steps K  langevin (default 5) and pc (default 1) Langevin steps per level\n"
     "  --snr R          pc: corrector signal-to-noise ratio (default 0.16)\n"
     "  --predictor P    pc: reverse_diffusion (default) or euler_maruyama\n"
     "  --method M       ode: euler, heun or rk45 (default; --rtol, --atol default 1e-5)\n"
     "  --s-churn X      heun: EDM's S_churn (default 0, deterministic); --s-tmin, --s-tmax: the sigma/alpha\n"
     "                   range it applies to (default all); --s-noise: S_noise (default 1)\n"
     "  --n N            number of images (default 64, or the N of --init-noise); --batch N per forward (16)\n"
     "  --out F          PNG grid; --outdir DIR one PNG per image (numbered, not overwritten without --force)\n"
     "  --save-tensor F  the raw float samples as safetensors (tensor x, [N, C, H, W])\n"
     "  --init-noise F   x_T from safetensors tensor x [N, C, H, W] (prior scale: std sigma_max for VE models)\n"
     "  --config C       architecture + diffusion for checkpoints without an embedded config\n"
     "  --no-ema         use the online (non-EMA) weights of a training checkpoint\n"
     "  --class C[,C...] class labels of a conditional model: grid row r (ceil(sqrt(n)) columns) is class\n"
     "                   C_(r mod k) (default: cycle through the classes, image by image)\n"
     "  --image F --strength S  SDEdit (Meng et al. 2022): F (PNG/JPEG at the model's size) taken to\n"
     "                   alpha x + sigma z at the grid point floor(S steps) from the end, then sampled back\n"
     "                   over those points (any grid sampler); the grid's first tile is F\n"
     "  --image F --mask M  inpainting: M (white = keep) marks the pixels of F the samples keep exactly;\n"
     "                   the rest is generated. ancestral (RePaint), ddim or pc (score_sde's inpainter)\n"
     "  --image F --colorize  colourisation (score_sde): the samples keep F's grayscale (channel mean)\n"
     "  --lowres F --factor 2|4  ILVR super-resolution (Choi et al. 2021) with an unconditional model: F is\n"
     "                   1/factor of the model's size; the samples' factor x factor block means are F's\n"
     "  --resample R --jump J  RePaint's resampling for --mask/--colorize/--lowres: at every J-th step go J\n"
     "                   steps back by the forward process, R - 1 times (default R 1: none; J 10)\n"
     "                   grids show input | mask or grayscale | samples\n"
     "  --guidance W     classifier-free guidance (Ho & Salimans 2022): eps = (1+W) eps(c) - W eps(null), one\n"
     "                   network call of 2B images; models trained with train.p_uncond > 0 (also eval fid)\n"
     "  --interpolate B --frames K  with --init-noise A: K images from the latents slerp(A, B, k / (K - 1))\n"
     "                   (latents of diffuse encode; decode with --sampler ode for the images themselves)\n"
     "  --device D       where the network runs: cpu (default), cuda or cuda:N (see diffuse info --devices)\n"
     "  --precision P    fp32 (default) or bf16: the model's convolutions with bf16 products and fp32 sums, on\n"
     "                   AMX tiles (Intel Sapphire Rapids and later) or AVX512-BF16 (slower than fp32 there);\n"
     "                   elsewhere fp32, with a message\n",
     cmd_sample},
    {"encode", "an image to its probability-flow ODE latent x_T (for reconstruction and interpolation)",
     "usage: diffuse encode --ckpt F --image in.png --out latent.safetensors [--rtol R --atol A] [--verify]\n"
     "  --image F        PNG or JPEG at the model's size\n"
     "  --out F          the latent as safetensors tensor x [1, C, H, W]: diffuse sample --init-noise F\n"
     "                   --sampler ode (with the same --rtol/--atol) decodes it back to the image\n"
     "  --rtol, --atol   the rk45 solver's tolerances (default 1e-5, as sample's ode)\n"
     "  --class C        the class of a class-conditional model (decode with the same --class)\n"
     "  --verify         decode the latent again and print the round trip's largest error\n"
     "  --config C, --no-ema, --device D as diffuse sample\n",
     cmd_encode},
    {"eval", "FID, Inception Score, NLL (bits/dim), the held-out training loss and a classifier's accuracy",
     "usage: diffuse eval stats (--images DIR | --data PATH [--split train|test]) --out stats.npz [options]\n"
     "       diffuse eval fid --ref stats.npz (--images DIR | --data PATH | --ckpt F [sampler flags] --n N) [options]\n"
     "       diffuse eval nll --ckpt F --data PATH [--split test|train] [--n N] [--method vlb|ode] [options]\n"
     "       diffuse eval loss --ckpt F --data PATH [--split test|train] [--n N] [--repeats K] [--seed S]\n"
     "       diffuse eval accuracy --classifier F (--data PATH [--split test|train] [--n N] | --samples F [--class C,...])\n"
     "  --inception F    Inception-v3 FID weights as safetensors (or set DIFFUSE_INCEPTION); convert pytorch-fid's\n"
     "                   pt_inception-2015-12-05-6726825d.pth with scripts/convert_inception.py\n"
     "  --images DIR     a folder of images (recursive); --data: CIFAR-10 binaries / IDX / folder\n"
     "  --resolution R   images are fitted to R x R first (default: --images at their own size, --data 32)\n"
     "  --n N            at most N dataset images; with --ckpt the number to generate (50000 for papers)\n"
     "  --ref F          reference statistics (.npz with mu, sigma; pytorch-fid's files work)\n"
     "  --batch N        images per Inception / sampler batch (default 50); --seed S as diffuse sample\n"
     "  --splits K       Inception Score splits (default 10)\n"
     "  --allow-few-images  compute even with fewer than 2048 images (not comparable to published FIDs)\n"
     "  sampler flags    --sampler --steps --eta --spacing ... as in diffuse sample (with --ckpt)\n"
     "  --device D       where the networks run: cpu (default), cuda or cuda:N (stats, fid and nll)\n"
     "  --precision P    fid --ckpt: the sampled model in fp32 (default) or bf16 as diffuse sample (the\n"
     "                   Inception network stays fp32)\n"
     "nll: --method vlb (DDPM bound, Ho et al.; --terms K stratified KL terms, default all; --variance\n"
     "     fixed_small|fixed_large|learned, default learned for learn_sigma models) or ode (probability-flow ODE + Hutchinson, uniform dequantisation;\n"
     "     --rtol, --atol 1e-5); --n images of the split (default 1000), --batch 16, --seed S\n"
     "loss: the checkpoint's own training objective (process, prediction, loss weighting) with its EMA\n"
     "     weights on --n held-out images (default 1000), K draws of (tau, noise) each (default 4), --batch 50\n"
     "accuracy: a classifier checkpoint (model.classifier) on clean images at tau_min: the held-out images of\n"
     "     --data (all by default; --n N: N of them, in a folder spread over its classes), or the tensor x of\n"
     "     sample --save-tensor labelled as sample labelled them (--class list)\n",
     cmd_eval},
    {"bench", "time a training step or sampling forward (JSON line)",
     "usage: diffuse bench --config F [--mode train|sample] [--batch N] [--steps N] [--warmup N] [--threads N]\n"
     "                     [--profile] [--device D] [--precision fp32|bf16 (sample)]\n"
     "       diffuse bench --mode gemm [--steps N] [--threads N] [--device D]\n"
     "  --mode M     train: the trainer's step (data, forward, backward, checks, clipping, AdamW, EMA);\n"
     "               sample: one grad-free network evaluation;\n"
     "               gemm: the backend's sgemm 2048^3, the machine's reference GFLOP/s\n"
     "  --batch N    images per step (default 8); --steps N timed steps (default 10) after --warmup N (2)\n"
     "  --threads N  OpenMP and OpenBLAS threads (default: OMP_NUM_THREADS or all cores)\n"
     "  --profile    per-op forward/backward ms per step and GFLOP/s on stderr (train mode)\n"
     "  --device D   cpu, cuda or cuda:N (default: the config's train.device; gemm: cpu)\n"
     "prints {mode, device, batch, threads, ms_per_step (median), ms_min, img_per_s, gflops (achieved),\n"
     "        peak_rss_mib, blas (the backend's GEMM kernels)}\n",
     cmd_bench},
    {"info", "model summary: parameters, shapes, GFLOPs, memory",
     "usage: diffuse info --config F | --ckpt F [--config F] [--batch N]\n"
     "       diffuse info --devices\n"
     "  --devices    the compiled backends and the devices they see\n"
     "  --config F   model config (JSON); needed for checkpoints without an embedded config\n"
     "  --ckpt F     checkpoint (safetensors); its weights are loaded and validated\n"
     "  --batch N    batch size for the training-memory estimate (default 1)\n",
     cmd_info},
    {"report", "(re)make a run directory's report.html: charts, sample grids, config",
     "usage: diffuse report RUN_DIR\n"
     "  RUN_DIR      the --out directory of a diffuse train run (finished, running or stopped; also runs\n"
     "               from before reports existed)\n"
     "writes RUN_DIR/report.html from RUN_DIR/log.jsonl, config.json and samples/*.png: one self-contained\n"
     "page (inline SVG charts of loss, gradient norm, learning rate and images/s against the step, the grids\n"
     "as data: URIs, the resolved config, throughput and ETA; no script, nothing fetched). diffuse train\n"
     "refreshes it at every log and sample step.\n",
     cmd_report},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void print_help(FILE *f) {
  fprintf(f,
          "diffuse %s - train, sample and evaluate diffusion models (DDPM, score-based) in C\n\n"
          "usage: diffuse <command> [options]\n       diffuse <command> --help\n\ncommands:\n",
          DIFFUSE_VERSION);
  for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
  fprintf(f, "\noptions:\n  --help     show this help\n  --version  print the version and what the build contains (BLAS, OpenMP, backends)\n");
}

/* The version and what this build contains. */
static void print_version(void) {
  printf("diffuse %s\n", DIFFUSE_VERSION);
#ifdef DIFFUSE_HAVE_CUDA
  printf("backends: cpu, cuda (diffuse info --devices lists the devices)\n");
#else
  printf("backends: cpu (diffuse info --devices lists the devices)\n");
#endif
  printf("BLAS:     %s\n", backend_cpu()->ops->describe(backend_cpu()));
  char why[256];
  const char *bf16 = backend_cpu_bf16_kernel(why, sizeof why);
  printf("bf16:     %s%s\n", bf16 ? bf16 : why,
         !bf16 ? "" : strcmp(bf16, "AMX") ? " (--precision bf16; no AMX: slower than fp32 here)" : " (--precision bf16)");
#ifdef _OPENMP
  printf("OpenMP:   yes (%d threads by default)\n", omp_get_max_threads());
#else
  printf("OpenMP:   no (built with -DDIFFUSE_OPENMP=OFF)\n");
#endif
  printf("MPI:      %s\n", comm_built_with_mpi() ? "built (mpirun -np N diffuse train | sample | eval stats | eval fid)"
                                                 : "not built (apt-get install libopenmpi-dev; cmake -DDIFFUSE_MPI=ON)");
#ifdef DIFFUSE_HAVE_CUDA
  printf("CUDA:     built (diffuse info --devices lists the GPUs; the CUDA backend is not yet verified on a GPU)\n");
#else
  printf("CUDA:     not built (cmake -DDIFFUSE_CUDA=ON)\n");
#endif
}

static int is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

int main(int argc, char **argv) {
  if (argc < 2) {
    print_help(stderr);
    return 2;
  }
  if (is_help(argv[1])) {
    print_help(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    print_version();
    return 0;
  }
  for (int i = 0; i < N_COMMANDS; i++) {
    const Command *c = &COMMANDS[i];
    if (strcmp(argv[1], c->name) != 0) continue;
    for (int a = 2; a < argc; a++)
      if (is_help(argv[a])) {
        printf("diffuse %s - %s\n\n%s", c->name, c->summary, c->usage);
        if (!c->run) printf("\n(not implemented yet)\n");
        return 0;
      }
    if (!c->run) {
      fprintf(stderr, "diffuse %s: not implemented yet\n", c->name);
      return 2;
    }
    char err[512];
    if (comm_init(&argc, &argv, err, sizeof err)) {
      fprintf(stderr, "diffuse %s: %s\n", c->name, err);
      comm_abort(1);
    }
    const bool parallel = !strcmp(c->name, "train") || !strcmp(c->name, "sample") ||
                          (!strcmp(c->name, "eval") && argc > 2 && (!strcmp(argv[2], "stats") || !strcmp(argv[2], "fid")));
    if (comm_size() > 1 && !parallel) {
      if (comm_is_root())
        fprintf(stderr, "diffuse %s: runs as one process; only train, sample, eval stats and eval fid run on several "
                "ranks (mpirun -np 1, or no mpirun)\n", c->name);
      comm_finalize();
      return 2;
    }
    const int rc = c->run(argc - 1, argv + 1);
    /* every rank returns the same code (the commands agree on errors), so the job's exit code is it */
    comm_finalize();
    return rc;
  }
  fprintf(stderr, "diffuse: unknown %s '%s'\n\n", argv[1][0] == '-' ? "option" : "command", argv[1]);
  print_help(stderr);
  return 2;
}
