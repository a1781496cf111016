/*
 * kv_cache.c — bounded KV storage, attention over it, and the eviction policies described in
 * kv_cache.h (which states the rules; this file says how they are carried out).
 *
 * Invariant between calls: for every (layer, KV head), slots [0, n_used) hold distinct positions
 * < n_past, n_used <= budget on global layers (when the policy has one), and on sliding-window
 * layers every held position is still visible to the next query.
 */
#include "config.h"
#include "kv_cache.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "status.h"

static const char *const policy_names[KV_POLICY_COUNT] = {
    [KV_POLICY_FULL] = "full",
    [KV_POLICY_WINDOW] = "window",
    [KV_POLICY_SINK] = "sink",
    [KV_POLICY_H2O] = "h2o",
    [KV_POLICY_KEYFORMER] = "keyformer",
    [KV_POLICY_KEYFORMER_STATIC] = "keyformer-static",
};

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
    int step;          /* decode steps since the last prefill */
    float tau;
    int frozen;        /* keyformer-static: key tokens chosen */
    int unbounded;     /* budget >= n_ctx: nothing is ever evicted, nothing needs scores */
};

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
        /* need budget >= w + 1: solve for the smallest budget whose window fits */
        lo = 2;
        while (lo <= n_ctx && (int)floorf(p->recent * (float)lo + 1e-4f) + 1 > lo)
            lo++;
    }
    if (p->budget < lo || p->budget > n_ctx)
        return status_set(err, errlen, STATUS_INVALID,
                          "KV budget of %d tokens is out of range: %s needs %d..%d "
                          "(the recent window plus at least one key token, at most the context)",
                          p->budget, kv_policy_name(p->policy), lo, n_ctx);
    return STATUS_OK;
}

int kv_budget_parse(const char *s, int n_ctx, size_t bytes_per_token, int *out, char *err,
                    size_t errlen)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || end == s || errno || !(v > 0) || v > 1e15)
        return status_set(err, errlen, STATUS_INVALID,
                          "--kv-budget '%s' is not a positive size: give tokens (2048), a share "
                          "of the context (50%%) or memory (256MiB)", s ? s : "");
    double tokens;
    if (strcmp(end, "%") == 0) {
        if (v > 100)
            return status_set(err, errlen, STATUS_INVALID,
                              "--kv-budget %s: a share must be in (0, 100%%]", s);
        tokens = floor(v / 100.0 * n_ctx);
    } else if (*end == 0) {
        if (v != floor(v))
            return status_set(err, errlen, STATUS_INVALID,
                              "--kv-budget %s: a token count must be an integer", s);
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
    kv->tau = p->tau_init;
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
    free(kv);
}

void kv_cache_reset(struct kv_cache *kv)
{
    memset(kv->n_used, 0, (size_t)kv->sh.n_layer * kv->sh.n_head_kv * sizeof(int));
    kv->n_past = 0;
    kv->step = 0;
    kv->frozen = 0;
    kv->tau = kv->p.tau_init;
}

const struct kv_params *kv_cache_params(const struct kv_cache *kv)
{
    return &kv->p;
}

/* First slot of (layer, KV head g). */
static size_t base_of(const struct kv_cache *kv, int l, int g)
{
    return kv->layer_off[l] + (size_t)g * (size_t)kv->layer_cap[l];
}

static int *used_of(struct kv_cache *kv, int l, int g)
{
    return &kv->n_used[(size_t)l * kv->sh.n_head_kv + (size_t)g];
}

int kv_cache_n_used(const struct kv_cache *kv, int layer, int g)
{
    return kv->n_used[(size_t)layer * kv->sh.n_head_kv + (size_t)g];
}

/* ---- noise -------------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/*
 * The counter: layer (8 bits) | query head (8) | query position (24) | key position (24),
 * hashed with the seed.  u is the top 24 bits plus one half ulp, strictly inside (0, 1), so the
 * double logarithm is always finite.
 */
float kv_noise_gumbel(uint64_t seed, int layer, int qhead, int qpos, int kpos)
{
    uint64_t c = ((uint64_t)(layer & 0xff) << 56) | ((uint64_t)(qhead & 0xff) << 48) |
                 ((uint64_t)(qpos & 0xffffff) << 24) | (uint64_t)(kpos & 0xffffff);
    uint64_t h = mix64(c ^ mix64(seed + 0x9e3779b97f4a7c15ULL));
    float u = ((float)(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
    return -logf(-logf(u));
}

/* ---- one call ----------------------------------------------------------------------------- */

static void static_freeze(struct kv_cache *kv);

int kv_cache_begin(struct kv_cache *kv, int pos0, int n)
{
    if (n < 1 || n > kv->sh.n_batch || pos0 != kv->n_past)
        return STATUS_INVALID;
    if (pos0 + n > kv->sh.n_ctx)
        return STATUS_CONTEXT_FULL;
    if (n == 1 && pos0 > 0) {
        /* a decode step: τ rises; the static policy freezes its key tokens at the first one */
        kv->step++;
        float t = kv->p.tau_init +
                  (float)kv->step * (kv->p.tau_end - kv->p.tau_init) / (float)kv->p.tau_steps;
        kv->tau = kv->p.tau_end >= kv->p.tau_init ? fminf(t, kv->p.tau_end)
                                                  : fmaxf(t, kv->p.tau_end);
        if (kv->p.policy == KV_POLICY_KEYFORMER_STATIC && !kv->frozen && !kv->unbounded)
            static_freeze(kv);
    } else {
        kv->step = 0;
        kv->tau = kv->p.tau_init;
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
    kv->pos[s] = pos;
    kv->score[s] = 0.0f;
    kv->key[s] = 0;
    (*nu)++;
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

void kv_cache_attend(const struct kv_cache *kv, int layer, int h, const float *q, int qpos,
                     float *out, float *att, float *acc)
{
    int group = kv->sh.n_head / kv->sh.n_head_kv, g = h / group, hd = kv->sh.head_dim;
    int n = kv->n_used[(size_t)layer * kv->sh.n_head_kv + (size_t)g];
    size_t base = base_of(kv, layer, g);
    const float *K = kv->k + base * (size_t)hd, *V = kv->v + base * (size_t)hd;
    const int32_t *P = kv->pos + base;
    int win = kv->swa[layer];
    float mx = -INFINITY;
    for (int s = 0; s < n; s++) {
        int vis = P[s] <= qpos && (win <= 0 || qpos - P[s] < win);
        att[s] = vis ? kv->sh.scale * ops_dot(q, K + (size_t)s * hd, hd) : -INFINITY;
        if (att[s] > mx)
            mx = att[s];
    }
    /* scores first: they need the logits, which the softmax below overwrites */
    if (acc && kv->p.policy != KV_POLICY_H2O) {
        float inv_tau = 1.0f / kv->tau, my = -INFINITY;
        float *y = att + kv->max_cap; /* second half of the scratch */
        for (int s = 0; s < n; s++) {
            y[s] = att[s] == -INFINITY
                       ? -INFINITY
                       : (att[s] + kv_noise_gumbel(kv->p.seed, layer, h, qpos, P[s])) * inv_tau;
            if (y[s] > my)
                my = y[s];
        }
        double sum = 0;
        for (int s = 0; s < n; s++) {
            y[s] = y[s] == -INFINITY ? 0.0f : expf(y[s] - my);
            sum += y[s];
        }
        float inv = (float)(1.0 / sum);
        for (int s = 0; s < n; s++)
            acc[s] += y[s] * inv;
    }
    double sum = 0;
    for (int s = 0; s < n; s++) {
        att[s] = att[s] == -INFINITY ? 0.0f : expf(att[s] - mx);
        sum += att[s];
    }
    float inv = (float)(1.0 / sum);
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int s = 0; s < n; s++) {
        if (att[s] == 0.0f)
            continue;
        att[s] *= inv;
        ops_axpy(att[s], V + (size_t)s * hd, hd, out);
    }
    if (acc && kv->p.policy == KV_POLICY_H2O)
        for (int s = 0; s < n; s++)
            acc[s] += att[s];
}

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

/* Orders of slot indices within one (layer, head) block, for qsort_r. */
struct sort_ctx {
    const struct kv_cache *kv;
    size_t base;
};

/* Eviction order: lowest score first, then oldest. */
static int cmp_victim(const void *a, const void *b, void *arg)
{
    const struct sort_ctx *c = arg;
    size_t x = c->base + (size_t)*(const int *)a, y = c->base + (size_t)*(const int *)b;
    float sx = c->kv->score[x], sy = c->kv->score[y];
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return (c->kv->pos[x] > c->kv->pos[y]) - (c->kv->pos[x] < c->kv->pos[y]);
}

static int cmp_pos(const void *a, const void *b, void *arg)
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
    if (need == 1) {
        int best = 0;
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
        pick(kv, base, cand, nc, n - B, cmp_pos);
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
static void static_freeze(struct kv_cache *kv)
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
    qsort_r(idx, (size_t)n, sizeof(int), cmp_pos, &c);
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

/* ---- snapshot ------------------------------------------------------------------------------ */

#define KV_STATE_MAGIC 0x3153564bu /* "KVS1" */

struct kv_state_hdr {
    uint32_t magic, policy;
    int32_t n_layer, n_head_kv, head_dim, budget, n_past, step, frozen, pad;
    float tau, recent;
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
        .n_past = kv->n_past, .step = kv->step, .frozen = kv->frozen, .tau = kv->tau,
        .recent = kv->p.recent, .seed = kv->p.seed,
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
        h.recent != kv->p.recent || h.n_past < 0 || h.n_past > kv->sh.n_ctx)
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
    kv->step = h.step;
    kv->frozen = h.frozen;
    kv->tau = h.tau;
    return STATUS_OK;
}
