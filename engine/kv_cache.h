/*
 * kv_cache.h — the KV cache: a physically bounded store of keys and values per layer and KV head,
 * the attention over it, and the eviction policies (Keyformer and its baselines).
 *
 * Storage.  Each (layer, KV head) has `cap` slots; a slot holds one token's post-RoPE key, its
 * value, its original absolute position and its accumulated score.  Slots are not ordered: a
 * token is appended in the first free slot, an evicted slot is refilled by moving the last used
 * slot into it (so memory stays compact), and attention masks by position, never by slot index.
 * An evicted token never comes back.  Keys are never re-rotated.
 *
 * Budget.  With a budget B (entries per layer and KV head), the cache holds at most B entries
 * between forward calls; during one call of n tokens it may hold B + n, so cap = B + n_batch
 * (documented headroom of one batch).  `full` has no budget: cap = n_ctx.
 *
 * Gemma 3 rule.  Sliding-window layers keep their own window (n_swa entries, the model's mask):
 * they evict the oldest entry once it falls out of the window, whatever the policy; the budget
 * and the policy govern the global layers (all layers of models without sliding windows).
 *
 * Policies (keyformer.md §1, §3):
 *   full              no eviction; a clear STATUS_CONTEXT_FULL when n_ctx is reached.
 *   window            keep the newest B.
 *   sink              StreamingLLM: the first n_sink (4) positions plus the newest B − n_sink.
 *                     Positions are renumbered within the cache only where the scheme allows
 *                     it (see Positions below).
 *   h2o               accumulated softmax probability; keep the w most recent plus the
 *                     highest-scored others; the token leaving the window competes.
 *   keyformer         as h2o, but the score is the softmax of (logit + Gumbel noise) / τ, with τ
 *                     a function of the query's position (see τ below).
 *   keyformer-static  the authors' released behaviour: scored like keyformer with τ = tau_init
 *                     (their prompt score) until the first decode step (a one-token call at a
 *                     position > 0: their "query length 1"), which freezes the key tokens
 *                     = top (B − w) of the positions
 *                     < n − w (n = tokens so far), keeps positions > n − w and drops position
 *                     n − w (their off-by-one); afterwards only the recent window slides,
 *                     and a decode step attends over exactly B entries (the token leaving the
 *                     window is dropped before the new one is stored).  Later chat turns are
 *                     never key tokens: they are dropped once they leave the window.
 * The recent window w = floor(recent · B) counts the newest positions, the current token
 * included.  For GQA, a KV head's score is the sum over its query heads.
 *
 * τ (keyformer).  The authors score the prompt at τ = tau_init and raise τ by
 * (tau_end − tau_init) / max_new_tokens at each decode step (keyformer.md §1.3): τ grows with the
 * number of steps taken since the cache was cut down to its budget, "as more tokens get
 * discarded".  Here eviction happens wherever the budget is exceeded, in a prompt chunk as in a
 * decode step (a chat), so the step count is the number of tokens that arrived at a full cache:
 *     t(qpos) = clamp(qpos − B + 1, 0, tau_steps),
 *     τ(qpos) = tau_init + t · (tau_end − tau_init) / tau_steps        (kv_cache_tau)
 * per query row.  Rows that see the whole past (qpos < B) use tau_init, the token at position B
 * (the first one to force an eviction) uses one step, like the authors' first decode step, and
 * τ stays at tau_end after tau_steps such tokens.  τ thus depends on the position only, not on
 * how the tokens were split into calls or on chat turns: a prompt fed in chunks, a
 * teacher-forced text fed C tokens at a time (kfchat eval) and token-by-token decoding give the
 * same τ, truncation and snapshots need no τ state, and another backend computes the same τ
 * from the same four numbers.  (The authors' code restarts τ at every multi-token call, which
 * chunked prefill would turn into τ = tau_init for ever, keyformer.md §1.11.)
 *
 * Positions (keyformer.md §1.8).  Every entry keeps its original absolute position and every new
 * token takes its true absolute position (n_past + t), as in the authors' code:
 *   rotary (llama, qwen2, gemma3, gptj's partial rotary)  keys are cached after rotation at
 *       their original position and never re-rotated;
 *   learned absolute positions (gpt2, Cerebras-GPT)  added to the input embedding, so baked
 *       into every layer's keys and values: fixed once computed;
 *   ALiBi (mpt)  the bias slope_h·(p_key − p_query) is computed here from the stored original
 *       positions, so kept tokens keep their original distance to the query.
 * sink (StreamingLLM) renumbers positions within the cache where the scheme allows it: with
 * ALiBi the distance is counted over the cached entries (the evicted gap between the sinks and
 * the window does not count: a contiguous bias, as StreamingLLM does for MPT).  Rotary keys
 * cannot be re-rotated here and learned positions are baked in at the input, so for those
 * schemes sink keeps original positions (and a gpt2 sequence can never outgrow its learned
 * positions: the context is capped at their count).
 *
 * Noise.  G(seed, layer, query head, query pos, key pos) is a standard Gumbel variate from a
 * counter-based hash (kv_noise_gumbel), the same on every backend, so runs are reproducible.
 *
 * Threading: kv_cache_attend and kv_cache_attend_heads may run concurrently for different query
 * heads of one layer (each with its own score accumulator and scratch); everything else is called
 * from one thread.
 */
#ifndef KF_KV_CACHE_H
#define KF_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

enum kv_policy {
    KV_POLICY_FULL,
    KV_POLICY_WINDOW,
    KV_POLICY_SINK,
    KV_POLICY_H2O,
    KV_POLICY_KEYFORMER,
    KV_POLICY_KEYFORMER_STATIC,
    KV_POLICY_COUNT
};

/*
 * How keys and values are stored (--kv-type).  f16: f16 on the GPU, f32 on the CPU.  q8_0:
 * blocks of 32 elements as 8-bit integers with an f16 scale (ggml's Q8_0, rounded by its
 * reference quantizer), about half the bytes of f16 on the GPU; the CPU keeps the rounded values
 * in f32, so that a layer computes the same function wherever it runs.  Needs a head size that
 * is a multiple of 32.
 */
enum kv_type { KV_TYPE_F16, KV_TYPE_Q8_0, KV_TYPE_COUNT };

struct kv_params {
    enum kv_policy policy;
    int budget;        /* B: entries kept per layer and KV head (ignored by full) */
    float recent;      /* window share of B (default 0.3) */
    int n_sink;        /* sink policy (default 4) */
    float tau_init;    /* default 1 */
    float tau_end;     /* default 2 */
    int tau_steps;     /* default 128: tokens past the budget over which τ rises */
    uint64_t seed;     /* Gumbel noise seed */
    int store_f16;     /* keep keys and values rounded to f16, as the GPU stores them (tests) */
    enum kv_type type; /* default f16 */
};

/* Shape of the cache, from the model. */
struct kv_shape {
    int n_layer, n_head, n_head_kv, head_dim;
    int n_ctx;         /* positions a sequence may reach */
    int n_batch;       /* max tokens per forward call */
    const int *swa;    /* [n_layer]: sliding window of the layer, 0 = global; may be NULL */
    float scale;       /* attention logit scale */
    float alibi_max_bias; /* ALiBi (mpt): bias maximum, 0 = no ALiBi */
};

struct kv_cache;

/* Defaults: keyformer, recent 0.3, 4 sinks, τ 1 → 2 over 128 steps, seed 0; budget 0 (full). */
struct kv_params kv_params_default(void);
const char *kv_policy_name(enum kv_policy p);
int kv_policy_from_name(const char *name); /* -1 if unknown */
const char *kv_policy_names(void);         /* "full, window, ..." for messages */
const char *kv_type_name(enum kv_type t);
int kv_type_from_name(const char *name);   /* -1 if unknown ("f16", "q8_0") */
/* Round n floats (n a multiple of 32) in place to the values a q8_0 cache stores. */
void kv_round_q8_0(float *x, int n);
/* Bytes of one key (or value) row of head_dim values as a GPU stores it (struct kv_layer in
 * engine/cuda/cuda_internal.h): f16, or q8_0 int8 values then f16 scales, padded to 8 bytes. */
size_t kv_type_row_bytes(enum kv_type t, int head_dim);
/* Whether a --kv-budget value is fixed in tokens or memory ("2048", "256MiB"), not a share of
 * the context ("50%"): then the cache's size does not depend on the context. */
int kv_budget_fixed(const char *s);
/*
 * Parse a --kv-budget value: "2048" (tokens), "50%" (of n_ctx) or "256MiB"/"1GiB"/"512KiB"
 * (bytes of K+V over all layers, bytes_per_token given) into tokens.  STATUS_INVALID with a
 * one-line message naming the valid range on nonsense (negative, zero, > n_ctx, garbage).
 */
int kv_budget_parse(const char *s, int n_ctx, size_t bytes_per_token, int *out, char *err,
                    size_t errlen);
/*
 * Check params against a context size: budget in [max(2, w + 1), n_ctx] for h2o/keyformer (which
 * also need w >= 1), [n_sink + 1, n_ctx] for sink, [1, n_ctx] for window; a budget of 0 or
 * >= n_ctx means no eviction ever happens (the cache behaves as full).
 */
int kv_params_check(const struct kv_params *p, int n_ctx, char *err, size_t errlen);

int kv_cache_new(struct kv_cache **out, const struct kv_shape *shape, const struct kv_params *p,
                 char *err, size_t errlen);
void kv_cache_free(struct kv_cache *kv);
void kv_cache_reset(struct kv_cache *kv);
const struct kv_params *kv_cache_params(const struct kv_cache *kv);
/* ALiBi slope of each query head ([n_head]), or NULL without ALiBi. */
const float *kv_cache_alibi_slopes(const struct kv_cache *kv);

/* --- one forward call ------------------------------------------------------------------------ */
/*
 * Begin a call that adds n tokens at positions pos0 .. pos0+n-1.  Returns STATUS_CONTEXT_FULL if
 * a position would reach n_ctx (or, for full, a slot would be missing).
 */
int kv_cache_begin(struct kv_cache *kv, int pos0, int n);
/* Store token t's key/value (head_dim floats each) for (layer, KV head g). */
void kv_cache_store(struct kv_cache *kv, int layer, int g, int pos, const float *k, const float *v);
/*
 * Attention of query head h at position qpos over the visible entries of its KV head:
 * out (head_dim) = Σ softmax(scale·q·k_j + alibi_h·(p_j − qpos))_j v_j, where p_j is entry j's
 * original position (or, for sink, its in-cache position; see Positions above).  att: scratch of
 * kv_cache_attend_scratch(kv, 1) floats.
 * acc: the head's score accumulator (kv_cache_cap() floats) or NULL; receives this row's score
 * contribution per slot if the policy scores.  The caller zeroes it before the layer; only its
 * first kv_cache_n_used(layer, g) floats (counted after the call's stores) are ever read or
 * written, so zeroing those is enough (the whole capacity is B + n_batch floats).
 */
void kv_cache_attend(const struct kv_cache *kv, int layer, int h, const float *q, int qpos,
                     float *out, float *att, float *acc);
/*
 * kv_cache_attend for query heads h0 .. h0+nh−1, all of one KV head (q and out: nh rows at the
 * given strides; acc: nh accumulators, or NULL), with the same results bit for bit; the cache's
 * keys and values are read once for all of them.  scratch: kv_cache_attend_scratch(kv, nh).
 */
void kv_cache_attend_heads(const struct kv_cache *kv, int layer, int h0, int nh, const float *q,
                           size_t q_stride, int qpos, float *out, size_t out_stride,
                           float *scratch, float *const *acc);
size_t kv_cache_attend_scratch(const struct kv_cache *kv, int nh);
/*
 * τ of the keyformer score of the query row at qpos (the rule above); tau_init for
 * keyformer-static and for an unbounded cache, unused by the other policies.
 */
float kv_cache_tau(const struct kv_cache *kv, int qpos);
/* Does the current call need score accumulators? */
int kv_cache_scoring(const struct kv_cache *kv, int layer);
/*
 * After a layer's attention: fold the per-query-head accumulators acc[h] (n_head of them, may be
 * NULL when not scoring) into the KV heads' scores and evict down to the budget.
 */
void kv_cache_commit_layer(struct kv_cache *kv, int layer, float *const *acc);
/* End the call (advances n_past). */
void kv_cache_end(struct kv_cache *kv);
/* Forget positions >= n_past (only exact when nothing was evicted past it). */
void kv_cache_truncate(struct kv_cache *kv, int n_past);

/* --- sizes and trace ------------------------------------------------------------------------- */
int kv_cache_cap(const struct kv_cache *kv);          /* slots per (layer, KV head) */
int kv_cache_n_past(const struct kv_cache *kv);       /* positions seen */
size_t kv_cache_bytes_alloc(const struct kv_cache *kv);
size_t kv_cache_bytes_used(const struct kv_cache *kv); /* entries held × entry bytes */
size_t kv_cache_bytes_full(const struct kv_cache *kv); /* what a full cache would hold now */
int kv_cache_recent_window(const struct kv_cache *kv); /* w */
/*
 * Trace of (layer, KV head g) after the last call: up to max entries sorted by position:
 * positions, scores (0 when the policy has none) and flags (KV_TRACE_*).  Returns the count.
 */
#define KV_TRACE_RECENT 1
#define KV_TRACE_SINK 2
#define KV_TRACE_KEY 4
int kv_cache_trace(const struct kv_cache *kv, int layer, int g, int32_t *pos, float *score,
                   uint8_t *flags, int max);
int kv_cache_n_used(const struct kv_cache *kv, int layer, int g);

/*
 * Snapshot for exact resume: everything needed to continue bit for bit (entries, positions,
 * scores, key flags, the static freeze).  load returns STATUS_FORMAT for a damaged or foreign
 * buffer and STATUS_INVALID when it was taken under another policy/budget/seed (the caller then
 * re-processes the transcript); on any error the cache is left as it was.
 */
size_t kv_cache_state_size(const struct kv_cache *kv);
void kv_cache_state_save(const struct kv_cache *kv, void *buf);
int kv_cache_state_load(struct kv_cache *kv, const void *buf, size_t len);

/*
 * The Gumbel noise of the scoring function (kv_noise.c; exposed for tests and the CUDA backend):
 * one value, and a row of n key positions (SIMD where available, same bits as the scalar row).
 */
float kv_noise_gumbel(uint64_t seed, int layer, int qhead, int qpos, int kpos);
void kv_noise_gumbel_row(uint64_t seed, int layer, int qhead, int qpos, const int32_t *kpos, int n,
                         float *out);
void kv_noise_gumbel_row_scalar(uint64_t seed, int layer, int qhead, int qpos,
                                const int32_t *kpos, int n, float *out);
/* The row through one instruction set (0 scalar, 1 AVX2 + FMA, 2 AVX-512; tests): -1 when this
 * CPU lacks it. */
int kv_noise_gumbel_row_isa(int isa, uint64_t seed, int layer, int qhead, int qpos,
                            const int32_t *kpos, int n, float *out);

#endif
