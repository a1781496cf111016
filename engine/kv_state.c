/*
 * kv_state.c — snapshots of the KV cache for exact resume: every held entry with its position,
 * score and key flag, plus the static freeze, in a flat little-endian buffer.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "kv_cache_impl.h"
#include "status.h"

#define KV_STATE_MAGIC 0x3153564bu /* "KVS1" */

struct kv_state_hdr {
    uint32_t magic, policy;
    int32_t n_layer, n_head_kv, head_dim, budget, n_past;
    int32_t step;      /* unused since τ is a function of the position (kv_cache_tau): 0 */
    int32_t frozen, type; /* type: enum kv_type (0 in older snapshots: f16) */
    float tau, recent; /* tau: unused, τ_init */
    uint64_t seed;
};

size_t kv_cache_state_size(const struct kv_cache *kv)
{
    size_t n = 0, hd = (size_t)kv->sh.head_dim;
    for (size_t i = 0; i < (size_t)kv->sh.n_layer * kv->sh.n_head_kv; i++)
        n += (size_t)kv->n_used[i];
    return sizeof(struct kv_state_hdr) + (size_t)kv->sh.n_layer * kv->sh.n_head_kv * sizeof(int32_t) +
           n * (sizeof(int32_t) + sizeof(float) + 1 + 2 * hd * sizeof(float));
}

/* Append n bytes at *p (a cursor into the caller's buffer). */
static void put(uint8_t **p, const void *src, size_t n)
{
    memcpy(*p, src, n);
    *p += n;
}

void kv_cache_state_save(const struct kv_cache *kv, void *buf)
{
    uint8_t *p = buf;
    size_t hd = (size_t)kv->sh.head_dim;
    struct kv_state_hdr h = {
        .magic = KV_STATE_MAGIC, .policy = (uint32_t)kv->p.policy, .n_layer = kv->sh.n_layer,
        .n_head_kv = kv->sh.n_head_kv, .head_dim = kv->sh.head_dim, .budget = kv->p.budget,
        .n_past = kv->n_past, .step = 0, .frozen = kv->frozen, .type = (int32_t)kv->p.type,
        .tau = kv->p.tau_init, .recent = kv->p.recent, .seed = kv->p.seed,
    };
    put(&p, &h, sizeof h);
    put(&p, kv->n_used, (size_t)kv->sh.n_layer * kv->sh.n_head_kv * sizeof(int32_t));
    for (int l = 0; l < kv->sh.n_layer; l++)
        for (int g = 0; g < kv->sh.n_head_kv; g++) {
            size_t b = base_of(kv, l, g), n = (size_t)kv_cache_n_used(kv, l, g);
            put(&p, kv->pos + b, n * sizeof(int32_t));
            put(&p, kv->score + b, n * sizeof(float));
            put(&p, kv->key + b, n);
            put(&p, kv->k + b * hd, n * hd * sizeof(float));
            put(&p, kv->v + b * hd, n * hd * sizeof(float));
        }
}

int kv_cache_state_load(struct kv_cache *kv, const void *buf, size_t len)
{
    const uint8_t *p = buf, *end = p + len;
    struct kv_state_hdr h;
    size_t hd = (size_t)kv->sh.head_dim, nh = (size_t)kv->sh.n_layer * kv->sh.n_head_kv;
    if (len < sizeof h)
        return STATUS_FORMAT;
    memcpy(&h, p, sizeof h);
    p += sizeof h;
    if (h.magic != KV_STATE_MAGIC || h.n_layer != kv->sh.n_layer ||
        h.n_head_kv != kv->sh.n_head_kv || h.head_dim != kv->sh.head_dim)
        return STATUS_FORMAT;
    if (h.policy != (uint32_t)kv->p.policy || h.budget != kv->p.budget || h.seed != kv->p.seed ||
        h.recent != kv->p.recent || h.type != (int32_t)kv->p.type || h.n_past < 0 || h.n_past > kv->sh.n_ctx)
        return STATUS_INVALID; /* another policy or budget: the caller re-processes instead */
    if ((size_t)(end - p) < nh * sizeof(int32_t))
        return STATUS_FORMAT;
    int32_t *used = malloc(nh * sizeof(int32_t));
    if (!used)
        return STATUS_NOMEM;
    memcpy(used, p, nh * sizeof(int32_t));
    p += nh * sizeof(int32_t);
    size_t need = 0;
    for (int l = 0; l < kv->sh.n_layer; l++)
        for (int g = 0; g < kv->sh.n_head_kv; g++) {
            int32_t u = used[(size_t)l * kv->sh.n_head_kv + (size_t)g];
            if (u < 0 || u > kv->layer_cap[l]) {
                free(used);
                return STATUS_FORMAT;
            }
            need += (size_t)u * (sizeof(int32_t) + sizeof(float) + 1 + 2 * hd * sizeof(float));
        }
    if ((size_t)(end - p) != need) {
        free(used);
        return STATUS_FORMAT;
    }
    memcpy(kv->n_used, used, nh * sizeof(int32_t));
    free(used);
    for (int l = 0; l < kv->sh.n_layer; l++)
        for (int g = 0; g < kv->sh.n_head_kv; g++) {
            size_t b = base_of(kv, l, g), n = (size_t)kv_cache_n_used(kv, l, g);
            memcpy(kv->pos + b, p, n * sizeof(int32_t)), p += n * sizeof(int32_t);
            memcpy(kv->score + b, p, n * sizeof(float)), p += n * sizeof(float);
            memcpy(kv->key + b, p, n), p += n;
            memcpy(kv->k + b * hd, p, n * hd * sizeof(float)), p += n * hd * sizeof(float);
            memcpy(kv->v + b * hd, p, n * hd * sizeof(float)), p += n * hd * sizeof(float);
        }
    kv->n_past = h.n_past;
    kv->frozen = h.frozen;
    return STATUS_OK;
}
