/* class_list.h - `--class C` or `--class C1,C2,...` and the labels it gives a run of images: image i is in
 * row i / cols of a grid of ceil(sqrt(n)) columns (image_write_grid_png's layout), and row r is class
 * C_(r mod k). diffuse sample labels its images so; diffuse eval accuracy reads them back the same way. */
#ifndef DIFFUSE_CLI_CLASS_LIST_H
#define DIFFUSE_CLI_CLASS_LIST_H

#include <stddef.h>

#define MAX_CLASS_LIST 256

typedef struct {
  int classes[MAX_CLASS_LIST], n; /* n 0: no list */
  int num_classes;                /* of the model (or classifier) */
} ClassList;

/* Parse text (NULL: no list) against a model of num_classes classes. 0, or -1 + a message. */
int class_list_parse(ClassList *l, const char *text, int num_classes, char *err, size_t errlen);
/* The label of image i of n: from the list, or i mod num_classes without one. */
int class_list_label(const ClassList *l, int i, int n);

#endif
