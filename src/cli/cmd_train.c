/* cmd_train.c - `diffuse train`: build the run config from the file, --set overrides and flags
 * (flags win), check and lock the run directory, then run the trainer with the CLI's progress
 * display, signal handling and report.html (refreshed from the trainer's callbacks).
 *
 * Signals: SIGINT, SIGTERM and SIGHUP stop the run after the current step with a checkpoint, and
 * the exit code is 128 + the signal (130, 143, 129), so a script can tell an interrupted run from
 * a finished one. A second signal stops at once: immediately between checkpoints, or as soon as a
 * checkpoint being written is complete (never leaving a half-written one).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "backend/comm.h"
#include "commands.h"
#include "core/error.h"
#include "nn/checkpoint.h"
#include "run_dir.h"
#include "train/run_report.h"
#include "train/trainer.h"

static volatile sig_atomic_t g_signal = 0, g_saving = 0, g_exit_after_save = 0;

static void say(const char *msg) { /* async-signal-safe */
  ssize_t unused = write(STDERR_FILENO, msg, strlen(msg));
  (void)unused;
}

static void on_signal(int sig) {
  if (!g_signal) {
    g_signal = sig;
    return;
  }
  if (g_saving) {
    g_exit_after_save = 1;
    return;
  }
  say("\ndiffuse train: second signal: stopping now, without a checkpoint of the steps since the last one\n");
  _exit(128 + g_signal);
}

static void install_signal_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  for (int i = 0; i < 3; i++) sigaction(sigs[i], &sa, NULL);
}

static bool stop_requested(void *ctx) { return g_signal != 0; }

static void on_save(void *ctx, bool begin) {
  g_saving = begin;
  if (!begin && g_exit_after_save) {
    say("diffuse train: second signal: checkpoint written, stopping now\n");
    _exit(128 + g_signal);
  }
}

typedef struct {
  bool tty;            /* progress bar (else plain lines) */
  const char *out;     /* the run directory, whose report.html is refreshed */
  bool report_warned;  /* a refresh failed and said so: later failures are quiet */
} TrainDisplay;

/* report.html from the run directory's files, at each log line and grid (rank 0: the trainer calls back
 * only there). A failure warns once and training goes on: the report is derived, the run is not. */
static void refresh_report(TrainDisplay *d) {
  char err[1024];
  if (run_report_write(d->out, NULL, err, sizeof err) == 0 || d->report_warned) return;
  d->report_warned = true;
  fprintf(stderr, "%sdiffuse train: warning: the run's report was not refreshed: %s (training goes on; later failures "
          "are not reported; regenerate it with diffuse report %s)\n", d->tty ? "\n" : "", err, d->out);
}

static void on_sample(void *ctx, long step, const char *path) { refresh_report(ctx); }

/* A progress bar on a terminal, plain lines otherwise; then the report. */
static void on_report(void *ctx, const TrainReport *r) {
  TrainDisplay *d = ctx;
  const bool tty = d->tty;
  if (!r) {
    if (tty) fputc('\n', stderr);
    return;
  }
  char eta[32];
  format_duration(eta, sizeof eta, r->eta_s);
  if (tty) {
    const int width = 24, filled = (int)((double)r->step / r->steps * width);
    fprintf(stderr, "\r[%.*s%*s] step %ld/%d  loss %.4f  %.1f img/s  ETA %s   ", filled, "========================",
            width - filled, "", r->step, r->steps, r->loss, r->img_per_s, eta);
  } else {
    fprintf(stderr, "step %ld/%d loss %.4f grad_norm %.3f %.1f img/s ETA %s\n", r->step, r->steps, r->loss,
            r->grad_norm, r->img_per_s, eta);
  }
  refresh_report(d);
}

/* rc != 0 on some rank: true on every rank, and the error printed once (by rank 0 if it failed too, else by
 * each failing rank, naming itself). */
static bool failed_anywhere(int rc, const char *err) {
  if (!comm_any(rc != 0)) return false;
  const bool root_failed = comm_any(comm_is_root() && rc != 0);
  if (rc && comm_is_root()) fprintf(stderr, "diffuse train: %s\n", err);
  if (rc && !root_failed) fprintf(stderr, "diffuse train: rank %d: %s\n", comm_rank(), err);
  return true;
}

/* section.key = item (taken over), replacing what the config had. */
static int set_item(cJSON *root, const char *section, const char *key, cJSON *item, char *err, size_t errlen) {
  cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, section);
  if (!sec) sec = cJSON_AddObjectToObject(root, section);
  if (!cJSON_IsObject(sec)) {
    cJSON_Delete(item);
    return errorf(err, errlen, "the config's \"%s\" section is not an object", section);
  }
  cJSON_DeleteItemFromObjectCaseSensitive(sec, key);
  cJSON_AddItemToObject(sec, key, item);
  return 0;
}

static int set_number(cJSON *root, const char *section, const char *key, double v, char *err, size_t errlen) {
  return set_item(root, section, key, cJSON_CreateNumber(v), err, errlen);
}

static int set_string(cJSON *root, const char *section, const char *key, const char *value, char *err, size_t errlen) {
  return set_item(root, section, key, cJSON_CreateString(value), err, errlen);
}

/* The config file (or the resumed checkpoint's), with --set and the flags applied. NULL + err. */
static cJSON *build_config(const char *config_path, const char *resume, const ArgList *sets, const char *data,
                           const char *device, int steps, int batch, int seed, const char **origin, char *err,
                           size_t errlen) {
  cJSON *root = NULL;
  *origin = config_path ? config_path : resume;
  if (config_path) {
    root = cfg_load_file(config_path, err, errlen);
  } else {
    root = checkpoint_read_config(resume, err, errlen);
    if (!root && !err[0]) errorf(err, errlen, "%s carries no config: give --config", resume);
  }
  int rc = root ? 0 : -1;
  for (int i = 0; i < sets->n && rc == 0; i++) rc = cfg_apply_override(root, sets->items[i], run_config_key_is_string, err, errlen);
  if (rc == 0 && data) rc = set_string(root, "data", "path", data, err, errlen);
  if (rc == 0 && device) rc = set_string(root, "train", "device", device, err, errlen);
  if (rc == 0 && steps != ARG_UNSET) rc = set_number(root, "train", "steps", steps, err, errlen);
  if (rc == 0 && batch != ARG_UNSET) rc = set_number(root, "train", "batch", batch, err, errlen);
  if (rc == 0 && seed != ARG_UNSET) rc = set_number(root, "train", "seed", seed, err, errlen);
  if (rc) {
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

int cmd_train(int argc, char **argv) {
  const char *config_path = NULL, *data = NULL, *out = "out", *resume = NULL, *device = NULL;
  int steps = ARG_UNSET, batch = ARG_UNSET, seed = ARG_UNSET;
  bool skip_bad = false, quiet = false, force = false;
  ArgList sets = {0};
  const ArgSpec specs[] = {
      {"--config", ARG_STRING, &config_path}, {"--data", ARG_STRING, &data},  {"--out", ARG_STRING, &out},
      {"--steps", ARG_INT, &steps},           {"--batch", ARG_INT, &batch},   {"--seed", ARG_INT, &seed},
      {"--resume", ARG_STRING, &resume},      {"--set", ARG_LIST, &sets},     {"--skip-bad", ARG_FLAG, &skip_bad},
      {"--quiet", ARG_FLAG, &quiet},          {"--force", ARG_FLAG, &force},  {"--device", ARG_STRING, &device},
  };
  const int parse_rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "train");
  if (parse_rc) return parse_rc;
  if (!config_path && !resume) {
    fprintf(stderr, "diffuse train: --config FILE is required (see diffuse train --help)\n");
    return 2;
  }
  if (force && resume) {
    fprintf(stderr, "diffuse train: --force starts the run over and --resume continues it: give one of them\n");
    return 2;
  }
  if ((steps != ARG_UNSET && steps < 1) || (batch != ARG_UNSET && batch < 1) || (seed != ARG_UNSET && seed < 0)) {
    fprintf(stderr, "diffuse train: %s\n", steps != ARG_UNSET && steps < 1 ? "--steps must be >= 1"
                                           : batch != ARG_UNSET && batch < 1 ? "--batch must be >= 1"
                                                                               : "--seed must be >= 0");
    return 1;
  }
  char err[1024] = "";
  /* Under mpirun every step below is agreed on by all ranks (failed_anywhere); rank 0 alone owns --out. */
  int rc = comm_is_root() ? run_dir_check(out, resume != NULL, force, err, sizeof err) : 0;
  if (failed_anywhere(rc, err)) return 1;
  const char *origin;
  cJSON *root = build_config(config_path, resume, &sets, data, device, steps, batch, seed, &origin, err, sizeof err);
  RunConfig run;
  rc = root ? run_config_read(root, origin, &run, err, sizeof err) : -1;
  cJSON_Delete(root);
  if (failed_anywhere(rc, err)) return 1;
  cJSON *resolved = run_config_to_json(&run);
  char *text = cJSON_PrintUnformatted(resolved);
  if (!comm_all_equal(comm_hash(text, strlen(text), COMM_HASH_SEED)))
    rc = errorf(err, sizeof err, "the ranks resolved different configs (a config file or checkpoint that differs "
                "between the machines?): give every rank the same files");
  free(text);
  cJSON_Delete(resolved);
  if (failed_anywhere(rc, err)) return 1;
  char why[512];
  const Backend *backend = backend_open(run.train.device, why, sizeof why);
  if (!backend) snprintf(err, sizeof err, "%s%s", device ? "--device: " : "train.device: ", why);
  if (failed_anywhere(!backend, err)) return 1;
  const TrainOptions opt = {out, resume, skip_bad, backend};
  Trainer *tr = trainer_open(&run, &opt, err, sizeof err);
  RunDir dir;
  rc = !tr || (comm_is_root() && run_dir_open(&dir, out, resume != NULL, force, err, sizeof err));
  if (failed_anywhere(rc, err)) {
    trainer_close(tr);
    if (tr && comm_is_root() && !rc) run_dir_close(&dir);
    return 1;
  }
  install_signal_handlers();
  TrainDisplay display = {isatty(STDERR_FILENO) && !quiet, out, false};
  const TrainCallbacks cb = {&display, stop_requested, on_report, on_save, on_sample};
  const TrainOutcome outcome = trainer_run(tr, &cb);
  trainer_close(tr);
  if (comm_is_root()) run_dir_close(&dir);
  if (outcome == TRAIN_STOPPED) return 128 + (g_signal ? g_signal : SIGTERM);
  return outcome == TRAIN_FINISHED ? 0 : 1;
}
