/* test_fid.c - FID, Inception Score and .npz statistics against numpy / scipy
 * (scripts/gen_fid_fixtures.py: pytorch-fid's scipy.linalg.sqrtm Frechet distance, numpy's cov,
 * the original Inception Score; .npz files written by np.savez and np.savez_compressed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/fid.h"
#include "eval/kid.h"
#include "eval/precision_recall.h"
#include "io/npz.h"
#include "test_util.h"

#define DIM 64

static float *fixture_floats(const SafeTensors *st, const char *name, size_t *n) {
  const StTensor *t = st_find(st, name);
  EXPECT(t != NULL, "fixture lacks %s", name);
  if (!t) exit(1);
  float *v = malloc(t->numel * sizeof(float));
  char err[128];
  st_tensor_to_f32(t, v, err, sizeof err);
  *n = t->numel;
  return v;
}

static void stats_of(const SafeTensors *st, const char *name, double *mu, double *sigma) {
  size_t n;
  float *f = fixture_floats(st, name, &n);
  FeatureStats s;
  feature_stats_init(&s, DIM);
  /* in uneven pieces, to cross the internal batch boundary */
  const int rows = (int)(n / DIM);
  for (int r = 0; r < rows;) {
    const int b = rows - r < 37 ? rows - r : 37;
    feature_stats_add(&s, f + (size_t)r * DIM, b);
    r += b;
  }
  char err[128];
  EXPECT(feature_stats_finish(&s, mu, sigma, err, sizeof err) == 0, "%s", err);
  feature_stats_free(&s);
  free(f);
}

static double max_rel(const double *a, const double *b, size_t n) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
  for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]) / scale);
  return worst;
}

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
}

int main(void) {
  SafeTensors st;
  load_fixture(&st, "fid.safetensors");
  char err[512];
  static double mu_a[DIM], sig_a[DIM * DIM], mu_b[DIM], sig_b[DIM * DIM], mu_c[DIM], sig_c[DIM * DIM];
  stats_of(&st, "features.a", mu_a, sig_a);
  stats_of(&st, "features.b", mu_b, sig_b);
  stats_of(&st, "features.c", mu_c, sig_c);

  /* statistics vs numpy (float32 storage of the reference: 1e-6) */
  size_t n;
  float *ref_mu = fixture_floats(&st, "mu.a", &n), *ref_sig = fixture_floats(&st, "sigma.a", &n);
  double rm[DIM], rs[DIM * DIM];
  for (int i = 0; i < DIM; i++) rm[i] = ref_mu[i];
  for (int i = 0; i < DIM * DIM; i++) rs[i] = ref_sig[i];
  EXPECT(max_rel(mu_a, rm, DIM) < 1e-6 && max_rel(sig_a, rs, DIM * DIM) < 1e-6, "mean / covariance vs numpy: %.2e %.2e",
         max_rel(mu_a, rm, DIM), max_rel(sig_a, rs, DIM * DIM));
  free(ref_mu), free(ref_sig);

  /* .npz written by numpy: stored and deflated members, float64 exactly */
  NpzArray mu, sigma;
  EXPECT(npz_read(DIFFUSE_FIXTURE_DIR "/fid_stats_a.npz", "mu", &mu, err, sizeof err) == 0, "%s", err);
  EXPECT(npz_read(DIFFUSE_FIXTURE_DIR "/fid_stats_a.npz", "sigma", &sigma, err, sizeof err) == 0, "%s", err);
  EXPECT(mu.ndim == 1 && mu.shape[0] == DIM && sigma.ndim == 2 && sigma.shape[0] == DIM && sigma.shape[1] == DIM,
         "npz shapes");
  if (mu.data && sigma.data)
    EXPECT(max_rel(mu.data, mu_a, DIM) < 1e-12 && max_rel(sigma.data, sig_a, DIM * DIM) < 1e-12,
           "np.savez statistics differ from ours: %.2e %.2e", max_rel(mu.data, mu_a, DIM),
           max_rel(sigma.data, sig_a, DIM * DIM));
  npz_array_free(&mu), npz_array_free(&sigma);
  EXPECT(npz_read(DIFFUSE_FIXTURE_DIR "/fid_stats_b_compressed.npz", "mu", &mu, err, sizeof err) == 0, "%s", err);
  EXPECT(npz_read(DIFFUSE_FIXTURE_DIR "/fid_stats_b_compressed.npz", "sigma", &sigma, err, sizeof err) == 0, "%s", err);
  if (mu.data && sigma.data)
    EXPECT(max_rel(mu.data, mu_b, DIM) < 1e-12 && max_rel(sigma.data, sig_b, DIM * DIM) < 1e-12,
           "np.savez_compressed statistics differ");

  /* FID vs pytorch-fid (scipy sqrtm), exact float64 references from the metadata */
  double fid;
  const double want_ab = strtod(st_meta_get(&st, "fid.ab"), NULL), want_ac = strtod(st_meta_get(&st, "fid.ac"), NULL);
  EXPECT(frechet_distance(mu_a, sig_a, mu.data, sigma.data, DIM, &fid, err, sizeof err) == 0, "%s", err);
  EXPECT(fabs(fid - want_ab) < 1e-6 * want_ab, "FID(a, b) %.10f, scipy %.10f", fid, want_ab);
  /* c has 40 samples in 64 dimensions: a singular covariance */
  EXPECT(frechet_distance(mu_a, sig_a, mu_c, sig_c, DIM, &fid, err, sizeof err) == 0, "%s", err);
  EXPECT(fabs(fid - want_ac) < 1e-3 * want_ac, "FID(a, c) singular %.8f, scipy %.8f", fid, want_ac);
  EXPECT(frechet_distance(mu_a, sig_a, mu_a, sig_a, DIM, &fid, err, sizeof err) == 0 && fabs(fid) < 1e-9,
         "FID of a stats file against itself: %.3e", fid);
  /* 24 of c's eigenvalues are 0: round-off makes them ~1e-16 lambda_max and their square roots
   * ~1e-8 each, so the self-distance is 0 to about 2 * 24 * 1e-8 * sqrt(lambda_max) */
  EXPECT(frechet_distance(mu_c, sig_c, mu_c, sig_c, DIM, &fid, err, sizeof err) == 0 && fabs(fid) < 1e-5,
         "FID of singular stats against themselves: %.3e", fid);
  npz_array_free(&mu), npz_array_free(&sigma);

  /* Inception Score vs numpy */
  float *logits = fixture_floats(&st, "is.logits", &n);
  double m, s;
  inception_score(logits, (long)(n / 20), 20, 10, &m, &s);
  float *want_m = fixture_floats(&st, "is.mean", &n), *want_s = fixture_floats(&st, "is.std", &n);
  EXPECT(fabs(m - want_m[0]) < 1e-5 * want_m[0] && fabs(s - want_s[0]) < 1e-4 * want_s[0], "IS %.6f +- %.6f, numpy %.6f +- %.6f",
         m, s, want_m[0], want_s[0]);
  free(logits), free(want_m), free(want_s);

  /* KID vs torch-fidelity's polynomial_mmd (numpy, float64). float32 dot products of the 64-d rows
   * are good to ~1e-6 relative and the sums do not cancel much here (KID 0.94 against kernel means of
   * ~10), so 1e-4 relative holds with margin. */
  size_t na, nb, nc;
  float *fa = fixture_floats(&st, "features.a", &na), *fb = fixture_floats(&st, "features.b", &nb);
  float *fc = fixture_floats(&st, "features.c", &nc);
  float *want_kid = fixture_floats(&st, "kid.ab", &n);
  const double mmd = kid_mmd2(fa, fb, 200, DIM);
  EXPECT(fabs(mmd - want_kid[0]) < 1e-4 * fabs(want_kid[0]), "KID MMD^2(a[:200], b) %.8f, numpy %.8f", mmd, want_kid[0]);
  /* one subset of every row: a permutation of both sets, the same estimate (drawn without replacement) */
  double kid_mean, kid_std;
  kernel_inception_distance(fa, 200, fb, 200, DIM, 1, 200, 7, &kid_mean, &kid_std);
  EXPECT(fabs(kid_mean - mmd) < 1e-9 * fabs(mmd) && kid_std == 0.0, "KID of one full subset %.10f (std %.3g) vs %.10f",
         kid_mean, kid_std, mmd);
  double again_mean, again_std;
  kernel_inception_distance(fa, 300, fb, 200, DIM, 5, 50, 7, &kid_mean, &kid_std);
  kernel_inception_distance(fa, 300, fb, 200, DIM, 5, 50, 7, &again_mean, &again_std);
  EXPECT(kid_mean == again_mean && kid_std == again_std && kid_std > 0.0 && fabs(kid_mean - mmd) < 0.5 * mmd,
         "KID over 5 subsets of 50: %.6f +- %.6f (again %.6f +- %.6f; all rows %.6f)", kid_mean, kid_std, again_mean,
         again_std, mmd);
  printf("fid: KID a[:200] vs b %.8f (numpy %.8f); 5 subsets of 50: %.6f +- %.6f\n", mmd, want_kid[0], kid_mean, kid_std);
  free(want_kid);

  /* precision and recall vs guided-diffusion's ManifoldEstimator (numpy): the fixture script checks
   * that no distance is within 1e-5 of a radius, so the counts must agree exactly */
  const struct {
    const char *name;
    const float *fake;
    long n_fake;
  } pr_cases[] = {{"pr.ab", fb, 200}, {"pr.ac", fc, 40}};
  for (int c = 0; c < 2; c++) {
    float *want = fixture_floats(&st, pr_cases[c].name, &n);
    double precision, recall;
    precision_recall(fa, 300, pr_cases[c].fake, pr_cases[c].n_fake, DIM, PR_NEIGHBOURS, &precision, &recall);
    EXPECT(lround(precision * pr_cases[c].n_fake) == lround(want[0] * pr_cases[c].n_fake) &&
               lround(recall * 300) == lround(want[1] * 300),
           "%s: precision %.6f recall %.6f, numpy %.6f %.6f", pr_cases[c].name, precision, recall, want[0], want[1]);
    printf("fid: %s precision %.4f recall %.4f (numpy %.4f %.4f)\n", pr_cases[c].name, precision, recall, want[0], want[1]);
    free(want);
  }
  free(fa), free(fb), free(fc);

  /* our writer: round trip; corrupt, truncated and foreign files give messages */
  char path[] = "/tmp/diffuse_test_fid_XXXXXX";
  const int fd = mkstemp(path);
  close(fd);
  const NpzEntry entries[2] = {{"mu", 1, {DIM}, mu_a, NULL}, {"sigma", 2, {DIM, DIM}, sig_a, NULL}};
  EXPECT(npz_write(path, entries, 2, err, sizeof err) == 0, "%s", err);
  EXPECT(npz_read(path, "sigma", &sigma, err, sizeof err) == 0 && sigma.ndim == 2 &&
             memcmp(sigma.data, sig_a, sizeof sig_a) == 0,
         "npz round trip: %s", err);
  npz_array_free(&sigma);
  FILE *f = fopen(path, "rb");
  fseek(f, 0, SEEK_END);
  const long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)size);
  EXPECT(fread(buf, 1, (size_t)size, f) == (size_t)size, "read back");
  fclose(f);
  EXPECT(npz_read_buffer(buf, (size_t)size, "logvar", &sigma, err, sizeof err) != 0 && strstr(err, "no array 'logvar'"),
         "missing array: '%s'", err);
  buf[200] ^= 0x40; /* inside mu's data */
  EXPECT(npz_read_buffer(buf, (size_t)size, "mu", &sigma, err, sizeof err) != 0 && strstr(err, "CRC"), "flipped bit: '%s'", err);
  buf[200] ^= 0x40;
  for (long cut = 0; cut < size; cut += 97) /* every truncation: a message, never a crash */
    EXPECT(npz_read_buffer(buf, (size_t)cut, "sigma", &sigma, err, sizeof err) != 0, "truncated at %ld accepted", cut);
  /* found by fuzz_npz: a ZIP64 locator in a file shorter than a ZIP64 end record */
  static const unsigned char zip64_short[] = {
      0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x79, 0x50, 0x4b, 0x01, 0x00, 0x27, 0x50, 0x4b, 0x06, 0x07, 0x00, 0x00,
      0x00, 0xbc, 0x00, 0x00, 0x00, 0x73, 0x69, 0x67, 0x6d, 0x5a, 0x2e, 0x6e, 0x70, 0x79, 0x50, 0x4b, 0x05, 0x06, 0x00,
      0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x6b, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00};
  EXPECT(npz_read_buffer(zip64_short, sizeof zip64_short, "sigma", &sigma, err, sizeof err) != 0 && strstr(err, "ZIP64"),
         "short ZIP64 file: '%s'", err);
  write_file(path, "not a zip file at all, just some text that is long enough", 56);
  EXPECT(npz_read(path, "mu", &sigma, err, sizeof err) != 0 && strstr(err, path) && strstr(err, "ZIP"), "text file: '%s'", err);
  free(buf);
  unlink(path);

  FeatureStats one;
  feature_stats_init(&one, DIM);
  feature_stats_add(&one, (const float[DIM]){0}, 1);
  EXPECT(feature_stats_finish(&one, mu_a, sig_a, err, sizeof err) != 0 && strstr(err, "at least 2"), "one sample: '%s'", err);
  feature_stats_free(&one);
  st_free(&st);
  return test_report("fid");
}
