/*
 * cuda_stub.c — stands in for the CUDA backend when kfchat is configured without CUDA, so the
 * rest of the program can ask "is there a GPU?" unconditionally.
 */
#include "config.h"

#include <stdio.h>

#include "cuda/cuda_backend.h"

int cuda_probe(char *buf, size_t n)
{
    if (buf && n)
        snprintf(buf, n, "kfchat was built without CUDA");
    return 0;
}

/* Without CUDA nothing below is reached (cuda_probe says there is no device); they only link. */
void cuda_mem_info(size_t *free_b, size_t *total_b)
{
    *free_b = *total_b = 0;
}

size_t cuda_model_bytes_needed(const struct cuda_model_desc *d)
{
    (void)d;
    return 0;
}

int cuda_model_new(struct cuda_model **out, const struct cuda_model_desc *d, char *err,
                   size_t errlen)
{
    (void)d;
    *out = NULL;
    snprintf(err, errlen, "kfchat was built without CUDA");
    return -1;
}

void cuda_model_free(struct cuda_model *cm)
{
    (void)cm;
}

size_t cuda_model_device_bytes(const struct cuda_model *cm)
{
    (void)cm;
    return 0;
}

int cuda_model_forward(struct cuda_model *cm, const float *x, int n, int pos0, int scoring,
                       int stat_op, float *logits, int all_logits, float *x_out, char *err,
                       size_t errlen)
{
    (void)cm, (void)x, (void)n, (void)pos0, (void)scoring, (void)stat_op, (void)logits,
        (void)all_logits, (void)x_out;
    snprintf(err, errlen, "kfchat was built without CUDA");
    return -1;
}

int cuda_model_kv_get(struct cuda_model *cm, int layer, int g, int *n_used, int32_t *pos,
                      float *score, uint8_t *key, float *k, float *v)
{
    (void)cm, (void)layer, (void)g, (void)pos, (void)score, (void)key, (void)k, (void)v;
    *n_used = 0;
    return -1;
}

int cuda_model_kv_set(struct cuda_model *cm, int layer, int g, int n_used, const int32_t *pos,
                      const float *score, const uint8_t *key, const float *k, const float *v)
{
    (void)cm, (void)layer, (void)g, (void)n_used, (void)pos, (void)score, (void)key, (void)k,
        (void)v;
    return -1;
}

int cuda_model_kv_counts(struct cuda_model *cm, int *counts)
{
    (void)cm, (void)counts;
    return -1;
}

void cuda_model_kv_truncate(struct cuda_model *cm, int n_past)
{
    (void)cm, (void)n_past;
}
