/*
 * kv_evict.c — the eviction policies of the KV cache (rules in kv_cache.h): after each layer's
 * attention, fold the query heads' scores into their KV heads and remove entries down to the
 * budget, keeping the storage compact; plus the keyformer-static freeze and truncation.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "kv_cache_impl.h"

/* ---- eviction ----------------------------------------------------------------------------- */

/* Move slot src into slot dst of the same (layer, head) block. */
static void move_slot(struct kv_cache *kv, size_t base, int dst, int src)
{
    size_t hd = (size_t)kv->sh.head_dim, d = base + (size_t)dst, s = base + (size_t)src;
    memcpy(kv->k + d * hd, kv->k + s * hd, hd * sizeof(float));
    memcpy(kv->v + d * hd, kv->v + s * hd, hd * sizeof(float));
    kv->pos[d] = kv->pos[s];
    kv->score[d] = kv->score[s];
    kv->key[d] = kv->key[s];
}

/* Drop the slots flagged in kv->victim[0..n) of (l, g), refilling holes from the end. */
static void compact(struct kv_cache *kv, int l, int g)
{
    int *nu = used_of(kv, l, g), n = *nu, keep = 0;
    size_t base = base_of(kv, l, g);
    for (int s = 0; s < n; s++)
        keep += !kv->victim[s];
    int j = keep; /* survivors at index >= keep move down into the holes below keep */
    for (int s = 0; s < keep; s++) {
        if (!kv->victim[s])
            continue;
        while (kv->victim[j])
            j++;
        move_slot(kv, base, s, j++);
    }
    memset(kv->victim, 0, (size_t)n);
    *nu = keep;
}

/* Eviction order: lowest score first, then oldest (slots x, y: absolute indices). */
static inline int victim_before(const struct kv_cache *kv, size_t x, size_t y)
{
    float sx = kv->score[x], sy = kv->score[y];
    return sx != sy ? sx < sy : kv->pos[x] < kv->pos[y];
}

static int cmp_victim(const void *a, const void *b, void *arg)
{
    const struct sort_ctx *c = arg;
    size_t x = c->base + (size_t)*(const int *)a, y = c->base + (size_t)*(const int *)b;
    return victim_before(c->kv, x, y) ? -1 : victim_before(c->kv, y, x) ? 1 : 0;
}

int kv_cmp_pos(const void *a, const void *b, void *arg)
{
    const struct sort_ctx *c = arg;
    size_t x = c->base + (size_t)*(const int *)a, y = c->base + (size_t)*(const int *)b;
    return (c->kv->pos[x] > c->kv->pos[y]) - (c->kv->pos[x] < c->kv->pos[y]);
}

/*
 * Flag the `need` first victims among the candidate slots cand[0..nc) in cmp's order: a linear
 * scan for the single eviction of a decode step, a sort for a prefill chunk.
 */
static void pick(struct kv_cache *kv, size_t base, int *cand, int nc, int need,
                 int (*cmp)(const void *, const void *, void *))
{
    struct sort_ctx c = { kv, base };
    if (need >= nc) {
        for (int i = 0; i < nc; i++)
            kv->victim[cand[i]] = 1;
        return;
    }
    if (need == 1) { /* every decode step: no call per candidate for the score order */
        int best = 0;
        if (cmp == cmp_victim) {
            for (int i = 1; i < nc; i++)
                if (victim_before(kv, base + (size_t)cand[i], base + (size_t)cand[best]))
                    best = i;
        } else
            for (int i = 1; i < nc; i++)
                if (cmp(&cand[i], &cand[best], &c) < 0)
                    best = i;
        kv->victim[cand[best]] = 1;
        return;
    }
    qsort_r(cand, (size_t)nc, sizeof(int), cmp, &c);
    for (int i = 0; i < need; i++)
        kv->victim[cand[i]] = 1;
}

static void evict_global(struct kv_cache *kv, int l, int g, int p_last)
{
    int n = *used_of(kv, l, g), B = kv->p.budget, nc = 0;
    size_t base = base_of(kv, l, g);
    const int32_t *P = kv->pos + base;
    int *cand = kv->order;
    if (kv->unbounded)
        return;
    switch (kv->p.policy) {
    case KV_POLICY_FULL:
        return;
    case KV_POLICY_KEYFORMER_STATIC:
        if (kv->frozen) { /* only the window slides: drop non-key tokens that left it */
            int any = 0;
            for (int s = 0; s < n; s++)
                if (!kv->key[base + s] && P[s] <= p_last - kv->w)
                    kv->victim[s] = any = 1;
            if (any)
                compact(kv, l, g);
            return;
        }
        /* before the freeze a prompt longer than the budget is cut like keyformer */
        __attribute__((fallthrough));
    case KV_POLICY_H2O:
    case KV_POLICY_KEYFORMER:
        if (n <= B)
            return;
        for (int s = 0; s < n; s++)
            if (P[s] <= p_last - kv->w)
                cand[nc++] = s;
        pick(kv, base, cand, nc, n - B, cmp_victim);
        break;
    case KV_POLICY_WINDOW:
    case KV_POLICY_SINK:
        if (n <= B)
            return;
        for (int s = 0; s < n; s++)
            if (kv->p.policy == KV_POLICY_WINDOW || P[s] >= kv->p.n_sink)
                cand[nc++] = s;
        pick(kv, base, cand, nc, n - B, kv_cmp_pos);
        break;
    default:
        return;
    }
    compact(kv, l, g);
}

void kv_cache_commit_layer(struct kv_cache *kv, int layer, float *const *acc)
{
    int G = kv->sh.n_head_kv, group = kv->sh.n_head / G;
    int p_last = kv->call_pos0 + kv->call_n - 1;
    for (int g = 0; g < G; g++) {
        int n = *used_of(kv, layer, g);
        size_t base = base_of(kv, layer, g);
        if (acc && kv_cache_scoring(kv, layer))
            for (int h = g * group; h < (g + 1) * group; h++) /* fixed order: deterministic */
                for (int s = 0; s < n; s++)
                    kv->score[base + s] += acc[h][s];
        if (kv->swa[layer] > 0) { /* keep what the next query can still see */
            int any = 0;
            for (int s = 0; s < n; s++)
                if (kv->pos[base + s] <= p_last + 1 - kv->swa[layer])
                    kv->victim[s] = any = 1;
            if (any)
                compact(kv, layer, g);
        } else
            evict_global(kv, layer, g, p_last);
    }
}

void kv_cache_end(struct kv_cache *kv)
{
    kv->n_past = kv->call_pos0 + kv->call_n;
}

/*
 * The authors' selection at the end of the prompt (n tokens so far, window w, budget B): key
 * tokens = top (B − w) by score among positions < n − w; keep positions > n − w (w − 1 of them,
 * the slot of the coming token completes the window); position n − w is dropped.
 */
void kv_static_freeze(struct kv_cache *kv)
{
    int n = kv->n_past, w = kv->w, B = kv->p.budget;
    for (int l = 0; l < kv->sh.n_layer; l++) {
        if (kv->swa[l] > 0)
            continue;
        for (int g = 0; g < kv->sh.n_head_kv; g++) {
            int nu = *used_of(kv, l, g), nc = 0;
            size_t base = base_of(kv, l, g);
            int *cand = kv->order;
            for (int s = 0; s < nu; s++) {
                int p = kv->pos[base + s];
                if (p < n - w)
                    cand[nc++] = s;
                else if (p == n - w)
                    kv->victim[s] = 1;
            }
            struct sort_ctx c = { kv, base };
            qsort_r(cand, (size_t)nc, sizeof(int), cmp_victim, &c); /* lowest first */
            int n_key = B - w;
            for (int i = 0; i < nc; i++) {
                if (i < nc - n_key)
                    kv->victim[cand[i]] = 1;
                else
                    kv->key[base + cand[i]] = 1;
            }
            compact(kv, l, g);
        }
    }
    kv->frozen = 1;
}

void kv_static_slide(struct kv_cache *kv, int pos)
{
    for (int l = 0; l < kv->sh.n_layer; l++) {
        if (kv->swa[l] > 0)
            continue;
        for (int g = 0; g < kv->sh.n_head_kv; g++) {
            int nu = *used_of(kv, l, g), any = 0;
            size_t base = base_of(kv, l, g);
            for (int s = 0; s < nu; s++)
                if (!kv->key[base + s] && kv->pos[base + s] <= pos - kv->w)
                    kv->victim[s] = any = 1;
            if (any)
                compact(kv, l, g);
        }
    }
}

void kv_cache_truncate(struct kv_cache *kv, int n_past)
{
    if (n_past < 0 || n_past >= kv->n_past)
        return;
    for (int l = 0; l < kv->sh.n_layer; l++)
        for (int g = 0; g < kv->sh.n_head_kv; g++) {
            int nu = *used_of(kv, l, g), any = 0;
            size_t base = base_of(kv, l, g);
            for (int s = 0; s < nu; s++)
                if (kv->pos[base + s] >= n_past)
                    kv->victim[s] = any = 1;
            if (any)
                compact(kv, l, g);
        }
    kv->n_past = n_past;
    if (n_past == 0)
        kv_cache_reset(kv);
}
