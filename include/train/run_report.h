/* run_report.h - report.html of a training run directory: one self-contained page (inline SVG charts,
 * base64 PNGs, plain HTML and CSS, no script, no network) made from the run directory's files alone,
 * so the trainer's refreshes and `diffuse report DIR` (for any run, also older ones) are the same code.
 *
 * Reads DIR/log.jsonl (the trainer's log lines: step, loss, lr, grad_norm, img_per_s, elapsed),
 * DIR/config.json (the resolved config; train.steps and train.batch give progress and the ETA) and
 * DIR/samples/step_NNNNNNN.png (the grids, in step order), and replaces DIR/report.html atomically
 * (io/atomic_file.h: a planted symlink is replaced, never followed). The page is a pure function of
 * those files (no clock, no host name), so regenerating it gives the same bytes.
 *
 * Log lines: a last line without its newline that does not parse is a line a killed trainer was
 * writing and is skipped; any other line that is not a JSON object with the six numbers is an error
 * naming the file and the line. Where a resumed run went back to an earlier checkpoint the log holds
 * steps again that it already had; the later lines replace the earlier ones from that step on.
 */
#ifndef DIFFUSE_TRAIN_RUN_REPORT_H
#define DIFFUSE_TRAIN_RUN_REPORT_H

#include <stdbool.h>
#include <stddef.h>

/* At most this many grids are embedded (evenly spaced, the first and the last among them), and no grid
 * file above RUN_REPORT_MAX_GRID_BYTES: a long run keeps a page a browser opens quickly. */
#define RUN_REPORT_MAX_GRIDS 48
#define RUN_REPORT_MAX_GRID_BYTES (32u << 20)

typedef struct {
  int log_lines;     /* log lines charted */
  int grids, grids_found; /* grids embedded, grids in samples/ */
  bool skipped_partial_line;
} RunReportInfo;

/* Write run_dir/report.html. 0, or -1 + err naming the file and what to do. info may be NULL. */
int run_report_write(const char *run_dir, RunReportInfo *info, char *err, size_t errlen);

#endif
