/* image_condition.h - `diffuse sample`'s image inputs: SDEdit (--image --strength), inpainting
 * (--image --mask), colourisation (--image --colorize) and ILVR super-resolution (--lowres --factor),
 * with RePaint's --resample / --jump. Loads the images, builds the sampler's condition and the tiles
 * the grid shows before the samples (input | mask or reference). */
#ifndef DIFFUSE_CLI_IMAGE_CONDITION_H
#define DIFFUSE_CLI_IMAGE_CONDITION_H

#include <stdbool.h>
#include <stddef.h>

#include "args.h"
#include "nn/unet.h"
#include "samplers/sampler.h"

typedef struct {
  const char *image, *mask, *lowres;
  bool colorize;
  double strength;       /* NAN: not given */
  int factor, resample, jump; /* ARG_UNSET: not given */
} ImageConditionFlags;

void image_condition_flags_default(ImageConditionFlags *f);
#define IMAGE_CONDITION_FLAG_SPECS(f)                                                                          \
  {"--image", ARG_STRING, &(f).image}, {"--strength", ARG_DOUBLE, &(f).strength},                             \
      {"--mask", ARG_STRING, &(f).mask}, {"--colorize", ARG_FLAG, &(f).colorize},                             \
      {"--lowres", ARG_STRING, &(f).lowres}, {"--factor", ARG_INT, &(f).factor},                              \
      {"--resample", ARG_INT, &(f).resample}, {"--jump", ARG_INT, &(f).jump}

#define IMAGE_CONDITION_MAX_LEAD 2

typedef struct {
  bool sdedit;            /* start from the noised image (o->strength < 1) */
  bool conditioned;       /* a SamplerCondition applies */
  SamplerCondition cond;  /* its reference and keep point into the buffers below */
  float *image;           /* (per) the --image, or the upsampled --lowres: the reference */
  float *keep;            /* inpaint: (per) 1 keep / 0 generate */
  float *lead;            /* (n_lead, per) the grid's first tiles */
  int n_lead;
} ImageCondition;

/* Which combination was asked for, before anything is loaded: a usage error (message printed, returns 2)
 * for flags that do not go together, else 0 with o->strength / resample / jump set. */
int image_condition_flags_check(const ImageConditionFlags *f, SamplerOptions *o);
/* Load the images for the model and build the condition (nothing when no image flag was given);
 * sampler_check_condition included. 0, or -1 + a message naming the file or flag. */
int image_condition_load(const ImageConditionFlags *f, const UNetConfig *mc, const SamplerOptions *o,
                         ImageCondition *ic, char *err, size_t errlen);
void image_condition_free(ImageCondition *ic);

#endif
