/*
 * kv_sync.h — raw access to the KV cache's slots for a backend that keeps some layers elsewhere
 * (the GPU): it pulls those layers' entries into the cache's own storage before a trace or a
 * snapshot reads them, and pushes them back after a snapshot is restored.
 */
#ifndef KF_KV_SYNC_H
#define KF_KV_SYNC_H

#include <stdint.h>

#include "kv_cache.h"

int kv_cache_unbounded(const struct kv_cache *kv);
int kv_cache_layer_cap(const struct kv_cache *kv, int layer);
int kv_cache_layer_used(const struct kv_cache *kv, int layer); /* entries, all KV heads */
/* Would a global layer accumulate scores in the current call? */
int kv_cache_scores_now(const struct kv_cache *kv);
/* keyformer-static: what kv_cache_begin did before the current call — 0 nothing, 1 chose the
 * key tokens (kv_static_freeze), 2 slid the window (kv_static_slide) — for a backend that does
 * the same to the layers it holds. */
int kv_cache_static_op(const struct kv_cache *kv);

struct kv_slots {
    int *n_used;     /* entries held */
    int32_t *pos;    /* [cap] */
    float *score;    /* [cap] */
    float *k, *v;    /* [cap][head_dim] */
    uint8_t *key;    /* [cap] keyformer-static flags */
    int cap;
};

void kv_cache_slots(struct kv_cache *kv, int layer, int g, struct kv_slots *out);

#endif
