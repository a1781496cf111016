/*
 * ops_rope.c — rotary position embeddings (ops_rope, declared in ops.h): plain C, dominated by
 * libm (the sin/cos per token and pair, computed once and shared by all heads).
 */
#include "config.h"
#include "ops.h"

#include <math.h>
#include <string.h>

#include "status.h"

/* cos/sin of θ_i for one position, built like ggml_rope_cache_init (θ *= θ_scale in f32). */
static void rope_cache(float p, const struct ops_rope_params *rp, float theta_scale, float *cs)
{
    float theta = p;
    for (int i = 0; i < rp->n_rot / 2; i++) {
        const float ff = rp->freq_factors ? rp->freq_factors[i] : 1.0f;
        const float t = rp->freq_scale * (theta / ff);
        cs[2 * i] = cosf(t);
        cs[2 * i + 1] = sinf(t);
        theta *= theta_scale;
    }
}

int ops_rope(const float *x, float *out, int64_t n_tokens, int n_heads, int head_dim,
             int64_t stride, const int32_t *pos, const struct ops_rope_params *rp)
{
    float cs[OPS_ROPE_MAX_ROT];
    const int n_rot = rp->n_rot, half = n_rot / 2;

    if (n_rot < 0 || n_rot % 2 || n_rot > head_dim || n_rot > OPS_ROPE_MAX_ROT ||
        (rp->mode != OPS_ROPE_NORM && rp->mode != OPS_ROPE_NEOX))
        return STATUS_INVALID;
    const float theta_scale = powf(rp->base, -2.0f / (float)n_rot);

    for (int64_t t = 0; t < n_tokens; t++) {
        rope_cache((float)pos[t], rp, theta_scale, cs);
        for (int h = 0; h < n_heads; h++) {
            const float *src = x + t * stride + (int64_t)h * head_dim;
            float *dst = out + t * stride + (int64_t)h * head_dim;
            /* the pair's two elements are read before either is written: in place is safe */
            if (rp->mode == OPS_ROPE_NORM) {
                for (int i = 0; i < half; i++) {
                    const float c = cs[2 * i], s = cs[2 * i + 1];
                    const float x0 = src[2 * i], x1 = src[2 * i + 1];
                    dst[2 * i] = x0 * c - x1 * s;
                    dst[2 * i + 1] = x0 * s + x1 * c;
                }
            } else {
                for (int i = 0; i < half; i++) {
                    const float c = cs[2 * i], s = cs[2 * i + 1];
                    const float x0 = src[i], x1 = src[i + half];
                    dst[i] = x0 * c - x1 * s;
                    dst[i + half] = x0 * s + x1 * c;
                }
            }
            if (dst != src && head_dim > n_rot)
                memcpy(dst + n_rot, src + n_rot, (size_t)(head_dim - n_rot) * sizeof(float));
        }
    }
    return STATUS_OK;
}
