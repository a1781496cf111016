/*
 * kv_cache_impl.h — the KV cache's private state, shared by kv_cache.c (storage, attention,
 * trace), kv_evict.c (eviction policies) and kv_state.c (snapshots).  Nothing else includes it.
 *
 * Invariant between calls: for every (layer, KV head), slots [0, n_used) hold distinct positions
 * < n_past, n_used <= budget on global layers (when the policy has one), and on sliding-window
 * layers every held position is still visible to the next query.
 */
#ifndef KF_KV_CACHE_IMPL_H
#define KF_KV_CACHE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kv_cache.h"

struct kv_cache {
    struct kv_shape sh;
    struct kv_params p;
    int *swa;          /* [n_layer] copy of the sliding windows */
    int *layer_cap;    /* [n_layer] slots per KV head */
    size_t *layer_off; /* [n_layer] slot offset of (layer, head 0) */
    int max_cap;
    int w;             /* recent window */
    size_t n_slots;    /* total slots over all layers and heads */
    float *k, *v;      /* [slot][head_dim] */
    int32_t *pos;      /* [slot] */
    float *score;      /* [slot] */
    uint8_t *key;      /* [slot] keyformer-static: frozen key token */
    int *n_used;       /* [n_layer][n_head_kv] */
    uint8_t *victim;   /* [max_cap] scratch */
    int *order;        /* [max_cap] scratch */
    int n_past;
    int call_pos0, call_n;
    int frozen;        /* keyformer-static: key tokens chosen */
    int static_op;     /* keyformer-static, this call: 0 nothing, 1 froze, 2 slid (kv_sync.h) */
    int unbounded;     /* budget >= n_ctx: nothing is ever evicted, nothing needs scores */
    float *alibi;      /* [n_head] ALiBi slopes, or NULL */
};

/* First slot of (layer, KV head g). */
static inline size_t base_of(const struct kv_cache *kv, int l, int g)
{
    return kv->layer_off[l] + (size_t)g * (size_t)kv->layer_cap[l];
}

static inline int *used_of(struct kv_cache *kv, int l, int g)
{
    return &kv->n_used[(size_t)l * kv->sh.n_head_kv + (size_t)g];
}

/* Orders of slot indices within one (layer, head) block, for qsort_r. */
struct sort_ctx {
    const struct kv_cache *kv;
    size_t base;
};

/* qsort_r order of slot indices by position (kv_evict.c). */
int kv_cmp_pos(const void *a, const void *b, void *arg);
/* keyformer-static: choose the key tokens at the first decode step (kv_evict.c). */
void kv_static_freeze(struct kv_cache *kv);
/* keyformer-static, frozen: before the token at pos is stored, drop what leaves the window. */
void kv_static_slide(struct kv_cache *kv, int pos);

#endif
