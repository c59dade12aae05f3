/* image_condition.c - `diffuse sample`'s image inputs; see image_condition.h. */
#include "image_condition.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "input_image.h"

void image_condition_flags_default(ImageConditionFlags *f) {
  memset(f, 0, sizeof *f);
  f->strength = NAN;
  f->factor = f->resample = f->jump = ARG_UNSET;
}

static int usage(const char *msg) {
  fprintf(stderr, "diffuse sample: %s\n", msg);
  return 2;
}

int image_condition_flags_check(const ImageConditionFlags *f, SamplerOptions *o) {
  const bool sdedit = !isnan(f->strength), inpaint = f->mask != NULL, lowres = f->lowres != NULL;
  const int modes = sdedit + inpaint + f->colorize + lowres;
  if (modes > 1)
    return usage("--strength (SDEdit), --mask (inpainting), --colorize and --lowres (ILVR) are different tasks: "
                 "give one");
  if (f->image && modes == 0)
    return usage("--image needs a task: --strength S (SDEdit: 0.5 keeps the layout, 0.8 little more than colours), "
                 "--mask M.png (inpainting, white = keep) or --colorize");
  if (!f->image && (sdedit || inpaint || f->colorize))
    return usage(sdedit ? "--strength is for --image (SDEdit)" : inpaint ? "--mask needs --image: the picture to inpaint"
                                                                         : "--colorize needs --image: the picture to colourise");
  if (lowres && f->image) return usage("--lowres is the input of ILVR; --image is not used with it");
  if (lowres != (f->factor != ARG_UNSET))
    return usage(lowres ? "--lowres needs --factor 2 or 4: how many times smaller than the model's size it is"
                        : "--factor is for --lowres (ILVR)");
  if (lowres && f->factor != 2 && f->factor != 4) return usage("--factor must be 2 or 4");
  if ((f->resample != ARG_UNSET || f->jump != ARG_UNSET) && !(inpaint || f->colorize || lowres))
    return usage("--resample and --jump (RePaint) are for --mask, --colorize or --lowres");
  if (f->jump != ARG_UNSET && !(f->resample != ARG_UNSET && f->resample > 1))
    return usage("--jump J is the length of RePaint's resampling jumps: it needs --resample R > 1");
  if (sdedit) o->strength = f->strength;
  if (f->resample != ARG_UNSET) o->resample = f->resample;
  if (f->jump != ARG_UNSET) o->jump = f->jump;
  return 0;
}

/* The mask: white (luma above half) keeps the pixel in every channel. */
static int load_mask(const char *path, const UNetConfig *mc, float *keep, char *err, size_t errlen) {
  const int R = mc->resolution, C = mc->in_channels, HW = R * R;
  float *luma = xmalloc((size_t)HW * sizeof(float));
  int rc = input_image_load(path, 1, R, luma, err, errlen);
  int kept = 0;
  for (int p = 0; rc == 0 && p < HW; p++) {
    const float k = luma[p] > 0.0f ? 1.0f : 0.0f;
    kept += k != 0.0f;
    for (int c = 0; c < C; c++) keep[(size_t)c * HW + p] = k;
  }
  free(luma);
  if (rc == 0 && (kept == 0 || kept == HW))
    rc = errorf(err, errlen, "%s keeps %s pixel: white keeps a pixel, black has it generated", path,
                kept ? "every" : "no");
  return rc;
}

int image_condition_load(const ImageConditionFlags *f, const UNetConfig *mc, const SamplerOptions *o,
                         ImageCondition *ic, char *err, size_t errlen) {
  memset(ic, 0, sizeof *ic);
  if (!f->image && !f->lowres) return 0;
  const int C = mc->in_channels, R = mc->resolution, HW = R * R;
  const size_t per = (size_t)C * HW;
  ic->image = xmalloc(per * sizeof(float));
  ic->lead = xmalloc(IMAGE_CONDITION_MAX_LEAD * per * sizeof(float));
  ic->sdedit = !isnan(f->strength);
  ic->conditioned = !ic->sdedit;
  ic->cond = (SamplerCondition){.reference = ic->image, .channels = C, .height = R, .width = R};
  char why[768];
  if (f->lowres) { /* the low-resolution image, upsampled (nearest) to the model's size */
    const int r = R / f->factor;
    float *small = xmalloc((size_t)C * r * r * sizeof(float));
    const int rc = R % f->factor ? errorf(why, sizeof why, "--factor %d does not divide the model's size %d", f->factor, R)
                                 : input_image_load(f->lowres, C, r, small, why, sizeof why);
    for (int c = 0; rc == 0 && c < C; c++)
      for (int y = 0; y < R; y++)
        for (int x = 0; x < R; x++)
          ic->image[(size_t)c * HW + y * R + x] = small[((size_t)c * r + y / f->factor) * r + x / f->factor];
    free(small);
    if (rc) return errorf(err, errlen, "--lowres (1/%d of the model's %dx%d): %s", f->factor, R, R, why);
    ic->cond.kind = CONDITION_LOWRES, ic->cond.factor = f->factor;
    memcpy(ic->lead, ic->image, per * sizeof(float));
    ic->n_lead = 1;
  } else {
    if (input_image_load(f->image, C, R, ic->image, why, sizeof why))
      return errorf(err, errlen, "--image (the model's size, %dx%d): %s", R, R, why);
    memcpy(ic->lead, ic->image, per * sizeof(float));
    ic->n_lead = 1;
  }
  if (f->mask) { /* input | the kept part, the rest mid-grey */
    ic->keep = xmalloc(per * sizeof(float));
    if (load_mask(f->mask, mc, ic->keep, why, sizeof why)) return errorf(err, errlen, "--mask %s", why);
    ic->cond.kind = CONDITION_INPAINT, ic->cond.keep = ic->keep;
    for (size_t j = 0; j < per; j++) ic->lead[per + j] = ic->keep[j] != 0.0f ? ic->image[j] : 0.0f;
    ic->n_lead = 2;
  } else if (f->colorize) { /* input | the grayscale image the samples keep */
    ic->cond.kind = CONDITION_COLORIZE;
    memcpy(ic->lead + per, ic->image, per * sizeof(float));
    if (C == 3) sampler_condition_project(&ic->cond, ic->lead + per, 1);
    ic->n_lead = 2;
  }
  if (ic->conditioned && sampler_check_condition(o, &ic->cond, per, err, errlen)) return -1;
  return 0;
}

void image_condition_free(ImageCondition *ic) {
  free(ic->image), free(ic->keep), free(ic->lead);
  memset(ic, 0, sizeof *ic);
}
