/* config.h - typed, validated reading of JSON config sections (cJSON).
 *
 * A section is described by a table of fields (key, type, offset into a struct, bounds). Reading
 * rejects unknown keys and wrong types with a message naming "section.key"; keys that are absent
 * keep the struct's defaults. The same table writes the resolved section back to JSON, so the
 * config stored in out/config.json and in checkpoints is complete and explicit.
 */
#ifndef DIFFUSE_IO_CONFIG_H
#define DIFFUSE_IO_CONFIG_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define CFG_LIST_MAX 8
#define CFG_STRING_MAX 1024

typedef enum { CFG_INT, CFG_FLOAT, CFG_BOOL, CFG_STRING, CFG_INT_LIST } CfgType;

typedef struct {
  const char *key;
  CfgType type;
  size_t offset;       /* of the value (int, double, bool, char[CFG_STRING_MAX] or int[CFG_LIST_MAX]) */
  size_t count_offset; /* CFG_INT_LIST: offset of the int element count */
  double min, max;     /* numeric bounds (inclusive), also for list elements */
  const char *help;
} CfgField;

/* Read section `name` of `root` into `out`. A missing section keeps all defaults. */
int cfg_read_section(const cJSON *root, const char *name, const CfgField *fields, int n_fields, void *out, char *err,
                     size_t errlen);
/* Add section `name` with every field of `in` to `root`. */
void cfg_write_section(cJSON *root, const char *name, const CfgField *fields, int n_fields, const void *in);
/* Reject top-level sections not in `known` (NULL-terminated). */
int cfg_check_sections(const cJSON *root, const char *const *known, char *err, size_t errlen);
/* Apply "section.key=value": the value is taken as a string when is_string(section, key) says the key
 * holds one (so data.path=2020 or =true is a path), else parsed as JSON, else taken as a string.
 * is_string may be NULL. */
int cfg_apply_override(cJSON *root, const char *assignment, bool (*is_string)(const char *section, const char *key),
                       char *err, size_t errlen);
/* Parse a config file; errors name the file. Caller deletes the result. */
cJSON *cfg_load_file(const char *path, char *err, size_t errlen);

#endif
