/*
 * kv_cache.c — bounded KV storage, attention over it, and the eviction policies described in
 * kv_cache.h (which states the rules; this file says how they are carried out).
 */
#include "config.h"
#include "kv_cache.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "ops.h"
#include "quant.h"
#include "quant_ref.h"
#include "status.h"

static const char *const policy_names[KV_POLICY_COUNT] = {
    [KV_POLICY_FULL] = "full",
    [KV_POLICY_WINDOW] = "window",
    [KV_POLICY_SINK] = "sink",
    [KV_POLICY_H2O] = "h2o",
    [KV_POLICY_KEYFORMER] = "keyformer",
    [KV_POLICY_KEYFORMER_STATIC] = "keyformer-static",
};

#include "kv_cache_impl.h"


struct kv_params kv_params_default(void)
{
    struct kv_params p = {
        .policy = KV_POLICY_KEYFORMER,
        .budget = 0,
        .recent = 0.3f,
        .n_sink = 4,
        .tau_init = 1.0f,
        .tau_end = 2.0f,
        .tau_steps = 128,
        .seed = 0,
    };
    return p;
}

const char *kv_policy_name(enum kv_policy p)
{
    return (unsigned)p < KV_POLICY_COUNT ? policy_names[p] : "?";
}

int kv_policy_from_name(const char *name)
{
    for (int i = 0; i < KV_POLICY_COUNT; i++)
        if (strcmp(name, policy_names[i]) == 0)
            return i;
    return -1;
}

const char *kv_policy_names(void)
{
    return "keyformer, keyformer-static, h2o, sink, window, full";
}

const char *kv_type_name(enum kv_type t)
{
    return t == KV_TYPE_Q8_0 ? "q8_0" : t == KV_TYPE_F16 ? "f16" : "?";
}

int kv_type_from_name(const char *name)
{
    return !strcmp(name, "f16") ? KV_TYPE_F16 : !strcmp(name, "q8_0") ? KV_TYPE_Q8_0 : -1;
}

size_t kv_type_row_bytes(enum kv_type t, int head_dim)
{
    return t == KV_TYPE_Q8_0 ? (size_t)(head_dim + head_dim / 16 + 7) / 8 * 8
                             : 2 * (size_t)head_dim;
}

void kv_round_q8_0(float *x, int n)
{
    struct blk_q8_0 b;
    for (int i = 0; i + 32 <= n; i += 32) {
        quantize_q8_0_ref(x + i, &b, 32);
        dequant_q8_0_ref(&b, x + i, 32);
    }
}

static int window_of(const struct kv_params *p)
{
    if (p->policy == KV_POLICY_WINDOW)
        return p->budget;
    if (p->policy == KV_POLICY_SINK)
        return p->budget - p->n_sink;
    /* floor, as the authors compute w = floor(k * recent / 100) */
    return (int)floorf(p->recent * (float)p->budget + 1e-4f);
}

int kv_params_check(const struct kv_params *p, int n_ctx, char *err, size_t errlen)
{
    if ((unsigned)p->policy >= KV_POLICY_COUNT)
        return status_set(err, errlen, STATUS_INVALID, "unknown KV policy (valid: %s)",
                          kv_policy_names());
    if ((unsigned)p->type >= KV_TYPE_COUNT)
        return status_set(err, errlen, STATUS_INVALID, "unknown KV type (valid: f16, q8_0)");
    if (!(p->recent >= 0.0f && p->recent <= 1.0f))
        return status_set(err, errlen, STATUS_INVALID,
                          "--kv-recent must be a share of the budget in 0..100%%");
    if ((p->policy == KV_POLICY_KEYFORMER || p->policy == KV_POLICY_KEYFORMER_STATIC) &&
        (!(p->tau_init > 0.0f && p->tau_end > 0.0f && p->tau_init <= 100 && p->tau_end <= 100) ||
         p->tau_steps < 1))
        return status_set(err, errlen, STATUS_INVALID,
                          "--tau-init/--tau-end must be in (0, 100] and --tau-steps >= 1");
    if (p->policy == KV_POLICY_FULL || p->budget == 0 || p->budget >= n_ctx)
        return STATUS_OK; /* budget 0 or >= the context: no eviction can ever happen */
    int lo = p->policy == KV_POLICY_SINK ? p->n_sink + 1 : 1;
    if (p->policy == KV_POLICY_H2O || p->policy == KV_POLICY_KEYFORMER ||
        p->policy == KV_POLICY_KEYFORMER_STATIC) {
        /*
         * the window must hold at least the current token (w >= 1: with w = 0 every new token
         * would be evicted right after its own step) and leave one slot for a key token
         */
        if (p->recent <= 0.0f)
            return status_set(err, errlen, STATUS_INVALID,
                              "--kv-recent must be in (0, 100%%) of the budget for %s (the "
                              "window holds the current token)", kv_policy_name(p->policy));
        lo = 2;
        while (lo <= n_ctx && ((int)floorf(p->recent * (float)lo + 1e-4f) < 1 ||
                               (int)floorf(p->recent * (float)lo + 1e-4f) + 1 > lo))
            lo++;
        if (lo > n_ctx) /* a window of (nearly) the whole budget: no budget leaves a key slot */
            return status_set(err, errlen, STATUS_INVALID,
                              "--kv-recent %.0f%% leaves no slot for key tokens in a budget of "
                              "up to %d: %s needs a recent window in (0, 100%%) of the budget",
                              p->recent * 100.0, n_ctx, kv_policy_name(p->policy));
    }
    const char *why = p->policy == KV_POLICY_SINK ? "the sinks plus at least one recent token"
                      : p->policy == KV_POLICY_WINDOW
                          ? "at least one token"
                          : "the recent window plus at least one key token";
    if (p->budget < lo || p->budget > n_ctx)
        return status_set(err, errlen, STATUS_INVALID,
                          "KV budget of %d tokens is out of range: %s needs %d..%d (%s, at most "
                          "the context)", p->budget, kv_policy_name(p->policy), lo, n_ctx, why);
    return STATUS_OK;
}

int kv_budget_fixed(const char *s)
{
    return s && !strchr(s, '%');
}

int kv_budget_parse(const char *s, int n_ctx, size_t bytes_per_token, int *out, char *err,
                    size_t errlen)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || end == s || errno || !(v > 0) || v > 1e15)
        return status_set(err, errlen, STATUS_INVALID,
                          "--kv-budget '%s' is not a positive size: give tokens (1..%d), a share "
                          "of the context (50%%) or memory (256MiB)", s ? s : "", n_ctx);
    double tokens;
    if (strcmp(end, "%") == 0) {
        if (v > 100)
            return status_set(err, errlen, STATUS_INVALID,
                              "--kv-budget %s: a share must be in (0, 100%%] (1..%d tokens)", s,
                              n_ctx);
        tokens = floor(v / 100.0 * n_ctx);
    } else if (*end == 0) {
        if (v != floor(v))
            return status_set(err, errlen, STATUS_INVALID,
                              "--kv-budget %s: a token count must be an integer in 1..%d", s,
                              n_ctx);
        tokens = v;
    } else {
        static const struct { const char *suf; double mul; } units[] = {
            { "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 },
            { "KB", 1e3 }, { "MB", 1e6 }, { "GB", 1e9 }, { "B", 1.0 },
        };
        double mul = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(end, units[i].suf) == 0)
                mul = units[i].mul;
        if (mul == 0 || bytes_per_token == 0)
            return status_set(err, errlen, STATUS_INVALID,
                              "--kv-budget %s: unknown unit '%s' (use %%, KiB, MiB or GiB)", s, end);
        tokens = floor(v * mul / (double)bytes_per_token);
    }
    if (tokens < 1 || tokens > n_ctx)
        return status_set(err, errlen, STATUS_INVALID,
                          "--kv-budget %s is %.0f tokens; valid range 1..%d (the context size)", s,
                          tokens, n_ctx);
    *out = (int)tokens;
    return STATUS_OK;
}

/* ---- construction ------------------------------------------------------------------------- */

/*
 * ALiBi slopes as ggml computes them (engine-reference §3.6): n2 = 2^floor(log2 n_head),
 * m0 = 2^(−max/n2), m1 = 2^(−max/2/n2); head h < n2 gets m0^(h+1), the others m1^(2(h−n2)+1).
 * For a power-of-two head count this is HF MPT's 2^(−(h+1)·max/n_head).
 */
static int alibi_slopes(struct kv_cache *kv)
{
    int nh = kv->sh.n_head;
    float mb = kv->sh.alibi_max_bias;
    kv->alibi = malloc((size_t)nh * sizeof(float));
    if (!kv->alibi)
        return STATUS_NOMEM;
    int n2 = 1;
    while (n2 * 2 <= nh)
        n2 *= 2;
    float m0 = powf(2.0f, -mb / (float)n2), m1 = powf(2.0f, -(mb / 2.0f) / (float)n2);
    for (int h = 0; h < nh; h++)
        kv->alibi[h] = h < n2 ? powf(m0, (float)(h + 1)) : powf(m1, (float)(2 * (h - n2) + 1));
    return STATUS_OK;
}

static int bounded(const struct kv_cache *kv)
{
    return !kv->unbounded;
}

int kv_cache_new(struct kv_cache **out, const struct kv_shape *sh, const struct kv_params *p,
                 char *err, size_t errlen)
{
    *out = NULL;
    int st = kv_params_check(p, sh->n_ctx, err, errlen);
    if (st)
        return st;
    if (p->type == KV_TYPE_Q8_0 && sh->head_dim % 32)
        return status_set(err, errlen, STATUS_INVALID,
                          "--kv-type q8_0 needs a head size that is a multiple of 32 (this "
                          "model's: %d); use f16",
                          sh->head_dim);
    struct kv_cache *kv = calloc(1, sizeof(*kv));
    if (!kv)
        return status_set(err, errlen, STATUS_NOMEM, "out of memory");
    kv->sh = *sh;
    kv->p = *p;
    if (p->policy == KV_POLICY_FULL || p->budget <= 0 || p->budget >= sh->n_ctx) {
        kv->unbounded = 1;
        kv->p.budget = sh->n_ctx;
    }
    kv->w = kv->unbounded ? 0 : window_of(&kv->p);
    int L = sh->n_layer, G = sh->n_head_kv;
    kv->swa = calloc((size_t)L, sizeof(int));
    kv->layer_cap = calloc((size_t)L, sizeof(int));
    kv->layer_off = calloc((size_t)L, sizeof(size_t));
    kv->n_used = calloc((size_t)L * G, sizeof(int));
    if (!kv->swa || !kv->layer_cap || !kv->layer_off || !kv->n_used)
        goto nomem;
    int global_cap = bounded(kv) ? p->budget + sh->n_batch : sh->n_ctx;
    if (global_cap > sh->n_ctx)
        global_cap = sh->n_ctx;
    for (int l = 0; l < L; l++) {
        kv->swa[l] = sh->swa ? sh->swa[l] : 0;
        int c = global_cap;
        if (kv->swa[l] > 0 && kv->swa[l] + sh->n_batch < c)
            c = kv->swa[l] + sh->n_batch;
        kv->layer_cap[l] = c;
        kv->layer_off[l] = kv->n_slots;
        kv->n_slots += (size_t)c * G;
        if (c > kv->max_cap)
            kv->max_cap = c;
    }
    size_t hd = (size_t)sh->head_dim;
    kv->k = malloc(kv->n_slots * hd * sizeof(float));
    kv->v = malloc(kv->n_slots * hd * sizeof(float));
    kv->pos = calloc(kv->n_slots, sizeof(int32_t));
    kv->score = calloc(kv->n_slots, sizeof(float));
    kv->key = calloc(kv->n_slots, 1);
    kv->victim = calloc((size_t)kv->max_cap, 1);
    kv->order = calloc((size_t)kv->max_cap, sizeof(int));
    if (!kv->k || !kv->v || !kv->pos || !kv->score || !kv->key || !kv->victim || !kv->order) {
        size_t bytes = kv->n_slots * hd * 2 * sizeof(float);
        kv_cache_free(kv);
        return status_set(err, errlen, STATUS_NOMEM,
                          "cannot allocate %zu bytes for the KV cache (use a smaller -c or "
                          "--kv-budget)", bytes);
    }
    if (sh->alibi_max_bias > 0.0f && alibi_slopes(kv) != STATUS_OK)
        goto nomem;
    *out = kv;
    return STATUS_OK;
nomem:
    kv_cache_free(kv);
    return status_set(err, errlen, STATUS_NOMEM, "out of memory");
}

void kv_cache_free(struct kv_cache *kv)
{
    if (!kv)
        return;
    free(kv->swa);
    free(kv->layer_cap);
    free(kv->layer_off);
    free(kv->n_used);
    free(kv->k);
    free(kv->v);
    free(kv->pos);
    free(kv->score);
    free(kv->key);
    free(kv->victim);
    free(kv->order);
    free(kv->alibi);
    free(kv);
}

void kv_cache_reset(struct kv_cache *kv)
{
    memset(kv->n_used, 0, (size_t)kv->sh.n_layer * kv->sh.n_head_kv * sizeof(int));
    kv->n_past = 0;
    kv->frozen = 0;
}

const struct kv_params *kv_cache_params(const struct kv_cache *kv)
{
    return &kv->p;
}

const float *kv_cache_alibi_slopes(const struct kv_cache *kv)
{
    return kv->alibi;
}

int kv_cache_n_used(const struct kv_cache *kv, int layer, int g)
{
    return kv->n_used[(size_t)layer * kv->sh.n_head_kv + (size_t)g];
}

/* ---- one call ----------------------------------------------------------------------------- */

int kv_cache_begin(struct kv_cache *kv, int pos0, int n)
{
    if (n < 1 || n > kv->sh.n_batch || pos0 != kv->n_past)
        return STATUS_INVALID;
    if (pos0 + n > kv->sh.n_ctx)
        return STATUS_CONTEXT_FULL;
    /*
     * keyformer-static, as the authors detect it: a one-token call after the first position is
     * a decode step; the first one freezes the key tokens (τ needs no state: kv_cache_tau)
     */
    kv->static_op = 0;
    if (n == 1 && pos0 > 0 && kv->p.policy == KV_POLICY_KEYFORMER_STATIC && !kv->unbounded) {
        kv->static_op = kv->frozen ? 2 : 1;
        if (!kv->frozen)
            kv_static_freeze(kv);
        else /* the authors' step attends over exactly B: the leaving token goes first */
            kv_static_slide(kv, pos0);
    }
    kv->call_pos0 = pos0;
    kv->call_n = n;
    return STATUS_OK;
}

void kv_cache_store(struct kv_cache *kv, int layer, int g, int pos, const float *k, const float *v)
{
    int *nu = used_of(kv, layer, g);
    size_t s = base_of(kv, layer, g) + (size_t)*nu;
    size_t hd = (size_t)kv->sh.head_dim;
    memcpy(kv->k + s * hd, k, hd * sizeof(float));
    memcpy(kv->v + s * hd, v, hd * sizeof(float));
    if (kv->p.type == KV_TYPE_Q8_0) {
        kv_round_q8_0(kv->k + s * hd, (int)hd);
        kv_round_q8_0(kv->v + s * hd, (int)hd);
    } else if (kv->p.store_f16)
        for (size_t i = 0; i < hd; i++) {
            kv->k[s * hd + i] = fp16_to_fp32(fp32_to_fp16(kv->k[s * hd + i]));
            kv->v[s * hd + i] = fp16_to_fp32(fp32_to_fp16(kv->v[s * hd + i]));
        }
    kv->pos[s] = pos;
    kv->score[s] = 0.0f;
    kv->key[s] = 0;
    (*nu)++;
}

float kv_cache_tau(const struct kv_cache *kv, int qpos)
{
    const struct kv_params *p = &kv->p;
    if (kv->unbounded || p->policy != KV_POLICY_KEYFORMER)
        return p->tau_init;
    int t = qpos - p->budget + 1; /* tokens up to qpos that arrived at a full cache */
    if (t <= 0)
        return p->tau_init;
    if (t > p->tau_steps)
        t = p->tau_steps;
    return p->tau_init + (float)t * (p->tau_end - p->tau_init) / (float)p->tau_steps;
}

int kv_cache_scoring(const struct kv_cache *kv, int layer)
{
    if (kv->swa[layer] > 0 || kv->unbounded)
        return 0;
    switch (kv->p.policy) {
    case KV_POLICY_H2O:
    case KV_POLICY_KEYFORMER:
        return 1;
    case KV_POLICY_KEYFORMER_STATIC:
        return !kv->frozen; /* after the freeze, scores cannot change the kept set */
    default:
        return 0;
    }
}

/*
 * ALiBi: att[s] += slope_h · (p_s − qpos) from the entries' original positions.  Under sink
 * the distance is the in-cache one: the sinks (positions < n_sink) are held together with a
 * contiguous window starting at `lo`; the lo − n_sink evicted positions between them do not count.
 */
static void alibi_add(const struct kv_cache *kv, const int32_t *P, int n, int h, int qpos,
                      float *att)
{
    float slope = kv->alibi[h];
    int gap = 0;
    if (kv->p.policy == KV_POLICY_SINK && !kv->unbounded) {
        int lo = INT32_MAX;
        for (int s = 0; s < n; s++)
            if (P[s] >= kv->p.n_sink && P[s] < lo)
                lo = P[s];
        if (lo != INT32_MAX && lo > kv->p.n_sink)
            gap = lo - kv->p.n_sink;
    }
    for (int s = 0; s < n; s++) {
        int d = qpos - P[s];
        if (P[s] < kv->p.n_sink)
            d -= gap;
        att[s] += slope * (float)(-d); /* masked entries stay -inf */
    }
}

/* Rows per tile of keys (values) read once for every query head of a call: a multiple of
 * ops_dot_rows's 16-row step and even (ops_wsum_step), so the results do not depend on it. */
#define KV_TILE 64

size_t kv_cache_attend_scratch(const struct kv_cache *kv, int nh)
{
    return (size_t)(nh + 1) * (size_t)kv->max_cap +
           (size_t)nh * ops_wsum_state_floats(kv->sh.head_dim);
}

/* One head's logits att[0..n) into probabilities, its score row into acc (y: scratch). */
static void head_probs(const struct kv_cache *kv, int layer, int h, int qpos, const int32_t *P,
                       int n, float *att, float *y, float *acc)
{
    ops_mask_scale(att, P, n, qpos, kv->swa[layer], kv->sh.scale);
    if (kv->alibi) /* before scoring: the policies score the logits the model sees */
        alibi_add(kv, P, n, h, qpos, att);
    /* scores first: they need the logits, which the softmax below overwrites */
    if (acc && kv->p.policy != KV_POLICY_H2O) {
        float inv_tau = 1.0f / kv_cache_tau(kv, qpos);
        /*
         * The row generator's vector loop takes 16 keys at a time and ends in a scalar tail
         * about ten times slower per key: ask for whole blocks where the slots exist (the
         * extra values, at stale or zero positions, are never read; the others are the same)
         */
        int npad = (n + 15) & ~15;
        kv_noise_gumbel_row(kv->p.seed, layer, h, qpos, P, npad <= kv->layer_cap[layer] ? npad : n,
                            y);
        ops_noisy_softmax_add(att, y, n, inv_tau, acc); /* masked logits stay -inf */
    }
    ops_softmax(att, n); /* masked entries become exactly 0 */
    if (acc && kv->p.policy == KV_POLICY_H2O)
        ops_add(acc, att, n, acc);
}

void kv_cache_attend_heads(const struct kv_cache *kv, int layer, int h0, int nh, const float *q,
                           size_t q_stride, int qpos, float *out, size_t out_stride,
                           float *scratch, float *const *acc)
{
    int group = kv->sh.n_head / kv->sh.n_head_kv, g = h0 / group, hd = kv->sh.head_dim;
    int n = kv->n_used[(size_t)layer * kv->sh.n_head_kv + (size_t)g];
    size_t base = base_of(kv, layer, g), cap = (size_t)kv->max_cap;
    const float *K = kv->k + base * (size_t)hd, *V = kv->v + base * (size_t)hd;
    const int32_t *P = kv->pos + base;
    float *att = scratch, *y = scratch + (size_t)nh * cap, *st = y + cap;
    size_t sts = ops_wsum_state_floats(hd);
    /* a tile of keys, then of values, is read once for every head (from L1), not nh times */
    for (int s0 = 0; s0 < n; s0 += KV_TILE) {
        int nt = n - s0 < KV_TILE ? n - s0 : KV_TILE;
        for (int j = 0; j < nh; j++)
            ops_dot_rows(q + (size_t)j * q_stride, K + (size_t)s0 * hd, nt, hd, hd,
                         att + (size_t)j * cap + s0);
    }
    for (int j = 0; j < nh; j++) {
        head_probs(kv, layer, h0 + j, qpos, P, n, att + (size_t)j * cap, y, acc ? acc[j] : NULL);
        ops_wsum_begin(st + (size_t)j * sts, hd);
    }
    for (int s0 = 0; s0 < n; s0 += KV_TILE) {
        int nt = n - s0 < KV_TILE ? n - s0 : KV_TILE;
        for (int j = 0; j < nh; j++)
            ops_wsum_step(att + (size_t)j * cap + s0, V + (size_t)s0 * hd, nt, hd, hd,
                          st + (size_t)j * sts);
    }
    for (int j = 0; j < nh; j++)
        ops_wsum_end(st + (size_t)j * sts, hd, out + (size_t)j * out_stride);
}

void kv_cache_attend(const struct kv_cache *kv, int layer, int h, const float *q, int qpos,
                     float *out, float *att, float *acc)
{
    kv_cache_attend_heads(kv, layer, h, 1, q, 0, qpos, out, 0, att, acc ? &acc : NULL);
}

/* ---- sizes and trace ---------------------------------------------------------------------- */

int kv_cache_cap(const struct kv_cache *kv)
{
    return kv->max_cap;
}

int kv_cache_n_past(const struct kv_cache *kv)
{
    return kv->n_past;
}

static size_t entry_bytes(const struct kv_cache *kv)
{
    return 2 * (size_t)kv->sh.head_dim * sizeof(float);
}

size_t kv_cache_bytes_alloc(const struct kv_cache *kv)
{
    return kv->n_slots * entry_bytes(kv);
}

size_t kv_cache_bytes_used(const struct kv_cache *kv)
{
    size_t n = 0;
    for (size_t i = 0; i < (size_t)kv->sh.n_layer * kv->sh.n_head_kv; i++)
        n += (size_t)kv->n_used[i];
    return n * entry_bytes(kv);
}

size_t kv_cache_bytes_full(const struct kv_cache *kv)
{
    return (size_t)kv->n_past * kv->sh.n_layer * kv->sh.n_head_kv * entry_bytes(kv);
}

int kv_cache_recent_window(const struct kv_cache *kv)
{
    return kv->w;
}

int kv_cache_trace(const struct kv_cache *kv, int layer, int g, int32_t *pos, float *score,
                   uint8_t *flags, int max)
{
    int n = kv_cache_n_used(kv, layer, g);
    size_t base = base_of(kv, layer, g);
    int *idx = kv->order; /* scratch: trace is called between forward calls */
    for (int s = 0; s < n; s++)
        idx[s] = s;
    struct sort_ctx c = { kv, base };
    qsort_r(idx, (size_t)n, sizeof(int), kv_cmp_pos, &c);
    int p_last = kv->n_past - 1, k = n < max ? n : max;
    for (int i = 0; i < k; i++) {
        size_t s = base + (size_t)idx[i];
        pos[i] = kv->pos[s];
        if (score)
            score[i] = kv->score[s];
        if (flags) {
            uint8_t f = 0;
            if (kv->w > 0 && kv->pos[s] > p_last - kv->w)
                f |= KV_TRACE_RECENT;
            else if (kv->p.policy == KV_POLICY_SINK && kv->pos[s] < kv->p.n_sink)
                f |= KV_TRACE_SINK;
            else if (!kv->unbounded && kv->swa[layer] == 0)
                f |= KV_TRACE_KEY;
            flags[i] = f;
        }
    }
    return k;
}

