/* config.c - table-driven config sections; see config.h. */
#include "io/config.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file_read.h"

static const CfgField *find_field(const CfgField *fields, int n, const char *key) {
  for (int i = 0; i < n; i++)
    if (strcmp(fields[i].key, key) == 0) return &fields[i];
  return NULL;
}

static int read_number(const cJSON *v, const char *sec, const CfgField *f, bool integer, double *out, char *err,
                       size_t errlen) {
  if (!cJSON_IsNumber(v))
    return errorf(err, errlen, "%s.%s: expected %s", sec, f->key, integer ? "an integer" : "a number");
  const double d = v->valuedouble;
  if (integer && (floor(d) != d || fabs(d) > 2147483647.0))
    return errorf(err, errlen, "%s.%s: expected an integer, got %g", sec, f->key, d);
  if (d < f->min || d > f->max)
    return errorf(err, errlen, "%s.%s: %g is outside [%g, %g]", sec, f->key, d, f->min, f->max);
  *out = d;
  return 0;
}

static int read_field(const cJSON *v, const char *sec, const CfgField *f, void *out, char *err, size_t errlen) {
  char *base = out;
  double d;
  switch (f->type) {
    case CFG_INT:
      if (read_number(v, sec, f, true, &d, err, errlen)) return -1;
      *(int *)(base + f->offset) = (int)d;
      return 0;
    case CFG_FLOAT:
      if (read_number(v, sec, f, false, &d, err, errlen)) return -1;
      *(double *)(base + f->offset) = d;
      return 0;
    case CFG_BOOL:
      if (!cJSON_IsBool(v)) return errorf(err, errlen, "%s.%s: expected true or false", sec, f->key);
      *(bool *)(base + f->offset) = cJSON_IsTrue(v);
      return 0;
    case CFG_STRING:
      if (!cJSON_IsString(v)) return errorf(err, errlen, "%s.%s: expected a string", sec, f->key);
      if (strlen(v->valuestring) >= CFG_STRING_MAX) return errorf(err, errlen, "%s.%s: string too long", sec, f->key);
      strcpy(base + f->offset, v->valuestring);
      return 0;
    case CFG_INT_LIST: {
      if (!cJSON_IsArray(v)) return errorf(err, errlen, "%s.%s: expected a list of integers", sec, f->key);
      const int n = cJSON_GetArraySize(v);
      if (n > CFG_LIST_MAX) return errorf(err, errlen, "%s.%s: at most %d entries", sec, f->key, CFG_LIST_MAX);
      int *dst = (int *)(base + f->offset), i = 0;
      for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (read_number(e, sec, f, true, &d, err, errlen)) return -1;
        dst[i] = (int)d;
      }
      *(int *)(base + f->count_offset) = n;
      return 0;
    }
  }
  return errorf(err, errlen, "%s.%s: unsupported field type", sec, f->key);
}

int cfg_read_section(const cJSON *root, const char *name, const CfgField *fields, int n_fields, void *out, char *err,
                     size_t errlen) {
  const cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, name);
  if (!sec) return 0;
  if (!cJSON_IsObject(sec)) return errorf(err, errlen, "%s: expected an object", name);
  for (const cJSON *kv = sec->child; kv; kv = kv->next) {
    const CfgField *f = find_field(fields, n_fields, kv->string);
    if (!f) {
      int len = 0;
      char known[512] = "";
      for (int i = 0; i < n_fields && len < (int)sizeof known - 40; i++)
        len += snprintf(known + len, sizeof known - (size_t)len, "%s%s", i ? ", " : "", fields[i].key);
      return errorf(err, errlen, "%s.%.60s%s: unknown key (known keys: %s)", name, kv->string,
                    strlen(kv->string) > 60 ? "..." : "", known);
    }
    if (read_field(kv, name, f, out, err, errlen)) return -1;
  }
  return 0;
}

void cfg_write_section(cJSON *root, const char *name, const CfgField *fields, int n_fields, const void *in) {
  cJSON *sec = cJSON_AddObjectToObject(root, name);
  const char *base = in;
  for (int i = 0; i < n_fields; i++) {
    const CfgField *f = &fields[i];
    switch (f->type) {
      case CFG_INT: cJSON_AddNumberToObject(sec, f->key, *(const int *)(base + f->offset)); break;
      case CFG_FLOAT: cJSON_AddNumberToObject(sec, f->key, *(const double *)(base + f->offset)); break;
      case CFG_BOOL: cJSON_AddBoolToObject(sec, f->key, *(const bool *)(base + f->offset)); break;
      case CFG_STRING: cJSON_AddStringToObject(sec, f->key, base + f->offset); break;
      case CFG_INT_LIST: {
        const int n = *(const int *)(base + f->count_offset);
        cJSON_AddItemToObject(sec, f->key, cJSON_CreateIntArray((const int *)(base + f->offset), n));
        break;
      }
    }
  }
}

/* The first key of obj that appears twice, or NULL (cJSON keeps both; the first would silently win). */
static const char *duplicate_key(const cJSON *obj) {
  for (const cJSON *a = obj->child; a; a = a->next)
    for (const cJSON *b = a->next; b; b = b->next)
      if (a->string && b->string && strcmp(a->string, b->string) == 0) return a->string;
  return NULL;
}

int cfg_check_sections(const cJSON *root, const char *const *known, char *err, size_t errlen) {
  if (!cJSON_IsObject(root)) return errorf(err, errlen, "config must be a JSON object");
  const char *dup = duplicate_key(root);
  if (dup) return errorf(err, errlen, "%s: section given twice (merge them into one)", dup);
  for (const cJSON *kv = root->child; kv; kv = kv->next) {
    bool ok = false;
    for (int i = 0; known[i] && !ok; i++) ok = strcmp(known[i], kv->string) == 0;
    if (!ok) return errorf(err, errlen, "%s: unknown config section", kv->string);
    if (cJSON_IsObject(kv) && (dup = duplicate_key(kv)))
      return errorf(err, errlen, "%s.%s: key given twice (keep one)", kv->string, dup);
  }
  return 0;
}

int cfg_apply_override(cJSON *root, const char *assignment, bool (*is_string)(const char *section, const char *key),
                       char *err, size_t errlen) {
  const char *dot = strchr(assignment, '.'), *eq = strchr(assignment, '=');
  if (!dot || !eq || dot > eq || dot == assignment || eq == dot + 1)
    return errorf(err, errlen, "--set %.80s%s: expected section.key=value", assignment, strlen(assignment) > 80 ? "..." : "");
  char section[CFG_STRING_MAX], key[CFG_STRING_MAX];
  if ((size_t)(dot - assignment) >= sizeof section || (size_t)(eq - dot - 1) >= sizeof key)
    return errorf(err, errlen, "--set %.40s...: section or key name longer than %d characters (no such key)", assignment,
                  CFG_STRING_MAX - 1);
  snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
  snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
  /* the whole value must be one JSON value ("2 junk" is not the number 2); otherwise it is a string */
  cJSON *value = is_string && is_string(section, key) ? NULL : cJSON_ParseWithOpts(eq + 1, NULL, 1);
  if (!value) value = cJSON_CreateString(eq + 1);
  cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, section);
  if (!sec) sec = cJSON_AddObjectToObject(root, section);
  if (!cJSON_IsObject(sec)) {
    cJSON_Delete(value);
    return errorf(err, errlen, "--set %s.%s: %s is not a section (an object) in the config", section, key, section);
  }
  if (cJSON_GetObjectItemCaseSensitive(sec, key)) cJSON_ReplaceItemInObjectCaseSensitive(sec, key, value);
  else cJSON_AddItemToObject(sec, key, value);
  return 0;
}

cJSON *cfg_load_file(const char *path, char *err, size_t errlen) {
  uint8_t *bytes;
  size_t size;
  if (file_read_all(path, 1u << 24, &bytes, &size, err, errlen)) return NULL;
  char *text = (char *)bytes;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
  if (!root) {
    long line = 1;
    for (const char *p = text; end && p < end; p++) line += *p == '\n';
    errorf(err, errlen, "%s:%ld: invalid JSON", path, line);
  } else if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    root = NULL;
    errorf(err, errlen, "%s: config must be a JSON object", path);
  }
  free(text);
  return root;
}
