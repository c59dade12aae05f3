/* run_report.c - report.html from a run directory's files; see run_report.h.
 *
 * The page: a summary (step of train.steps, images/s and the ETA from the last log line, as the
 * trainer's progress line computes them: (steps - step) * batch / img_per_s), four SVG charts against
 * the step (loss raw and smoothed, gradient norm, learning rate, images/s), the sample grids as
 * data: URIs, and the resolved config. Charts are drawn here in plain SVG: nice 1-2-5 ticks, a log
 * y-axis where the values are positive and span a factor of 10 or more (loss and gradient norm
 * only), at most two points per pixel column (each column's minimum and maximum, so spikes stay).
 * Smoothing: an exponential moving average over log lines with span S = clamp(n / 10, 2, 100)
 * (alpha = 2 / (S + 1)), bias-corrected as TensorBoard's (divided by 1 - (1 - alpha)^k).
 */
#include "train/run_report.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/config.h"
#include "io/file_read.h"

#define LOG_MAX_BYTES ((size_t)1 << 30)

/* ---- log.jsonl ---- */

enum { F_LOSS, F_LR, F_GRAD_NORM, F_IMG_PER_S, F_ELAPSED, N_FIELDS };
static const char *const FIELD_NAMES[N_FIELDS] = {"loss", "lr", "grad_norm", "img_per_s", "elapsed"};

typedef struct {
  double *step, *v[N_FIELDS]; /* columns, n long */
  int n, cap;
  int rewinds;  /* times a resumed run went back to an earlier step */
  bool partial; /* the last line was cut short and is left out */
} RunLog;

static void run_log_free(RunLog *log) {
  free(log->step);
  for (int k = 0; k < N_FIELDS; k++) free(log->v[k]);
}

static void run_log_push(RunLog *log, double step, const double *v) {
  while (log->n > 0 && log->step[log->n - 1] >= step) log->n--; /* resumed from an earlier checkpoint */
  if (log->n == log->cap) {
    log->cap = log->cap ? 2 * log->cap : 256;
    log->step = xrealloc(log->step, (size_t)log->cap * sizeof(double));
    for (int k = 0; k < N_FIELDS; k++) log->v[k] = xrealloc(log->v[k], (size_t)log->cap * sizeof(double));
  }
  log->step[log->n] = step;
  for (int k = 0; k < N_FIELDS; k++) log->v[k][log->n] = v[k];
  log->n++;
}

static bool is_blank(const char *p, const char *end) {
  for (; p < end; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r') return false;
  return true;
}

/* One line: 0 with step and v set, or -1 with what is wrong in why. */
static int parse_log_line(const char *p, size_t len, double *step, double *v, char *why, size_t whylen) {
  const char *end = NULL;
  cJSON *o = cJSON_ParseWithLengthOpts(p, len, &end, 0);
  int rc = 0;
  if (!o || !is_blank(end, p + len)) {
    rc = errorf(why, whylen, "not one JSON object");
  } else if (!cJSON_IsObject(o)) {
    rc = errorf(why, whylen, "not a JSON object");
  } else {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
    if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 1e15 || s->valuedouble != floor(s->valuedouble))
      rc = errorf(why, whylen, "no \"step\" that is a whole number");
    else
      *step = s->valuedouble;
    for (int k = 0; k < N_FIELDS && rc == 0; k++) {
      const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, FIELD_NAMES[k]);
      if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) rc = errorf(why, whylen, "no number \"%s\"", FIELD_NAMES[k]);
      else v[k] = x->valuedouble;
    }
  }
  cJSON_Delete(o);
  return rc;
}

static int read_log(const char *dir, RunLog *log, char *err, size_t errlen) {
  memset(log, 0, sizeof *log);
  char *path = xasprintf("%s/log.jsonl", dir), why[256];
  uint8_t *buf;
  size_t size;
  if (file_read_whole(path, LOG_MAX_BYTES, &buf, &size, why, sizeof why)) {
    errorf(err, errlen, "%s: %s (is %s the --out directory of a diffuse train run that has logged a step?)", path, why,
           dir);
    free(path);
    return -1;
  }
  int rc = 0;
  long line = 0;
  for (const char *p = (const char *)buf, *end = p + size; p < end && rc == 0;) {
    line++;
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl ? nl : end;
    double step = 0, v[N_FIELDS];
    if (!is_blank(p, stop) && parse_log_line(p, (size_t)(stop - p), &step, v, why, sizeof why)) {
      if (!nl) log->partial = true; /* a trainer killed while writing its last line */
      else rc = errorf(err, errlen, "%s:%ld: malformed log line (%s): the log is damaged; repair or delete line %ld, "
                       "then run diffuse report again", path, line, why, line);
    } else if (!is_blank(p, stop)) {
      if (log->n > 0 && log->step[log->n - 1] >= step) log->rewinds++;
      run_log_push(log, step, v);
    }
    p = nl ? nl + 1 : end;
  }
  free(buf);
  free(path);
  if (rc) run_log_free(log);
  return rc;
}

/* ---- config.json ---- */

static int read_config(const char *dir, cJSON **cfg, char **text, double *steps, double *batch, char *err,
                       size_t errlen) {
  char *path = xasprintf("%s/config.json", dir), why[1024];
  *cfg = cfg_load_file(path, why, sizeof why);
  int rc = 0;
  if (!*cfg) {
    rc = errorf(err, errlen, "%s (diffuse train writes config.json when a run starts: is %s the --out directory of "
                "a diffuse train run?)", why, dir);
  } else {
    const cJSON *train = cJSON_GetObjectItemCaseSensitive(*cfg, "train");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(train, "steps"), *b = cJSON_GetObjectItemCaseSensitive(train, "batch");
    if (!cJSON_IsNumber(s) || !cJSON_IsNumber(b) || !(s->valuedouble >= 1) || !(b->valuedouble >= 1))
      rc = errorf(err, errlen, "%s: no train.steps and train.batch (numbers >= 1): not the config of a diffuse train "
                  "run; restore the file the run wrote", path);
    else
      *steps = s->valuedouble, *batch = b->valuedouble;
  }
  uint8_t *bytes = NULL;
  size_t n;
  if (rc == 0 && file_read_all(path, 0, &bytes, &n, err, errlen)) rc = -1;
  *text = (char *)bytes;
  if (rc) cJSON_Delete(*cfg), *cfg = NULL;
  free(path);
  return rc;
}

/* ---- samples/step_NNNNNNN.png ---- */

typedef struct {
  long step;
  char *name;
} Grid;

static int grid_cmp(const void *a, const void *b) {
  const long x = ((const Grid *)a)->step, y = ((const Grid *)b)->step;
  return (x > y) - (x < y);
}

/* step_<digits>.png, as the trainer names its grids (temporaries end in .tmp.XXXXXX and do not match). */
static bool grid_step(const char *name, long *step) {
  if (strncmp(name, "step_", 5) != 0) return false;
  const char *p = name + 5, *q = p;
  while (*q >= '0' && *q <= '9') q++;
  if (q == p || q - p > 15 || strcmp(q, ".png") != 0) return false;
  *step = strtol(p, NULL, 10);
  return true;
}

/* The grids of dir/samples in step order (regular files only); none if there is no samples/. */
static int list_grids(const char *dir, Grid **out, int *count, char *err, size_t errlen) {
  *out = NULL;
  *count = 0;
  char *samples = xasprintf("%s/samples", dir);
  DIR *dp = opendir(samples);
  if (!dp) {
    const int e = errno;
    const int rc = e == ENOENT ? 0 : errorf(err, errlen, "%s: cannot read: %s", samples, strerror(e));
    free(samples);
    return rc;
  }
  int cap = 0;
  for (struct dirent *e; (e = readdir(dp)) != NULL;) {
    long step;
    if (!grid_step(e->d_name, &step)) continue;
    char *p = xasprintf("%s/%s", samples, e->d_name);
    struct stat st;
    const bool regular = lstat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    if (!regular) continue;
    if (*count == cap) *out = xrealloc(*out, (size_t)(cap = cap ? 2 * cap : 16) * sizeof(Grid));
    (*out)[(*count)++] = (Grid){step, xstrdup(e->d_name)};
  }
  closedir(dp);
  free(samples);
  if (*count) qsort(*out, (size_t)*count, sizeof(Grid), grid_cmp);
  return 0;
}

/* ---- HTML helpers ---- */

static void put_escaped(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '&': fputs("&amp;", f); break;
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '"': fputs("&quot;", f); break;
      default: fputc(*s, f);
    }
  }
}

static void put_base64(FILE *f, const uint8_t *p, size_t n) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char out[4096];
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out[o++] = A[v >> 18 & 63];
    out[o++] = A[v >> 12 & 63];
    out[o++] = i + 1 < n ? A[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? A[v & 63] : '=';
    if (o == sizeof out) fwrite(out, 1, o, f), o = 0;
  }
  fwrite(out, 1, o, f);
}

/* "1e-05" -> "1e-5", "1e+06" -> "1e6" */
static void compact_exponent(char *s) {
  char *e = strchr(s, 'e');
  if (!e) return;
  char *d = e + 1, *r = e + 1;
  if (*r == '+') r++;
  else if (*r == '-') *d++ = *r++;
  while (*r == '0' && r[1]) r++;
  memmove(d, r, strlen(r) + 1);
}

/* Linear tick labels: fixed-point with the decimals the spacing `step` needs ("0.95", "700"); where the
 * spacing is below 0.001 or the values reach a million, the axis is scaled by a power of ten named in
 * its label ("lr (x1e-4)": ticks "0.5", "1.0", ...). The power: 0 or that of the largest |tick|. */
static int tick_exponent(double lo, double hi, double step) {
  const double a = fmax(fabs(lo), fabs(hi));
  return step >= 1e-3 && a < 1e6 ? 0 : (int)floor(log10(a) + 1e-9);
}

static void format_tick(char *buf, size_t n, double v, double step, int exponent) {
  const double scale = pow(10, -exponent);
  v *= scale, step *= scale;
  if (fabs(v) < step * 1e-6) v = 0;
  const int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  snprintf(buf, n, "%.*f", decimals, v);
}

/* A value on its own (a card, a chart's last value): 4 significant digits. */
static void format_value(char *buf, size_t n, double v) {
  snprintf(buf, n, "%.4g", v);
  compact_exponent(buf);
}

/* ---- SVG charts ---- */

/* Tick loops stop after MAX_TICKS, whatever the numbers (a spacing below a value's rounding cannot hang). */
#define MAX_TICKS 20
enum { CW = 560, CH = 300, ML = 66, MR = 26, MT = 40, MB = 46, PW = CW - ML - MR, PH = CH - MT - MB };

typedef struct {
  double lo, hi;
  bool log;
} Axis;

typedef struct {
  const double *y;
  const char *color, *label;
  double width;
} Series;

static double nice_step(double range, int target) {
  const double raw = range / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
  return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

/* Linear axis over [lo, hi] with about `target` ticks at multiples of *step. */
static Axis linear_axis(double lo, double hi, int target, double *step) {
  if (!(hi > lo)) {
    const double pad = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1.0;
    lo -= pad, hi += pad;
  }
  *step = nice_step(hi - lo, target);
  return (Axis){floor(lo / *step + 1e-9) * *step, ceil(hi / *step - 1e-9) * *step, false};
}

static double axis_frac(const Axis *a, double v) {
  return a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
}

static double px_x(const Axis *a, double v) { return ML + axis_frac(a, v) * PW; }
static double px_y(const Axis *a, double v) { return MT + PH - axis_frac(a, v) * PH; }

static void svg_text(FILE *f, double x, double y, const char *anchor, const char *cls, const char *text) {
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y, anchor, cls);
  put_escaped(f, text);
  fputs("</text>\n", f);
}

static void y_tick(FILE *f, const Axis *ya, double v, const char *label) {
  const double y = px_y(ya, v);
  fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/>\n", ML, y, ML + PW, y);
  svg_text(f, ML - 7, y + 4, "end", "tick", label);
}

/* Log y-axis from the 1-2-5 sequence, or false when a linear one reads better. */
static bool log_axis(double lo, double hi, Axis *a) {
  if (!(lo > 0) || hi / lo < 10) return false;
  const double m[3] = {1, 2, 5};
  double alo = 0, ahi = 0;
  for (int k = (int)floor(log10(lo)) - 1; k <= (int)ceil(log10(hi)) + 1; k++)
    for (int i = 0; i < 3; i++) {
      const double t = m[i] * pow(10, k);
      if (t <= lo * (1 + 1e-9)) alo = t;
      if (t >= hi * (1 - 1e-9) && ahi == 0) ahi = t;
    }
  *a = (Axis){alo, ahi, true};
  return alo > 0 && ahi > alo;
}

static void log_ticks(FILE *f, const Axis *ya) {
  const bool decades_only = log10(ya->hi / ya->lo) > 2.5;
  const double m[3] = {1, 2, 5};
  for (int k = (int)floor(log10(ya->lo)) - 1; k <= (int)ceil(log10(ya->hi)); k++)
    for (int i = 0; i < (decades_only ? 1 : 3); i++) {
      const double t = m[i] * pow(10, k);
      if (t < ya->lo * (1 - 1e-9) || t > ya->hi * (1 + 1e-9)) continue;
      char label[32];
      snprintf(label, sizeof label, "%g", t);
      compact_exponent(label);
      y_tick(f, ya, t, label);
    }
}

/* The series as a polyline, at most two points (the minimum and the maximum) per pixel column. */
static void svg_polyline(FILE *f, const Axis *xa, const Axis *ya, const double *x, const Series *s, int n) {
  const bool thin = n > 2 * PW;
  fprintf(f, "<polyline class=\"line\" stroke=\"%s\" stroke-width=\"%.1f\" points=\"", s->color,
          n > PW && s->width < 2 ? 1.2 : s->width); /* dense raw lines thinner; a smoothed line stays bold */
  for (int i = 0; i < n;) {
    int j = i + 1;
    const int col = (int)px_x(xa, x[i]);
    if (thin)
      while (j < n && (int)px_x(xa, x[j]) == col) j++;
    int lo = i, hi = i;
    for (int k = i; k < j; k++) lo = s->y[k] < s->y[lo] ? k : lo, hi = s->y[k] > s->y[hi] ? k : hi;
    const int a = lo < hi ? lo : hi, b = lo < hi ? hi : lo;
    fprintf(f, "%.1f,%.1f ", px_x(xa, x[a]), px_y(ya, s->y[a]));
    if (b != a) fprintf(f, "%.1f,%.1f ", px_x(xa, x[b]), px_y(ya, s->y[b]));
    i = j;
  }
  fputs("\"/>\n", f);
  if (n <= 40) /* few points: mark them, each with its value as a tooltip */
    for (int i = 0; i < n; i++) {
      char v[32];
      format_value(v, sizeof v, s->y[i]);
      fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>step %.0f: %s</title></circle>\n",
              px_x(xa, x[i]), px_y(ya, s->y[i]), s->color, x[i], v);
    }
}

/* One chart against the step: title, legend (or the last value), ticks on both axes, the series. */
static void svg_chart(FILE *f, const char *title, const char *y_label, const double *x, int n, const Series *s,
                      int ns, bool allow_log) {
  double lo = INFINITY, hi = -INFINITY;
  for (int k = 0; k < ns; k++)
    for (int i = 0; i < n; i++) lo = fmin(lo, s[k].y[i]), hi = fmax(hi, s[k].y[i]);
  double xstep, ystep;
  const Axis xa = linear_axis(0, x[n - 1], 6, &xstep);
  Axis ya;
  if (!allow_log || !log_axis(lo, hi, &ya)) ya = linear_axis(lo, hi, 5, &ystep);
  fprintf(f, "<figure class=\"chart\"><svg viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", CW, CH);
  put_escaped(f, title);
  fputs(" against step\" xmlns=\"http://www.w3.org/2000/svg\">\n", f);
  fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"plot\"/>\n", ML, MT, PW, PH);
  svg_text(f, 14, 24, "start", "title", title);
  if (ns == 1) {
    char v[32], last[48];
    format_value(v, sizeof v, s[0].y[n - 1]);
    snprintf(last, sizeof last, "last %s", v);
    svg_text(f, CW - MR, 24, "end", "legend", last);
  } else {
    double lx = CW - MR;
    for (int k = ns - 1; k >= 0; k--) { /* right to left; about 6.6 units a character at 12px */
      svg_text(f, lx, 24, "end", "legend", s[k].label);
      lx -= 6.6 * (double)strlen(s[k].label) + 6;
      fprintf(f, "<line x1=\"%.1f\" y1=\"20\" x2=\"%.1f\" y2=\"20\" stroke=\"%s\" stroke-width=\"3\"/>\n", lx - 18, lx,
              s[k].color);
      lx -= 32;
    }
  }
  int exponent = 0;
  if (ya.log) {
    log_ticks(f, &ya);
  } else {
    exponent = tick_exponent(ya.lo, ya.hi, ystep);
    for (int i = 0; i <= MAX_TICKS && ya.lo + i * ystep <= ya.hi + ystep * 1e-6; i++) {
      const double t = ya.lo + i * ystep;
      char label[32];
      format_tick(label, sizeof label, t, ystep, exponent);
      y_tick(f, &ya, t, label);
    }
  }
  for (int i = 0; i <= MAX_TICKS && xa.lo + i * xstep <= xa.hi + xstep * 1e-6; i++) {
    const double t = xa.lo + i * xstep, px = px_x(&xa, t);
    char label[32];
    snprintf(label, sizeof label, "%.0f", t);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" class=\"grid\"/>\n", px, MT, px, MT + PH);
    svg_text(f, px, MT + PH + 18, "middle", "tick", label);
  }
  svg_text(f, ML + PW / 2.0, CH - 8, "middle", "axis", "step");
  fprintf(f, "<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\" class=\"axis\">",
          MT + PH / 2.0);
  put_escaped(f, y_label);
  if (ya.log) fputs(" (log scale)", f);
  else if (exponent) fprintf(f, " (&#215;1e%d)", exponent);
  fputs("</text>\n", f);
  for (int k = 0; k < ns; k++) svg_polyline(f, &xa, &ya, x, &s[k], n);
  fputs("</svg></figure>\n", f);
}

/* ---- the page ---- */

static const char STYLE[] =
    "body{margin:0;background:#f4f5f7;color:#1f2328;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,"
    "'DejaVu Sans',sans-serif}\n"
    "main{max-width:1160px;margin:0 auto;padding:20px 20px 40px}\n"
    "h1{font-size:26px;margin:4px 0 2px}h2{font-size:19px;margin:28px 0 10px}\n"
    ".dir{color:#57606a;font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:14px;margin:0 0 14px;"
    "word-break:break-all}\n"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px}\n"
    ".card,.chart,figure.grid,.cfg{background:#fff;border:1px solid #d8dee4;border-radius:8px}\n"
    ".card{padding:12px 16px}.card .k{color:#57606a;font-size:13px;text-transform:uppercase;letter-spacing:.04em}\n"
    ".card .v{font-size:24px;font-weight:600;margin:2px 0}.card .s{color:#57606a;font-size:13px}\n"
    ".bar{height:8px;background:#e6e9ed;border-radius:4px;margin-top:6px;overflow:hidden}"
    ".bar div{height:100%;background:#2f81f7}\n"
    ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:14px}\n"
    ".chart{margin:0;padding:4px}.chart svg{display:block;width:100%;height:auto}\n"
    "svg .plot{fill:#fff;stroke:#afb8c1}svg .grid{stroke:#e6e9ed}"
    "svg .line{fill:none;stroke-linejoin:round;stroke-linecap:round}\n"
    "svg text{font-family:system-ui,'DejaVu Sans',sans-serif;fill:#1f2328}svg .tick{font-size:12px;fill:#57606a}"
    "svg .title{font-size:16px;font-weight:600}svg .legend{font-size:12px;fill:#57606a}svg .axis{font-size:13px}\n"
    ".note{color:#57606a;font-size:13px;margin:8px 2px}\n"
    ".grids{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}\n"
    "figure.grid{margin:0;padding:10px;max-width:100%;box-sizing:border-box}"
    "figure.grid img{display:block;max-width:100%;height:auto;image-rendering:pixelated;background:#000}\n"
    "figure.grid figcaption{text-align:center;font-weight:600;margin-top:6px}"
    ".missing{color:#9a6700;font-weight:400}\n"
    ".cfgs{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px;align-items:start}\n"
    ".cfg{border-collapse:separate;border-spacing:0;width:100%;font-size:13px;overflow:hidden}\n"
    ".cfg caption{text-align:left;font-weight:600;padding:0 2px 4px}.cfg td{padding:3px 10px;"
    "border-top:1px solid #eef1f4;vertical-align:top}.cfg tr:first-child td{border-top:0}\n"
    ".cfg td:first-child{color:#57606a;white-space:nowrap}.cfg td:last-child{font-family:ui-monospace,"
    "'DejaVu Sans Mono',monospace;word-break:break-all}\n"
    "details{margin-top:12px}summary{cursor:pointer;color:#57606a}pre{background:#fff;border:1px solid #d8dee4;"
    "border-radius:8px;padding:12px;overflow:auto;font-size:13px}\n"
    "footer{color:#57606a;font-size:13px;margin-top:30px}code{font-family:ui-monospace,'DejaVu Sans Mono',monospace}\n";

static void card(FILE *f, const char *key, const char *value, const char *sub, double progress) {
  fputs("<div class=\"card\"><div class=\"k\">", f);
  put_escaped(f, key);
  fputs("</div><div class=\"v\">", f);
  put_escaped(f, value);
  fputs("</div>", f);
  if (progress >= 0) fprintf(f, "<div class=\"bar\"><div style=\"width:%.1f%%\"></div></div>", 100 * progress);
  if (sub) {
    fputs("<div class=\"s\">", f);
    put_escaped(f, sub);
    fputs("</div>", f);
  }
  fputs("</div>\n", f);
}

static int smoothing_span(int n) { return n / 10 < 2 ? 2 : n / 10 > 100 ? 100 : n / 10; }

/* Bias-corrected EMA of y into out. */
static void ema(double *out, const double *y, int n, int span) {
  const double alpha = 2.0 / (span + 1.0);
  double m = 0, w = 0;
  for (int i = 0; i < n; i++) {
    m = (1 - alpha) * m + alpha * y[i];
    w = (1 - alpha) * w + alpha;
    out[i] = m / w;
  }
}

static void write_summary(FILE *f, const RunLog *log, double steps, double batch) {
  fputs("<section class=\"cards\">\n", f);
  char v[96], s[160], a[32], b[32];
  if (log->n == 0) {
    snprintf(v, sizeof v, "0 / %.0f", steps);
    card(f, "step", v, "no log line yet", 0);
    fputs("</section>\n", f);
    return;
  }
  const int last = log->n - 1;
  const double step = log->step[last], ips = log->v[F_IMG_PER_S][last];
  snprintf(v, sizeof v, "%.0f / %.0f", step, steps);
  snprintf(s, sizeof s, "%.1f%% of train.steps", 100 * fmin(1, step / steps));
  card(f, "step", v, s, fmin(1, step / steps));
  snprintf(v, sizeof v, "%.1f img/s", ips);
  snprintf(s, sizeof s, "%.2f steps/s at batch %.0f (last log line)", ips / batch, batch);
  card(f, "throughput", v, s, -1);
  format_duration(b, sizeof b, log->v[F_ELAPSED][last]);
  if (step >= steps) {
    snprintf(s, sizeof s, "elapsed %s since the run (or its last resume) started", b);
    card(f, "ETA", "finished", s, -1);
  } else {
    snprintf(s, sizeof s, "at %.1f img/s; elapsed %s since the run (or its last resume) started", ips, b);
    card(f, "ETA", format_duration(a, sizeof a, (steps - step) * batch / ips), s, -1);
  }
  format_value(a, sizeof a, log->v[F_LOSS][last]);
  format_value(b, sizeof b, log->v[F_GRAD_NORM][last]);
  char lr[32];
  format_value(lr, sizeof lr, log->v[F_LR][last]);
  snprintf(s, sizeof s, "grad norm %s, lr %s", b, lr);
  card(f, "loss", a, s, -1);
  fputs("</section>\n", f);
}

static void write_charts(FILE *f, const RunLog *log) {
  fputs("<h2>Training curves</h2>\n", f);
  if (log->n == 0) {
    fputs("<p class=\"note\">log.jsonl has no line yet: the charts appear at the first log step (train.log_every).</p>\n",
          f);
    return;
  }
  const int n = log->n, span = smoothing_span(n);
  double *smooth = xmalloc((size_t)n * sizeof(double));
  ema(smooth, log->v[F_LOSS], n, span);
  char ema_label[48];
  snprintf(ema_label, sizeof ema_label, "EMA, span %d", span);
  const Series loss[2] = {{log->v[F_LOSS], "#9ec5f4", "raw", 1.4}, {smooth, "#0b4ea2", ema_label, 2.4}};
  const Series norm = {log->v[F_GRAD_NORM], "#c2410c", "", 1.8}, lr = {log->v[F_LR], "#15803d", "", 1.8},
               ips = {log->v[F_IMG_PER_S], "#7e22ce", "", 1.8};
  fputs("<div class=\"charts\">\n", f);
  svg_chart(f, "Loss", "loss", log->step, n, loss, 2, true);
  svg_chart(f, "Gradient norm", "global L2 norm", log->step, n, &norm, 1, true);
  svg_chart(f, "Learning rate", "lr", log->step, n, &lr, 1, false);
  svg_chart(f, "Throughput", "images/s", log->step, n, &ips, 1, false);
  fputs("</div>\n", f);
  fprintf(f,
          "<p class=\"note\">%d log lines. Raw loss: the mean training loss of the steps since the previous log line. "
          "Smoothed: exponential moving average over log lines, span %d (&alpha; = 2/(span+1) = %.3g), "
          "bias-corrected. Gradient norm: the global L2 norm before clipping, at each log line's step. "
          "Learning rate: with warmup. Images/s: over the steps since the previous log line.",
          n, span, 2.0 / (span + 1.0));
  if (log->rewinds)
    fprintf(f, " The run was resumed from an earlier checkpoint %d time(s): the later log lines replace the earlier "
            "ones from the step it went back to.", log->rewinds);
  if (log->partial)
    fputs(" The last line of log.jsonl was cut short (a trainer stopped while writing it) and is left out.", f);
  fputs("</p>\n", f);
  free(smooth);
}

/* width and height from a PNG's IHDR, or false if the bytes are not a PNG. */
static bool png_size(const uint8_t *p, size_t n, uint32_t *w, uint32_t *h) {
  static const uint8_t SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 24 || memcmp(p, SIG, 8) != 0 || memcmp(p + 12, "IHDR", 4) != 0) return false;
  *w = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
  *h = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
  return *w > 0 && *h > 0;
}

static int write_grids(FILE *f, const char *dir, const Grid *grids, int found) {
  fputs("<h2>Samples</h2>\n", f);
  if (found == 0) {
    fputs("<p class=\"note\">No sample grid yet: the trainer writes one into samples/ every train.sample_every steps "
          "and at the end.</p>\n", f);
    return 0;
  }
  const int shown = found < RUN_REPORT_MAX_GRIDS ? found : RUN_REPORT_MAX_GRIDS;
  fputs("<p class=\"note\">EMA weights, DDIM from the same noise at every grid.", f);
  if (shown < found)
    fprintf(f, " %d of the %d grids in samples/, evenly spaced (the first and the last among them).", shown, found);
  fputs("</p>\n<div class=\"grids\">\n", f);
  int embedded = 0;
  for (int i = 0; i < shown; i++) {
    const Grid *g = &grids[shown < found ? (int)((double)i * (found - 1) / (shown - 1) + 0.5) : i];
    char *path = xasprintf("%s/samples/%s", dir, g->name), why[256] = "";
    uint8_t *bytes = NULL;
    size_t n = 0;
    uint32_t w = 0, h = 0;
    if (!file_read_whole(path, RUN_REPORT_MAX_GRID_BYTES, &bytes, &n, why, sizeof why) && !png_size(bytes, n, &w, &h))
      snprintf(why, sizeof why, "not a PNG file");
    fputs("<figure class=\"grid\">", f);
    if (!why[0]) {
      /* small grids enlarged by a whole factor to at least 256 pixels, pixels kept sharp */
      const uint32_t k = w >= 256 ? 1 : (256 + w - 1) / w;
      fprintf(f, "<img width=\"%u\" height=\"%u\" alt=\"sample grid at step %ld\" src=\"data:image/png;base64,",
              w * k, h * k, g->step);
      put_base64(f, bytes, n);
      fputs("\">", f);
      embedded++;
    }
    fprintf(f, "<figcaption>step %ld", g->step);
    if (why[0]) {
      fputs(" <span class=\"missing\">(", f);
      put_escaped(f, g->name);
      fputs(": ", f);
      put_escaped(f, why);
      fputs(")</span>", f);
    }
    fputs("</figcaption></figure>\n", f);
    free(bytes);
    free(path);
  }
  fputs("</div>\n", f);
  return embedded;
}

static void put_json_value(FILE *f, const cJSON *v) {
  if (cJSON_IsString(v)) {
    put_escaped(f, v->valuestring);
    return;
  }
  char *s = cJSON_PrintUnformatted(v);
  put_escaped(f, s ? s : "?");
  free(s);
}

/* A table of (key, value) rows from `first` on: a section's members, or with skip_objects the top-level
 * values that are not sections. */
static void config_table(FILE *f, const char *caption, const cJSON *first, bool skip_objects) {
  fputs("<table class=\"cfg\"><caption>", f);
  put_escaped(f, caption);
  fputs("</caption>\n", f);
  for (const cJSON *kv = first; kv; kv = kv->next) {
    if (skip_objects && cJSON_IsObject(kv)) continue;
    fputs("<tr><td>", f);
    put_escaped(f, kv->string ? kv->string : "");
    fputs("</td><td>", f);
    put_json_value(f, kv);
    fputs("</td></tr>\n", f);
  }
  fputs("</table>\n", f);
}

static void write_config(FILE *f, const cJSON *cfg, const char *text) {
  fputs("<h2>Config</h2>\n<div class=\"cfgs\">\n", f);
  bool loose = false; /* top-level values that are not sections */
  for (const cJSON *sec = cfg->child; sec; sec = sec->next) {
    if (cJSON_IsObject(sec)) config_table(f, sec->string ? sec->string : "", sec->child, false);
    else loose = true;
  }
  if (loose) config_table(f, "(top level)", cfg->child, true);
  fputs("</div>\n<details><summary>config.json as written by the trainer</summary><pre>", f);
  put_escaped(f, text);
  fputs("</pre></details>\n", f);
}

int run_report_write(const char *run_dir, RunReportInfo *info, char *err, size_t errlen) {
  struct stat st;
  if (stat(run_dir, &st) != 0)
    return errorf(err, errlen, "%s: %s: give the --out directory of a diffuse train run", run_dir,
                  errno == ENOENT ? "no such directory" : strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return errorf(err, errlen, "%s: not a directory: give the --out directory of a diffuse train run", run_dir);
  RunLog log;
  cJSON *cfg = NULL;
  char *cfg_text = NULL;
  double steps = 0, batch = 0;
  if (read_log(run_dir, &log, err, errlen)) return -1;
  Grid *grids = NULL;
  int found = 0;
  int rc = read_config(run_dir, &cfg, &cfg_text, &steps, &batch, err, errlen);
  if (rc == 0) rc = list_grids(run_dir, &grids, &found, err, errlen);
  char *path = xasprintf("%s/report.html", run_dir);
  AtomicFile a;
  if (rc == 0) rc = atomic_file_open(&a, path, err, errlen);
  int embedded = 0;
  if (rc == 0) {
    FILE *f = a.f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
    put_escaped(f, run_dir);
    fprintf(f, " - diffuse training report</title>\n<style>\n%s</style>\n</head>\n<body><main>\n"
            "<h1>Training report</h1>\n<p class=\"dir\">", STYLE);
    put_escaped(f, run_dir);
    fputs("</p>\n", f);
    write_summary(f, &log, steps, batch);
    write_charts(f, &log);
    embedded = write_grids(f, run_dir, grids, found);
    write_config(f, cfg, cfg_text);
    fprintf(f, "<footer>Made by diffuse %s from log.jsonl, config.json and samples/ of this run directory: "
            "refreshed by <code>diffuse train</code> at each log and sample step, regenerated by "
            "<code>diffuse report ", DIFFUSE_VERSION);
    put_escaped(f, run_dir);
    fputs("</code>.</footer>\n</main></body></html>\n", f);
    rc = atomic_file_commit(&a, !ferror(f), err, errlen);
  }
  if (rc == 0 && info) *info = (RunReportInfo){log.n, embedded, found, log.partial};
  for (int i = 0; i < found; i++) free(grids[i].name);
  free(grids);
  free(path);
  free(cfg_text);
  cJSON_Delete(cfg);
  run_log_free(&log);
  return rc;
}
