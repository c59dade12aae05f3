/* cmd_report.c - `diffuse report RUN_DIR`: (re)make RUN_DIR/report.html from the run directory's files
 * (train/run_report.h), for a run in progress, a finished one, or one made before reports existed. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "train/run_report.h"

int cmd_report(int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-') {
    if (argc > 1 && argv[1][0] == '-') fprintf(stderr, "diffuse report: unknown option '%.80s'\n", argv[1]);
    fprintf(stderr, "diffuse report: give one run directory: diffuse report RUN_DIR (see diffuse report --help)\n");
    return 2;
  }
  char err[2048];
  RunReportInfo info;
  if (run_report_write(argv[1], &info, err, sizeof err)) {
    fprintf(stderr, "diffuse report: %s\n", err);
    return 1;
  }
  printf("report: %s/report.html (%d log lines, %d of %d sample grids%s)\n", argv[1], info.log_lines, info.grids,
         info.grids_found, info.skipped_partial_line ? "; the cut-short last log line is left out" : "");
  return 0;
}
