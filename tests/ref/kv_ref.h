/*
 * kv_ref.h — an independent, deliberately naive reference of the KV cache eviction policies,
 * written from docs (keyformer.md §1, §3, §4) and the rules in engine/kv_cache.h's header
 * comment, never from engine/kv_cache.c.  Tests drive it side by side with the real cache and
 * compare kept positions, scores and attention outputs after every forward call.
 *
 * What it owns: for every (layer, KV head) and every position 0 .. n_ctx-1, a state (unseen,
 * kept, evicted), an accumulated score in double precision, the keyformer-static key flag and the
 * call that evicted it.  Nothing is stored compactly and everything is recomputed from scratch
 * (the visible set is a scan over all positions), so it is slow but easy to check by eye.
 *
 * It does not hold keys or values: the caller passes, per layer, the attention logits
 * x[h][i][p] = scale * q(pos0 + i, h) . k(p, kv head of h) for every query head h, every row i of
 * the call and every position p < pos0 + n (kept or not), computed in double.  The Gumbel noise
 * is the engine's exported kv_noise_gumbel(), which is the specification of the noise.
 *
 * Usage per forward call of n tokens, mirroring engine/model.c:
 *   kv_ref_begin(r, n); for each layer: kv_ref_visible(...) for the naive attention,
 *   kv_ref_layer(r, l, x); then kv_ref_end(r); then kv_ref_kept(...) to compare.
 */
#ifndef KF_KV_REF_H
#define KF_KV_REF_H

#include <stdint.h>

#include "kv_cache.h"

/* The cache geometry the reference needs (no head_dim, no n_batch: it stores no vectors). */
struct kv_ref_shape {
    int n_layer, n_head, n_head_kv, n_ctx;
    const int *swa; /* [n_layer] sliding window, 0 = global; may be NULL */
};

enum kv_ref_state { KV_REF_UNSEEN, KV_REF_KEPT, KV_REF_EVICTED };

struct kv_ref;

/* NULL on allocation failure.  p->policy etc. are taken as given (no validation). */
struct kv_ref *kv_ref_new(const struct kv_ref_shape *sh, const struct kv_params *p);
void kv_ref_free(struct kv_ref *r);
void kv_ref_reset(struct kv_ref *r);

/* Start a call of n tokens at positions n_past .. n_past+n-1.  STATUS_CONTEXT_FULL (nothing
 * changed) if a position would reach n_ctx, STATUS_INVALID for n < 1.  Applies the
 * keyformer-static freeze when due. */
int kv_ref_begin(struct kv_ref *r, int n);
/* Positions (ascending) that the query at qpos of the current call attends to on (l, g):
 * kept (including this call's tokens), causal, inside the layer's sliding window.  Count. */
int kv_ref_visible(const struct kv_ref *r, int l, int g, int qpos, int *pos);
/* One layer of the current call: accumulate scores from the logits x (layout above, row
 * stride pos0 + n), then evict as the policy says. */
void kv_ref_layer(struct kv_ref *r, int l, const double *x);
void kv_ref_end(struct kv_ref *r);
/* Forget positions >= n_past (they become unseen: a later call may fill them again). */
void kv_ref_truncate(struct kv_ref *r, int n_past);

/* Kept entries of (l, g) sorted by position, with scores and expected KV_TRACE_* flags
 * (either output array may be NULL).  Returns the count. */
int kv_ref_kept(const struct kv_ref *r, int l, int g, int32_t *pos, double *score, uint8_t *flags);
int kv_ref_state(const struct kv_ref *r, int l, int g, int p);
double kv_ref_score(const struct kv_ref *r, int l, int g, int p); /* also of evicted entries */
int kv_ref_evicted_call(const struct kv_ref *r, int l, int g, int p); /* -1 if not evicted */
/*
 * Resolve a near-tie the engine decided the other way: keep `keep` (evicted in the current
 * call) and evict `drop` instead, carrying the static key flag across.  0 on success, -1 if the
 * states do not allow it.
 */
int kv_ref_swap(struct kv_ref *r, int l, int g, int keep, int drop);

int kv_ref_n_past(const struct kv_ref *r);
int kv_ref_calls(const struct kv_ref *r);  /* completed calls (the index of the next one) */
int kv_ref_window(const struct kv_ref *r); /* recent window w (0 when unbounded) */
int kv_ref_bounded(const struct kv_ref *r);
double kv_ref_tau(const struct kv_ref *r, int qpos); /* τ of a keyformer score row at qpos */
int kv_ref_scores(const struct kv_ref *r, int l); /* does layer l accumulate scores now? */

#endif
