/* embedding.h - sinusoidal timestep embedding (Vaswani et al. 2017 as used by DDPM) and class-label
 * embedding lookup.
 *
 * y[b] = [sin(t_b * f_0..f_{h-1}) | cos(t_b * f_0..f_{h-1})], h = dim/2,
 * f_i = exp(-ln(10000) * i / (h - 1)): diffusers' get_timestep_embedding with
 * flip_sin_to_cos=False, downscale_freq_shift=1. Computed in float32 as diffusers does. */
#ifndef DIFFUSE_OPS_EMBEDDING_H
#define DIFFUSE_OPS_EMBEDDING_H

void timestep_embedding_forward(float *y /* (B, dim) */, const float *t /* (B) */, int B, int dim);

/* Row lookup y[b] = table[labels[b]] (nn.Embedding); backward scatters dy into the rows (+=). */
void embedding_lookup_forward(float *y /* (B, dim) */, const float *table /* (num, dim) */, const int *labels, int B,
                              int dim);
void embedding_lookup_backward(float *dtable, const float *dy, const int *labels, int B, int dim);

#endif
