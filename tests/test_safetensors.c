/* test_safetensors.c - writer/reader round trip, atomic save, dtype conversion, and rejection of
 * every truncation and of malformed headers (errors, never crashes). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "test_util.h"

static uint8_t *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(*size ? *size : 1);
  if (fread(b, 1, *size, f) != *size) *size = 0;
  fclose(f);
  return b;
}

/* Parse an in-memory image built from a header string and n data bytes. */
static int parse_image(const char *header, size_t data_bytes, char *err, size_t errlen) {
  const size_t hl = strlen(header), size = 8 + hl + data_bytes;
  uint8_t *buf = calloc(size, 1);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, header, hl);
  SafeTensors st;
  const int rc = st_parse(&st, buf, size, err, errlen);
  if (rc == 0) st_free(&st);
  return rc;
}

static void expect_rejected(const char *header, size_t data_bytes, const char *msg_part) {
  char err[512] = "";
  const int rc = parse_image(header, data_bytes, err, sizeof err);
  EXPECT(rc != 0, "accepted bad header %s", header);
  EXPECT(strstr(err, msg_part) != NULL, "error for %s was '%s', expected it to mention '%s'", header, err, msg_part);
}

int main(void) {
  char path[] = "/tmp/diffuse_test_st_XXXXXX";
  const int fd = mkstemp(path);
  close(fd);
  char err[512];

  /* ---- round trip ---- */
  float a[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
  float b[3] = {0.25f, 0.5f, 0.75f};
  StWriter w;
  st_writer_init(&w);
  const int64_t sa[2] = {2, 3}, sb[1] = {3};
  st_writer_add_f32(&w, "conv_in.weight", 2, sa, a);
  st_writer_add_f32(&w, "conv_in.bias", 1, sb, b);
  st_writer_set_meta(&w, "config", "{\"ch\": 32}");
  st_writer_set_meta(&w, "step", "12");
  st_writer_set_meta(&w, "step", "13"); /* overwrite */
  EXPECT(st_writer_save(&w, path, err, sizeof err) == 0, "save failed: %s", err);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  EXPECT(access(tmp, F_OK) != 0, "temporary file left behind");

  SafeTensors st;
  EXPECT(st_load(&st, path, err, sizeof err) == 0, "load failed: %s", err);
  const StTensor *ta = st_find(&st, "conv_in.weight"), *tb = st_find(&st, "conv_in.bias");
  EXPECT(ta && ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 3 && ta->dtype == ST_F32, "weight header");
  EXPECT(tb && tb->numel == 3, "bias header");
  float back[6];
  EXPECT(ta && st_tensor_to_f32(ta, back, err, sizeof err) == 0 && memcmp(back, a, sizeof a) == 0, "weight data");
  EXPECT(tb && st_tensor_to_f32(tb, back, err, sizeof err) == 0 && memcmp(back, b, sizeof b) == 0, "bias data");
  EXPECT(st_meta_get(&st, "config") && !strcmp(st_meta_get(&st, "config"), "{\"ch\": 32}"), "metadata config");
  EXPECT(st_meta_get(&st, "step") && !strcmp(st_meta_get(&st, "step"), "13"), "metadata overwrite");
  EXPECT(st_find(&st, "missing") == NULL, "found a missing tensor");
  EXPECT((8 + (st.size - 8 - ta->nbytes - tb->nbytes)) % 8 == 0, "data section not 8-byte aligned");
  st_free(&st);

  /* saving again gives identical bytes */
  size_t size1, size2;
  uint8_t *img1 = read_all(path, &size1);
  EXPECT(st_writer_save(&w, path, err, sizeof err) == 0, "second save failed: %s", err);
  uint8_t *img2 = read_all(path, &size2);
  EXPECT(size1 == size2 && memcmp(img1, img2, size1) == 0, "save is not deterministic");
  free(img2);
  st_writer_free(&w);

  /* ---- every truncation is rejected without crashing ---- */
  for (size_t n = 0; n < size1; n++) {
    uint8_t *cut = malloc(n ? n : 1);
    memcpy(cut, img1, n);
    const int rc = st_parse(&st, cut, n, err, sizeof err);
    EXPECT(rc != 0, "truncation to %zu of %zu bytes accepted", n, size1);
    if (rc == 0) st_free(&st);
  }
  /* ---- single-byte corruption: must never crash (it may or may not stay valid) ---- */
  for (size_t i = 0; i < size1; i++) {
    uint8_t *bad = malloc(size1);
    memcpy(bad, img1, size1);
    bad[i] ^= 0x5A;
    if (st_parse(&st, bad, size1, err, sizeof err) == 0) st_free(&st);
  }
  free(img1);

  /* ---- malformed headers ---- */
  expect_rejected("[1,2]", 0, "not a JSON object");
  expect_rejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 8, "bytes of data");
  expect_rejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 8, "outside");
  expect_rejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8, "non-negative");
  expect_rejected("{\"a\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "unknown dtype");
  expect_rejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8, "data_offsets");
  expect_rejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                  " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                  12, "overlap");
  expect_rejected("{\"__metadata__\": {\"k\": 3}}", 0, "strings");
  /* found by the fuzzer (tests/fuzz/corpus/regress-duplicate-metadata.safetensors) */
  expect_rejected("{\"__metadata__\": {\"a\": \"1\"}, \"__metadata__\": {\"b\": \"2\", \"c\": \"3\"}}", 0, "twice");
  expect_rejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                  " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                  8, "appears twice");
  expect_rejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4, "dims");
  expect_rejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], \"data_offsets\": [0, 4]}}", 4, "overflow");
  {
    uint8_t *buf = calloc(16, 1);
    buf[0] = 0xff, buf[1] = 0xff, buf[7] = 0x7f; /* absurd header length */
    EXPECT(st_parse(&st, buf, 16, err, sizeof err) != 0 && strstr(err, "header length"), "huge header length: %s", err);
  }
  EXPECT(st_load(&st, "/nonexistent/dir/x.safetensors", err, sizeof err) != 0 && strstr(err, "/nonexistent/dir/x.safetensors"),
         "missing file error should name the path: %s", err);

  /* ---- F16 / BF16 / F64 conversion ---- */
  {
    /* F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 2^-24 = 0x0001
     * BF16: 0.5 = 0x3F00, -3.0 = 0xC040;  F64: 0.1 */
    const char *hdr = "{\"h\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [0, 8]},"
                      " \"bf\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [8, 12]},"
                      " \"d\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [16, 24]},"
                      " \"i\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [24, 32]}}";
    const uint8_t data[32] = {0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0x3F, 0x40, 0xC0,
                              0, 0, 0, 0, 0x9A, 0x99, 0x99, 0x99, 0x99, 0x99, 0xB9, 0x3F};
    const size_t hl = strlen(hdr);
    uint8_t *buf = calloc(8 + hl + 32, 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    memcpy(buf + 8 + hl, data, 32);
    EXPECT(st_parse(&st, buf, 8 + hl + 32, err, sizeof err) == 0, "conversion image: %s", err);
    float h[4], bf[2], d[1], dummy[1];
    EXPECT(st_tensor_to_f32(st_find(&st, "h"), h, err, sizeof err) == 0, "%s", err);
    EXPECT(h[0] == 1.0f && h[1] == -2.0f && h[2] == 65504.0f && h[3] == 5.9604644775390625e-08f,
           "F16 -> %g %g %g %g", h[0], h[1], h[2], h[3]);
    EXPECT(st_tensor_to_f32(st_find(&st, "bf"), bf, err, sizeof err) == 0 && bf[0] == 0.5f && bf[1] == -3.0f,
           "BF16 -> %g %g", bf[0], bf[1]);
    EXPECT(st_tensor_to_f32(st_find(&st, "d"), d, err, sizeof err) == 0 && d[0] == 0.1f, "F64 -> %g", d[0]);
    EXPECT(st_tensor_to_f32(st_find(&st, "i"), dummy, err, sizeof err) != 0 && strstr(err, "I64"),
           "integer tensor converted: %s", err);
    st_free(&st);
  }

  unlink(path);
  return test_report("safetensors");
}
