/*
 * kv_sync.c — the KV cache's slot storage seen from outside (kv_sync.h), for the GPU backend's
 * pull/push of the layers it holds.
 */
#include "config.h"

#include "kv_cache_impl.h"
#include "kv_sync.h"

int kv_cache_unbounded(const struct kv_cache *kv)
{
    return kv->unbounded || kv->p.policy == KV_POLICY_FULL;
}

int kv_cache_layer_cap(const struct kv_cache *kv, int layer)
{
    return kv->layer_cap[layer];
}

int kv_cache_layer_used(const struct kv_cache *kv, int layer)
{
    int n = 0;
    for (int g = 0; g < kv->sh.n_head_kv; g++)
        n += kv->n_used[(size_t)layer * kv->sh.n_head_kv + g];
    return n;
}

int kv_cache_scores_now(const struct kv_cache *kv)
{
    for (int l = 0; l < kv->sh.n_layer; l++)
        if (kv->swa[l] <= 0)
            return kv_cache_scoring(kv, l);
    return 0;
}

int kv_cache_static_op(const struct kv_cache *kv)
{
    return kv->static_op;
}

void kv_cache_slots(struct kv_cache *kv, int layer, int g, struct kv_slots *out)
{
    size_t b = base_of(kv, layer, g), hd = (size_t)kv->sh.head_dim;
    out->n_used = used_of(kv, layer, g);
    out->pos = kv->pos + b;
    out->score = kv->score + b;
    out->k = kv->k + b * hd;
    out->v = kv->v + b * hd;
    out->key = kv->key + b;
    out->cap = kv->layer_cap[layer];
}
