/*
 * kv_ref.c — the naive reference of the KV cache policies declared in kv_ref.h.
 *
 * Every rule below is quoted from (or derived from) engine/kv_cache.h's header comment and
 * docs/keyformer.md; the section is named where it matters.  Readings where the text leaves a
 * choice are listed in tests/ref/README.md.
 *
 * State is a dense table over positions per (layer, KV head): the kept set is "every position
 * whose state is KV_REF_KEPT", so eviction is a state change and nothing ever moves.
 */
#include "config.h"
#include "kv_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

struct kv_ref {
    struct kv_ref_shape sh;
    int *swa;            /* [n_layer] own copy */
    struct kv_params p;
    int bounded;         /* the policy can evict on global layers */
    int w;               /* recent window */
    /* [layer][kv head][position] tables */
    uint8_t *state;
    double *score;
    uint8_t *key;        /* keyformer-static: frozen key token */
    int *ev_call;        /* call index of the eviction, -1 */
    int n_past;
    int pos0, n;         /* the current call */
    int calls;           /* completed calls */
    int frozen;          /* keyformer-static: key tokens chosen */
    int cut;             /* keyformer-static: candidates are the positions below it */
};

static size_t idx(const struct kv_ref *r, int l, int g, int p)
{
    return ((size_t)l * r->sh.n_head_kv + (size_t)g) * (size_t)r->sh.n_ctx + (size_t)p;
}

/*
 * w: kv_cache.h "the recent window w = floor(recent · B)" for the scored policies; `window`
 * keeps the newest B (all of it is the window), `sink` the newest B − n_sink.  recent is a float
 * share such as 0.3f, whose binary value is a hair off the decimal: the small epsilon keeps
 * floor(0.7f · 10) at 7, as the user meant.
 */
static int window_size(const struct kv_params *p, int bounded)
{
    if (!bounded)
        return 0;
    switch (p->policy) {
    case KV_POLICY_WINDOW:
        return p->budget;
    case KV_POLICY_SINK:
        return p->budget - p->n_sink;
    default:
        return (int)floor((double)p->recent * p->budget + 1e-3);
    }
}

struct kv_ref *kv_ref_new(const struct kv_ref_shape *sh, const struct kv_params *p)
{
    struct kv_ref *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->sh = *sh;
    r->p = *p;
    size_t n = (size_t)sh->n_layer * sh->n_head_kv * sh->n_ctx;
    r->swa = calloc((size_t)sh->n_layer, sizeof(int));
    r->state = calloc(n, 1);
    r->score = calloc(n, sizeof(double));
    r->key = calloc(n, 1);
    r->ev_call = malloc(n * sizeof(int));
    if (!r->swa || !r->state || !r->score || !r->key || !r->ev_call) {
        kv_ref_free(r);
        return NULL;
    }
    for (int l = 0; l < sh->n_layer; l++)
        r->swa[l] = sh->swa ? sh->swa[l] : 0;
    r->sh.swa = r->swa;
    /* "full has no budget"; a budget of 0 means the whole context, and a budget that covers the
     * context can never force an eviction, so those run as full (and need no scores). */
    r->bounded = p->policy != KV_POLICY_FULL && p->budget > 0 && p->budget < sh->n_ctx;
    r->w = window_size(p, r->bounded);
    kv_ref_reset(r);
    return r;
}

void kv_ref_free(struct kv_ref *r)
{
    if (!r)
        return;
    free(r->swa);
    free(r->state);
    free(r->score);
    free(r->key);
    free(r->ev_call);
    free(r);
}

void kv_ref_reset(struct kv_ref *r)
{
    size_t n = (size_t)r->sh.n_layer * r->sh.n_head_kv * r->sh.n_ctx;
    memset(r->state, KV_REF_UNSEEN, n);
    memset(r->score, 0, n * sizeof(double));
    memset(r->key, 0, n);
    for (size_t i = 0; i < n; i++)
        r->ev_call[i] = -1;
    r->n_past = r->pos0 = r->n = r->calls = r->frozen = 0;
}

static void evict(struct kv_ref *r, int l, int g, int p)
{
    size_t i = idx(r, l, g, p);
    r->state[i] = KV_REF_EVICTED;
    r->ev_call[i] = r->calls;
}

/* An entry for sorting by score (descending: best first) then by position. */
struct cand {
    double s;
    int p;
};

static int cmp_best_first(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    /* equal scores: keep the newer one (arbitrary; tests avoid exact ties) */
    return (x->p < y->p) - (x->p > y->p);
}

static int cmp_newest_first(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return (x->p < y->p) - (x->p > y->p);
}

/* Among the kept positions of (l, g) that satisfy `eligible`, keep the first `keep` in `order`
 * and evict the rest; optionally mark the survivors as key tokens. */
static void keep_best(struct kv_ref *r, int l, int g, int (*eligible)(const struct kv_ref *, int),
                      int keep, int (*order)(const void *, const void *), int mark_key)
{
    struct cand *c = malloc((size_t)r->sh.n_ctx * sizeof(*c));
    int nc = 0;
    if (!c)
        abort();
    for (int p = 0; p < r->sh.n_ctx; p++) {
        size_t i = idx(r, l, g, p);
        if (r->state[i] == KV_REF_KEPT && eligible(r, p)) {
            c[nc].s = r->score[i];
            c[nc].p = p;
            nc++;
        }
    }
    qsort(c, (size_t)nc, sizeof(*c), order);
    for (int k = 0; k < nc; k++) {
        if (k < keep) {
            if (mark_key)
                r->key[idx(r, l, g, c[k].p)] = 1;
        } else {
            evict(r, l, g, c[k].p);
        }
    }
    free(c);
}

static int kept_count(const struct kv_ref *r, int l, int g)
{
    int k = 0;
    for (int p = 0; p < r->sh.n_ctx; p++)
        k += r->state[idx(r, l, g, p)] == KV_REF_KEPT;
    return k;
}

/* Eligibility predicates; the "last position" is that of the current call. */
static int last_pos(const struct kv_ref *r)
{
    return r->pos0 + r->n - 1;
}

static int outside_window(const struct kv_ref *r, int p)
{
    return p <= last_pos(r) - r->w; /* the w newest positions count the current token */
}

static int not_sink(const struct kv_ref *r, int p)
{
    return p >= r->p.n_sink;
}

static int any_pos(const struct kv_ref *r, int p)
{
    (void)r;
    (void)p;
    return 1;
}

static int below_cut(const struct kv_ref *r, int p)
{
    return p < r->cut;
}

/*
 * keyformer-static at the first decode step (kv_cache.h; keyformer.md §1.5): with n tokens so
 * far, key tokens = top (B − w) by score among positions < n − w; positions > n − w stay (the
 * coming token completes the window); position n − w is dropped.
 */
static void static_freeze(struct kv_ref *r)
{
    int n = r->n_past, w = r->w, B = r->p.budget;
    r->cut = n - w;
    for (int l = 0; l < r->sh.n_layer; l++) {
        if (r->swa[l] > 0)
            continue;
        for (int g = 0; g < r->sh.n_head_kv; g++) {
            keep_best(r, l, g, below_cut, B - w, cmp_best_first, 1);
            if (n - w >= 0 && r->state[idx(r, l, g, n - w)] == KV_REF_KEPT)
                evict(r, l, g, n - w);
        }
    }
    r->frozen = 1;
}

int kv_ref_begin(struct kv_ref *r, int n)
{
    if (n < 1)
        return STATUS_INVALID;
    if (r->n_past + n > r->sh.n_ctx)
        return STATUS_CONTEXT_FULL;
    r->pos0 = r->n_past;
    r->n = n;
    /* keyformer-static: a one-token call after position 0 is a decode step (kv_cache.h) */
    if (n == 1 && r->pos0 > 0) {
        if (r->p.policy == KV_POLICY_KEYFORMER_STATIC && r->bounded && !r->frozen)
            static_freeze(r);
        else if (r->p.policy == KV_POLICY_KEYFORMER_STATIC && r->bounded) {
            /* the authors' step attends over exactly B: the token that the new one pushes out of
             * the window (position pos0 − w) is gone before the step (kv_cache.h) */
            for (int l = 0; l < r->sh.n_layer; l++) {
                if (r->sh.swa && r->sh.swa[l] > 0)
                    continue;
                for (int g = 0; g < r->sh.n_head_kv; g++)
                    for (int p = 0; p <= r->pos0 - r->w && p < r->sh.n_ctx; p++) {
                        size_t i = idx(r, l, g, p);
                        if (r->state[i] == KV_REF_KEPT && !r->key[i])
                            evict(r, l, g, p);
                    }
            }
        }
    }
    for (int l = 0; l < r->sh.n_layer; l++)
        for (int g = 0; g < r->sh.n_head_kv; g++)
            for (int p = r->pos0; p < r->pos0 + n; p++) {
                size_t i = idx(r, l, g, p);
                r->state[i] = KV_REF_KEPT;
                r->score[i] = 0;
                r->key[i] = 0;
                r->ev_call[i] = -1;
            }
    return STATUS_OK;
}

int kv_ref_visible(const struct kv_ref *r, int l, int g, int qpos, int *pos)
{
    int k = 0, win = r->swa[l];
    for (int p = 0; p <= qpos && p < r->sh.n_ctx; p++)
        if (r->state[idx(r, l, g, p)] == KV_REF_KEPT && (win <= 0 || qpos - p < win))
            pos[k++] = p;
    return k;
}

int kv_ref_scores(const struct kv_ref *r, int l)
{
    if (!r->bounded || r->swa[l] > 0)
        return 0;
    return r->p.policy == KV_POLICY_H2O || r->p.policy == KV_POLICY_KEYFORMER ||
           (r->p.policy == KV_POLICY_KEYFORMER_STATIC && !r->frozen);
}

/*
 * Scores (keyformer.md §1.2, §3.1, §4): per query row, h2o adds softmax_j(x_ij), keyformer adds
 * softmax_j((x_ij + G(seed, l, h, i, j)) / τ) over the keys the row sees; a KV head's score is
 * the sum over its query heads.
 */
static void accumulate(struct kv_ref *r, int l, const double *x)
{
    int P = r->pos0 + r->n, group = r->sh.n_head / r->sh.n_head_kv;
    int noisy = r->p.policy != KV_POLICY_H2O;
    int *vis = malloc((size_t)P * sizeof(int));
    double *y = malloc((size_t)P * sizeof(double));
    if (!vis || !y)
        abort();
    for (int h = 0; h < r->sh.n_head; h++) {
        int g = h / group;
        for (int i = 0; i < r->n; i++) {
            int qpos = r->pos0 + i;
            double tau = noisy ? kv_ref_tau(r, qpos) : 1.0;
            const double *row = x + ((size_t)h * r->n + (size_t)i) * (size_t)P;
            int nv = kv_ref_visible(r, l, g, qpos, vis);
            double mx = -INFINITY, sum = 0;
            for (int k = 0; k < nv; k++) {
                double z = row[vis[k]];
                if (noisy)
                    z += (double)kv_noise_gumbel(r->p.seed, l, h, qpos, vis[k]);
                y[k] = z / tau;
                if (y[k] > mx)
                    mx = y[k];
            }
            /* an infinite noise draw would make the row one-hot in the limit; the noise is
             * meant to be finite (tested), but the reference stays defined either way */
            for (int k = 0; k < nv; k++)
                sum += (y[k] = isinf(mx) ? (double)(y[k] == mx) : exp(y[k] - mx));
            for (int k = 0; k < nv; k++)
                r->score[idx(r, l, g, vis[k])] += y[k] / sum;
        }
    }
    free(vis);
    free(y);
}

void kv_ref_layer(struct kv_ref *r, int l, const double *x)
{
    if (kv_ref_scores(r, l))
        accumulate(r, l, x);
    int B = r->p.budget, p_last = last_pos(r);
    for (int g = 0; g < r->sh.n_head_kv; g++) {
        if (r->swa[l] > 0) {
            /* Gemma 3 rule: keep exactly what the next query (at p_last + 1) can still see */
            for (int p = 0; p < r->sh.n_ctx; p++)
                if (r->state[idx(r, l, g, p)] == KV_REF_KEPT && p_last + 1 - p >= r->swa[l])
                    evict(r, l, g, p);
            continue;
        }
        if (!r->bounded)
            continue;
        switch (r->p.policy) {
        case KV_POLICY_WINDOW:
            keep_best(r, l, g, any_pos, B, cmp_newest_first, 0);
            break;
        case KV_POLICY_SINK:
            keep_best(r, l, g, not_sink, B - r->p.n_sink, cmp_newest_first, 0);
            break;
        case KV_POLICY_KEYFORMER_STATIC:
            if (r->frozen) { /* only the window slides: non-key tokens that left it go */
                for (int p = 0; p < r->sh.n_ctx; p++) {
                    size_t i = idx(r, l, g, p);
                    if (r->state[i] == KV_REF_KEPT && !r->key[i] && outside_window(r, p))
                        evict(r, l, g, p);
                }
                break;
            }
            /* before the freeze it is keyformer (a prompt longer than B is cut the same way) */
            /* fall through */
        case KV_POLICY_H2O:
        case KV_POLICY_KEYFORMER: {
            int k = kept_count(r, l, g);
            if (k > B) {
                /* the w most recent stay; the others compete for the remaining B − w slots */
                int recent = 0;
                for (int p = 0; p < r->sh.n_ctx; p++)
                    recent += r->state[idx(r, l, g, p)] == KV_REF_KEPT && !outside_window(r, p);
                keep_best(r, l, g, outside_window, B - recent, cmp_best_first, 0);
            }
            break;
        }
        default:
            break;
        }
    }
}

void kv_ref_end(struct kv_ref *r)
{
    r->n_past = r->pos0 + r->n;
    r->calls++;
}

void kv_ref_truncate(struct kv_ref *r, int n_past)
{
    if (n_past < 0 || n_past >= r->n_past)
        return;
    if (n_past == 0) {
        kv_ref_reset(r);
        return;
    }
    for (int l = 0; l < r->sh.n_layer; l++)
        for (int g = 0; g < r->sh.n_head_kv; g++)
            for (int p = n_past; p < r->sh.n_ctx; p++) {
                size_t i = idx(r, l, g, p);
                r->state[i] = KV_REF_UNSEEN;
                r->score[i] = 0;
                r->key[i] = 0;
                r->ev_call[i] = -1;
            }
    r->n_past = n_past;
}

int kv_ref_kept(const struct kv_ref *r, int l, int g, int32_t *pos, double *score, uint8_t *flags)
{
    int k = 0;
    for (int p = 0; p < r->n_past; p++) {
        size_t i = idx(r, l, g, p);
        if (r->state[i] != KV_REF_KEPT)
            continue;
        if (pos)
            pos[k] = p;
        if (score)
            score[k] = r->score[i];
        if (flags) {
            /* recent: among the w newest positions; sink: one of the protected first positions;
             * key: any other entry that a bounded global layer kept on purpose */
            uint8_t f = 0;
            if (r->w > 0 && p > r->n_past - 1 - r->w)
                f = KV_TRACE_RECENT;
            else if (r->p.policy == KV_POLICY_SINK && p < r->p.n_sink)
                f = KV_TRACE_SINK;
            else if (r->bounded && r->swa[l] == 0)
                f = KV_TRACE_KEY;
            flags[k] = f;
        }
        k++;
    }
    return k;
}

int kv_ref_state(const struct kv_ref *r, int l, int g, int p)
{
    return p >= 0 && p < r->sh.n_ctx ? r->state[idx(r, l, g, p)] : KV_REF_UNSEEN;
}

double kv_ref_score(const struct kv_ref *r, int l, int g, int p)
{
    return r->score[idx(r, l, g, p)];
}

int kv_ref_evicted_call(const struct kv_ref *r, int l, int g, int p)
{
    return r->ev_call[idx(r, l, g, p)];
}

int kv_ref_swap(struct kv_ref *r, int l, int g, int keep, int drop)
{
    size_t a = idx(r, l, g, keep), b = idx(r, l, g, drop);
    /* ev_call is set at eviction, i.e. during call number `calls` before kv_ref_end counted it,
     * so after the end an entry evicted in the last call carries calls − 1 */
    if (r->state[a] != KV_REF_EVICTED || r->ev_call[a] != r->calls - 1 ||
        r->state[b] != KV_REF_KEPT)
        return -1;
    r->state[a] = KV_REF_KEPT;
    r->ev_call[a] = -1;
    r->state[b] = KV_REF_EVICTED;
    r->ev_call[b] = r->calls - 1;
    uint8_t k = r->key[a];
    r->key[a] = r->key[b];
    r->key[b] = k;
    return 0;
}

int kv_ref_n_past(const struct kv_ref *r)
{
    return r->n_past;
}

int kv_ref_calls(const struct kv_ref *r)
{
    return r->calls;
}

int kv_ref_window(const struct kv_ref *r)
{
    return r->w;
}

int kv_ref_bounded(const struct kv_ref *r)
{
    return r->bounded;
}

/*
 * τ of a keyformer score row (kv_cache.h "τ"; keyformer.md §1.3): the authors count decode
 * steps after the prompt was cut to the budget; here every token that arrives when B positions
 * are already held is such a step, so t = clamp(qpos − B + 1, 0, tau_steps) and
 * τ = τ_init + t (τ_end − τ_init) / tau_steps.  keyformer-static scores only its prompt, at τ_init.
 */
double kv_ref_tau(const struct kv_ref *r, int qpos)
{
    if (!r->bounded || r->p.policy != KV_POLICY_KEYFORMER)
        return r->p.tau_init;
    int t = qpos - r->p.budget + 1;
    if (t < 0)
        t = 0;
    if (t > r->p.tau_steps)
        t = r->p.tau_steps;
    return r->p.tau_init + (double)t * ((double)r->p.tau_end - r->p.tau_init) / r->p.tau_steps;
}
