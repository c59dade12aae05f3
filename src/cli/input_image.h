/* input_image.h - an image given on the command line (--image) as a model input: a PNG or JPEG of
 * exactly the model's size, as floats in [-1, 1] (p / 127.5 - 1, the training data's scale). */
#ifndef DIFFUSE_CLI_INPUT_IMAGE_H
#define DIFFUSE_CLI_INPUT_IMAGE_H

#include <stddef.h>

/* out: (C, R, R). Another size is an error naming both sizes; RGB images feed a 1-channel model as
 * luma and a grayscale image a 3-channel one replicated. 0, or -1 + a message naming the file. */
int input_image_load(const char *path, int C, int R, float *out, char *err, size_t errlen);

#endif
