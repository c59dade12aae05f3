/* class_list.c - the --class list and the labels of a run's images; see class_list.h. */
#include "class_list.h"

#include <stdlib.h>

#include "core/error.h"

int class_list_parse(ClassList *l, const char *text, int num_classes, char *err, size_t errlen) {
  l->n = 0;
  l->num_classes = num_classes;
  if (!text) return 0;
  if (num_classes == 0) return errorf(err, errlen, "--class needs a class-conditional model (model.num_classes > 0)");
  const char *p = text;
  for (;;) {
    char *end;
    const long c = strtol(p, &end, 10);
    if (end == p || (*end != ',' && *end != '\0'))
      return errorf(err, errlen, "--class '%s': expected a class or a comma-separated list of classes", text);
    if (c < 0 || c >= num_classes)
      return errorf(err, errlen, "--class %ld but the model has %d classes (0..%d)", c, num_classes, num_classes - 1);
    if (l->n == MAX_CLASS_LIST) return errorf(err, errlen, "--class: at most %d classes in the list", MAX_CLASS_LIST);
    l->classes[l->n++] = (int)c;
    if (*end == '\0') return 0;
    p = end + 1;
  }
}

/* The columns of a grid of n images (image_write_grid_png's near-square layout). */
static int grid_cols(int n) {
  int cols = 1;
  while (cols * cols < n) cols++;
  return cols;
}

int class_list_label(const ClassList *l, int i, int n) {
  return l->n ? l->classes[(i / grid_cols(n)) % l->n] : i % l->num_classes;
}
