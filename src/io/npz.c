/* npz.c - NumPy .npz archives (ZIP of .npy members); see npz.h.
 *
 * ZIP (APPNOTE 6.3): the end-of-central-directory record is found by scanning back from the end;
 * each central-directory entry gives the member's method (0 stored, 8 deflate), CRC-32, sizes and
 * local-header offset, with ZIP64 extra fields (id 1) where a value is 0xFFFFFFFF (NumPy writes
 * members with force_zip64). Deflated data is inflated by stb_image's zlib decoder. The CRC-32
 * of every member read is checked.
 */
#include "io/npz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/crc32.h"
#include "io/file_read.h"

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

typedef struct {
  uint32_t method, crc;
  uint64_t comp_size, size, local_offset;
} ZipMember;

/* Find `member` in the central directory. 0 found, 1 absent, -1 malformed. */
static int zip_find(const uint8_t *buf, size_t size, const char *member, ZipMember *m, const char **why) {
  if (size < 22) return *why = "too short for a ZIP archive", -1;
  size_t eocd = 0;
  int found = 0;
  for (size_t back = 22; back <= size && back <= 22 + 65535 && !found; back++)
    if (rd32(buf + size - back) == 0x06054b50u) eocd = size - back, found = 1;
  if (!found) return *why = "not a ZIP archive (no end-of-central-directory record)", -1;
  const uint32_t n_entries = rd16(buf + eocd + 10);
  uint64_t cd = rd32(buf + eocd + 16);
  if (cd == 0xFFFFFFFFu && eocd >= 20 && rd32(buf + eocd - 20) == 0x07064b50u) { /* ZIP64 locator */
    const uint64_t z64 = rd64(buf + eocd - 20 + 8);
    if (size < 56 || z64 > size - 56 || rd32(buf + z64) != 0x06064b50u) return *why = "bad ZIP64 end record", -1;
    cd = rd64(buf + z64 + 48);
  }
  const size_t name_len = strlen(member);
  uint64_t p = cd;
  for (uint32_t i = 0; i < n_entries; i++) {
    if (p > size || size - p < 46 || rd32(buf + p) != 0x02014b50u) return *why = "corrupt central directory", -1;
    const uint32_t nlen = rd16(buf + p + 28), xlen = rd16(buf + p + 30), clen = rd16(buf + p + 32);
    if (size - p - 46 < (uint64_t)nlen + xlen + clen) return *why = "central directory entry runs past the end", -1;
    if (nlen == name_len && memcmp(buf + p + 46, member, nlen) == 0) {
      m->method = rd16(buf + p + 10);
      m->crc = rd32(buf + p + 16);
      m->comp_size = rd32(buf + p + 20);
      m->size = rd32(buf + p + 24);
      m->local_offset = rd32(buf + p + 42);
      /* ZIP64 extra: the 64-bit values of the fields that are 0xFFFFFFFF, in this order */
      const uint8_t *x = buf + p + 46 + nlen, *xend = x + xlen;
      while (xend - x >= 4) {
        const uint32_t id = rd16(x), len = rd16(x + 2);
        if ((size_t)(xend - x - 4) < len) break;
        if (id == 1) {
          const uint8_t *v = x + 4, *vend = v + len;
          uint64_t *fields[3] = {&m->size, &m->comp_size, &m->local_offset};
          for (int f = 0; f < 3; f++)
            if (*fields[f] == 0xFFFFFFFFu) {
              if (vend - v < 8) return *why = "truncated ZIP64 extra field", -1;
              *fields[f] = rd64(v), v += 8;
            }
        }
        x += 4 + len;
      }
      return 0;
    }
    p += 46 + (uint64_t)nlen + xlen + clen;
  }
  return 1;
}

/* Parse the .npy header dict: descr, fortran_order, shape. */
static int npy_header(const char *h, size_t n, int *elem_size, NpzArray *out, const char **why) {
  char text[4096];
  if (n >= sizeof text) return *why = ".npy header too long", -1;
  memcpy(text, h, n);
  text[n] = 0;
  const char *d = strstr(text, "'descr'"), *f = strstr(text, "'fortran_order'"), *s = strstr(text, "'shape'");
  if (!d || !f || !s) return *why = ".npy header lacks descr, fortran_order or shape", -1;
  d = strchr(d + 7, '\'');
  if (!d) return *why = "malformed descr", -1;
  if (!strncmp(d, "'<f8'", 5)) *elem_size = 8;
  else if (!strncmp(d, "'<f4'", 5)) *elem_size = 4;
  else return *why = "unsupported dtype (need little-endian float64 <f8 or float32 <f4)", -1;
  f = strchr(f + 15, ':');
  if (!f) return *why = "malformed fortran_order", -1;
  while (*++f == ' ') {
  }
  if (strncmp(f, "False", 5)) return *why = "Fortran-order arrays are not supported", -1;
  s = strchr(s + 7, '(');
  if (!s) return *why = "malformed shape", -1;
  out->ndim = 0;
  out->numel = 1;
  for (s++;;) {
    while (*s == ' ' || *s == ',') s++;
    if (*s == ')') break;
    char *end;
    const long long v = strtoll(s, &end, 10);
    if (end == s || v < 0 || v > (1ll << 31)) return *why = "malformed shape", -1;
    if (out->ndim == NPZ_MAX_DIMS) return *why = "too many dimensions", -1;
    out->shape[out->ndim++] = v;
    if (v > 0 && out->numel > ((size_t)1 << 40) / (size_t)v) return *why = "array too large", -1;
    out->numel *= (size_t)v;
    s = end;
  }
  return 0;
}

static int npy_parse(const uint8_t *p, size_t n, NpzArray *out, const char **why) {
  if (n < 10 || memcmp(p, "\x93NUMPY", 6)) return *why = "member is not a .npy array", -1;
  const int major = p[6];
  size_t hlen, start;
  if (major == 1) hlen = rd16(p + 8), start = 10;
  else if (major == 2 || major == 3) {
    if (n < 12) return *why = "truncated .npy header", -1;
    hlen = rd32(p + 8), start = 12;
  } else {
    return *why = "unsupported .npy version", -1;
  }
  if (hlen > n - start) return *why = "truncated .npy header", -1;
  int elem = 0;
  if (npy_header((const char *)p + start, hlen, &elem, out, why)) return -1;
  const size_t data = start + hlen;
  if ((n - data) / (size_t)elem < out->numel) return *why = ".npy data shorter than its shape", -1;
  out->data = xmalloc((out->numel ? out->numel : 1) * sizeof(double));
  for (size_t i = 0; i < out->numel; i++) {
    const uint8_t *q = p + data + i * (size_t)elem;
    if (elem == 8) {
      const uint64_t bits = rd64(q);
      memcpy(&out->data[i], &bits, 8);
    } else {
      const uint32_t bits = rd32(q);
      float v;
      memcpy(&v, &bits, 4);
      out->data[i] = v;
    }
  }
  return 0;
}

int npz_read_buffer(const uint8_t *buf, size_t size, const char *name, NpzArray *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  char member[256];
  snprintf(member, sizeof member, "%s.npy", name);
  ZipMember m;
  const char *why = NULL;
  const int rc = zip_find(buf, size, member, &m, &why);
  if (rc < 0) return errorf(err, errlen, "%s", why);
  if (rc > 0) {
    errorf(err, errlen, "no array '%s' in the archive", name);
    return 1;
  }
  const uint64_t lo = m.local_offset;
  if (lo > size || size - lo < 30 || rd32(buf + lo) != 0x04034b50u) return errorf(err, errlen, "corrupt local header of %s", member);
  const uint64_t data = lo + 30 + rd16(buf + lo + 26) + rd16(buf + lo + 28);
  if (data > size || m.comp_size > size - data) return errorf(err, errlen, "%s runs past the end of the file", member);
  /* deflate expands at most ~1032:1, so a larger claimed size is a lie (and an allocation bomb) */
  if (m.size > ((uint64_t)1 << 40) || (m.method == 8 && m.size > 1100 * (uint64_t)(size - data) + 1024))
    return errorf(err, errlen, "%s: uncompressed size %llu is impossible for this file", member, (unsigned long long)m.size);
  uint8_t *raw = NULL;
  const uint8_t *bytes = buf + data;
  if (m.method == 8) {
    raw = xmalloc(m.size ? m.size : 1);
    /* inflate from everything after the data start: stb's decoder may read ahead past the end */
    const int got = stbi_zlib_decode_noheader_buffer((char *)raw, (int)m.size, (const char *)bytes, (int)(size - data));
    if (got < 0 || (uint64_t)got != m.size) {
      free(raw);
      return errorf(err, errlen, "%s: corrupt deflate data", member);
    }
    bytes = raw;
  } else if (m.method != 0) {
    return errorf(err, errlen, "%s: unsupported ZIP compression method %u", member, m.method);
  } else if (m.comp_size != m.size) {
    return errorf(err, errlen, "%s: stored member with inconsistent sizes", member);
  }
  int out_rc = 0;
  if (crc32_of(bytes, m.size) != m.crc) out_rc = errorf(err, errlen, "%s: CRC-32 mismatch (corrupt file)", member);
  else if (npy_parse(bytes, m.size, out, &why)) out_rc = errorf(err, errlen, "%s: %s", member, why);
  free(raw);
  return out_rc;
}

int npz_read(const char *path, const char *name, NpzArray *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  uint8_t *buf;
  size_t size;
  if (file_read_all(path, 0, &buf, &size, err, errlen)) return -1;
  char why[512];
  const int rc = npz_read_buffer(buf, size, name, out, why, sizeof why);
  free(buf);
  if (rc) errorf(err, errlen, "%s: %s", path, why);
  return rc;
}

void npz_array_free(NpzArray *a) {
  free(a->data);
  memset(a, 0, sizeof *a);
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xFFFF), put16(p + 2, v >> 16); }

int npz_write(const char *path, const NpzEntry *entries, int n, char *err, size_t errlen) {
  /* build every member (.npy v1.0, <f8 or <f4, header padded to 64 bytes) in memory first */
  uint8_t **member = xmalloc((size_t)n * sizeof *member);
  size_t *msize = xmalloc((size_t)n * sizeof *msize), total = 0;
  for (int i = 0; i < n; i++) {
    char dict[512], shape[256] = "";
    size_t numel = 1;
    for (int d = 0; d < entries[i].ndim; d++) {
      snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%lld,%s", (long long)entries[i].shape[d],
               entries[i].ndim > 1 && d + 1 < entries[i].ndim ? " " : "");
      numel *= (size_t)entries[i].shape[d];
    }
    if (entries[i].ndim > 1) shape[strlen(shape) - 1] = 0; /* "(3, 4)" rather than "(3, 4,)"; 1-D keeps "(3,)" */
    const bool f32 = entries[i].data_f32 != NULL;
    const size_t elem = f32 ? 4 : 8;
    CHECK(f32 != (entries[i].data != NULL));
    int len = snprintf(dict, sizeof dict, "{'descr': '<f%zu', 'fortran_order': False, 'shape': (%s), }", elem, shape);
    const int pad = 64 - (10 + len + 1) % 64;
    memset(dict + len, ' ', (size_t)(pad % 64));
    len += pad % 64;
    dict[len++] = '\n';
    msize[i] = 10 + (size_t)len + numel * elem;
    uint8_t *m = member[i] = xmalloc(msize[i]);
    memcpy(m, "\x93NUMPY\x01\x00", 8);
    put16(m + 8, (uint32_t)len);
    memcpy(m + 10, dict, (size_t)len);
    for (size_t k = 0; k < numel; k++) { /* little-endian */
      uint64_t bits = 0;
      if (f32) {
        uint32_t b32;
        memcpy(&b32, &entries[i].data_f32[k], 4);
        bits = b32;
      } else {
        memcpy(&bits, &entries[i].data[k], 8);
      }
      for (size_t b = 0; b < elem; b++) m[10 + len + k * elem + b] = (uint8_t)(bits >> (8 * b));
    }
    total += msize[i];
  }
  if (total >= 0xFFFFFFFFu - 4096) {
    for (int i = 0; i < n; i++) free(member[i]);
    free(member), free(msize);
    return errorf(err, errlen, "%s: %.1f GiB of arrays is more than an .npz without ZIP64 holds (4 GiB)", path,
                  total / 1073741824.0);
  }
  AtomicFile af;
  if (atomic_file_open(&af, path, err, errlen)) {
    for (int i = 0; i < n; i++) free(member[i]);
    free(member), free(msize);
    return -1;
  }
  int ok = 1;
  uint32_t *offsets = xmalloc((size_t)n * sizeof *offsets), *crcs = xmalloc((size_t)n * sizeof *crcs), pos = 0;
  for (int i = 0; i < n && ok; i++) {
    char name[256];
    const int nlen = snprintf(name, sizeof name, "%s.npy", entries[i].name);
    uint8_t h[30] = {0};
    crcs[i] = crc32_of(member[i], msize[i]);
    put32(h, 0x04034b50u), put16(h + 4, 20), put16(h + 12, 0x21); /* version 2.0, DOS date 1980-01-01 */
    put32(h + 14, crcs[i]), put32(h + 18, (uint32_t)msize[i]), put32(h + 22, (uint32_t)msize[i]), put16(h + 26, (uint32_t)nlen);
    offsets[i] = pos;
    ok = fwrite(h, 1, 30, af.f) == 30 && fwrite(name, 1, (size_t)nlen, af.f) == (size_t)nlen &&
         fwrite(member[i], 1, msize[i], af.f) == msize[i];
    pos += 30 + (uint32_t)nlen + (uint32_t)msize[i];
  }
  const uint32_t cd_start = pos;
  for (int i = 0; i < n && ok; i++) {
    char name[256];
    const int nlen = snprintf(name, sizeof name, "%s.npy", entries[i].name);
    uint8_t h[46] = {0};
    put32(h, 0x02014b50u), put16(h + 4, 20), put16(h + 6, 20), put16(h + 14, 0x21);
    put32(h + 16, crcs[i]), put32(h + 20, (uint32_t)msize[i]), put32(h + 24, (uint32_t)msize[i]);
    put16(h + 28, (uint32_t)nlen), put32(h + 42, offsets[i]);
    ok = fwrite(h, 1, 46, af.f) == 46 && fwrite(name, 1, (size_t)nlen, af.f) == (size_t)nlen;
    pos += 46 + (uint32_t)nlen;
  }
  uint8_t e[22] = {0};
  put32(e, 0x06054b50u), put16(e + 8, (uint32_t)n), put16(e + 10, (uint32_t)n);
  put32(e + 12, pos - cd_start), put32(e + 16, cd_start);
  ok = ok && fwrite(e, 1, 22, af.f) == 22;
  for (int i = 0; i < n; i++) free(member[i]);
  free(member), free(msize), free(offsets), free(crcs);
  return atomic_file_commit(&af, ok, err, errlen);
}
