/* norm.h - GroupNorm (Wu & He 2018, affine, as torch.nn.GroupNorm). */
#ifndef DIFFUSE_OPS_NORM_H
#define DIFFUSE_OPS_NORM_H

/* mean_out / rstd_out (B*G) are saved for the backward pass. */
void group_norm_forward(float *y,            // (B, C, H, W)
                        float *mean_out,     // (B, G)
                        float *rstd_out,     // (B, G)
                        const float *x,      // (B, C, H, W)
                        const float *gamma,  // (C)
                        const float *beta,   // (C)
                        int B, int C, int HW, int G, float eps);

/* Fused GroupNorm + SiLU, one pass over the output: y = silu(h), h = group_norm(x); h (kept for
 * the backward pass) may be NULL when no gradient is needed. */
void group_norm_silu_forward(float *y, float *h, float *mean_out, float *rstd_out, const float *x,
                             const float *gamma, const float *beta, int B, int C, int HW, int G, float eps);

/* Accumulates (+=); dx, dgamma, dbeta may be NULL. */
void group_norm_backward(float *dx,           // (B, C, H, W)
                         float *dgamma,       // (C)
                         float *dbeta,        // (C)
                         const float *dy,     // (B, C, H, W)
                         const float *x,      // (B, C, H, W)
                         const float *mean,   // (B, G)
                         const float *rstd,   // (B, G)
                         const float *gamma,  // (C)
                         int B, int C, int HW, int G);

#endif
