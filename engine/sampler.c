/*
 * sampler.c — llama.cpp's default sampler chain over a preallocated candidate list.
 *
 * This module owns the RNG, the penalty ring and the candidate work buffers of a sampler.
 * Each call builds a list of (id, logit) candidates and narrows it step by step; the input
 * logits are only read.  To stay fast at n_vocab = 262144 the common case never touches the
 * whole vocabulary more than once: with top-k on, one pass keeps a min-heap of the best
 * k + |penalised| raw logits, and the penalised tokens (at most penalty_last_n of them) are
 * merged in afterwards.  That is exact: whatever the penalties do, the best k of the
 * unpenalised tokens are among the best k + |penalised| raw logits.
 *
 * Candidates are compared by logit, then by lower id, so every selection is deterministic.
 */
#include "config.h"
#include "sampler.h"
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cand {
    int id;
    float logit;
};

struct sampler {
    struct sampler_params p;
    int n_vocab;   /* capacity of the buffers below */
    uint64_t seed; /* the seed in use (drawn if p.seed was SAMPLER_SEED_RANDOM) */
    uint64_t rng[4];

    int *ring; /* (ring_cap) last accepted tokens; ring_head is the next slot to write */
    int ring_cap, ring_len, ring_head;
    uint32_t *count; /* (n_vocab) occurrences of each token in the ring */

    uint32_t *mark; /* (n_vocab) == epoch: token is penalised in the current call */
    uint32_t epoch;
    struct cand *pen; /* (ring_cap) distinct ring tokens with their penalised logits */
    int n_pen;

    struct cand *cand; /* (n_vocab) the candidate list */
    float *prob;       /* (n_vocab) unnormalised probabilities of the candidates */
    int sorted;        /* cand is in best-first order */
};

struct sampler_params sampler_params_default(void)
{
    struct sampler_params p = {
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .penalty_last_n = 64,
        .freq_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .seed = SAMPLER_SEED_RANDOM,
    };
    return p;
}

// ---- RNG: xoshiro256** seeded by splitmix64 ------------------------------------------------

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* u ~ U[0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4])
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
    /* splitmix64 never yields four zero words from any seed, which xoshiro requires */
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&seed);
}

static uint64_t seed_random(void)
{
    uint64_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&v, sizeof(v), 1, f) != 1) {
        /* No urandom (chroot, sandbox): mix clock, pid and a stack address (ASLR). */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                     ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&v;
        v = splitmix64(&x);
    }
    if (f)
        fclose(f);
    /* Keep the reported seed reusable: the sentinel itself would mean "random" again. */
    return v == SAMPLER_SEED_RANDOM ? v - 1 : v;
}

// ---- lifetime ------------------------------------------------------------------------------

int sampler_new(struct sampler **out, const struct sampler_params *params, int n_vocab)
{
    *out = NULL;
    if (!params || n_vocab <= 0 || params->penalty_last_n < 0)
        return STATUS_INVALID;

    struct sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return STATUS_NOMEM;
    s->p = *params;
    s->n_vocab = n_vocab;
    s->ring_cap = params->penalty_last_n;
    size_t nv = (size_t)n_vocab, nr = (size_t)s->ring_cap;
    s->ring = malloc((nr ? nr : 1) * sizeof(*s->ring));
    s->pen = malloc((nr ? nr : 1) * sizeof(*s->pen));
    s->count = calloc(nv, sizeof(*s->count));
    s->mark = calloc(nv, sizeof(*s->mark));
    s->cand = malloc(nv * sizeof(*s->cand));
    s->prob = malloc(nv * sizeof(*s->prob));
    if (!s->ring || !s->pen || !s->count || !s->mark || !s->cand || !s->prob) {
        sampler_free(s);
        return STATUS_NOMEM;
    }
    s->seed = params->seed == SAMPLER_SEED_RANDOM ? seed_random() : params->seed;
    rng_seed(s->rng, s->seed);
    *out = s;
    return STATUS_OK;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->ring);
    free(s->pen);
    free(s->count);
    free(s->mark);
    free(s->cand);
    free(s->prob);
    free(s);
}

uint64_t sampler_seed(const struct sampler *s)
{
    return s->seed;
}

// ---- penalty ring --------------------------------------------------------------------------

void sampler_accept(struct sampler *s, int token)
{
    if (token < 0 || token >= s->n_vocab || s->ring_cap == 0)
        return;
    if (s->ring_len == s->ring_cap)
        s->count[s->ring[s->ring_head]]--; /* the slot being overwritten is the oldest */
    else
        s->ring_len++;
    s->ring[s->ring_head] = token;
    s->count[token]++;
    s->ring_head = (s->ring_head + 1) % s->ring_cap;
}

void sampler_reset(struct sampler *s)
{
    for (int i = 0; i < s->ring_len; i++)
        s->count[s->ring[i]] = 0;
    s->ring_len = 0;
    s->ring_head = 0;
}

static int penalties_active(const struct sampler_params *p)
{
    return p->penalty_last_n > 0 &&
           (p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f || p->presence_penalty != 0.0f);
}

static float penalize(const struct sampler_params *p, float logit, uint32_t count)
{
    /* Dividing a negative logit would raise it, so the repeat penalty multiplies those. */
    if (logit <= 0.0f)
        logit *= p->repeat_penalty;
    else
        logit /= p->repeat_penalty;
    return logit - (float)count * p->freq_penalty - p->presence_penalty;
}

static float clean(float x)
{
    return isnan(x) ? -INFINITY : x;
}

/* Collect the distinct ring tokens below n with their penalised logits into s->pen and
 * mark them with a fresh epoch. */
static void collect_penalties(struct sampler *s, const float *logits, int n)
{
    s->n_pen = 0;
    if (!penalties_active(&s->p) || s->ring_len == 0)
        return;
    if (++s->epoch == 0) { /* wrapped: old stamps could alias the new epoch */
        memset(s->mark, 0, (size_t)s->n_vocab * sizeof(*s->mark));
        s->epoch = 1;
    }
    for (int i = 0; i < s->ring_len; i++) {
        int t = s->ring[i];
        if (t >= n || s->mark[t] == s->epoch)
            continue;
        s->mark[t] = s->epoch;
        s->pen[s->n_pen].id = t;
        s->pen[s->n_pen].logit = clean(penalize(&s->p, logits[t], s->count[t]));
        s->n_pen++;
    }
}

// ---- candidate ordering --------------------------------------------------------------------

static int better(const struct cand *a, const struct cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_best_first(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

static void swap_cand(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* Reorder c[0..n) so that c[0..m) hold the m best candidates, in best-first order.  A
 * quickselect (median-of-three pivot; no ties exist thanks to the id tiebreak) then a sort of
 * the m winners: O(n + m log m). */
static void cand_partial_sort(struct cand *c, size_t n, size_t m)
{
    if (m > n)
        m = n;
    size_t lo = 0, hi = n;
    while (hi - lo > 16 && m > lo && m < hi) {
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        if (better(&c[mid], &c[lo]))
            swap_cand(&c[mid], &c[lo]);
        if (better(&c[last], &c[lo]))
            swap_cand(&c[last], &c[lo]);
        if (better(&c[last], &c[mid]))
            swap_cand(&c[last], &c[mid]);
        swap_cand(&c[mid], &c[last]); /* pivot (the median) to the end */
        struct cand pivot = c[last];
        size_t store = lo;
        for (size_t i = lo; i < last; i++)
            if (better(&c[i], &pivot))
                swap_cand(&c[i], &c[store++]);
        swap_cand(&c[store], &c[last]);
        if (store >= m)
            hi = store; /* the m best all lie left of the pivot */
        else
            lo = store + 1;
    }
    /* Unless a pivot landed exactly on m, m is inside a small [lo, hi): order that range so
     * that position m splits winners from losers, then order the winners. */
    if (lo < m && m < hi)
        qsort(c + lo, hi - lo, sizeof(*c), cmp_best_first);
    qsort(c, m, sizeof(*c), cmp_best_first);
}

/* Min-heap on "better": the root is the worst kept candidate. */
static void heap_sift_down(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(&h[w], &h[l]))
            w = l;
        if (r < n && better(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        swap_cand(&h[i], &h[w]);
        i = w;
    }
}

#define TOPK_BLOCK 64

/* Offer logits[from..to) to the heap h of m; returns the new worst kept logit. */
static float heap_offer(struct cand *h, size_t m, const float *logits, size_t from, size_t to)
{
    for (size_t j = from; j < to; j++) {
        /* strictly greater: an equal logit with a higher id loses the tiebreak; NaN fails */
        if (logits[j] > h[0].logit) {
            h[0].id = (int)j;
            h[0].logit = logits[j];
            heap_sift_down(h, m, 0);
        }
    }
    return h[0].logit;
}

/* The best k penalised candidates when k + n_pen < n, in one pass over the logits. */
static int build_top_k(struct sampler *s, const float *logits, int n, int k)
{
    struct cand *h = s->cand;
    size_t m = (size_t)k + (size_t)s->n_pen;
    for (size_t i = 0; i < m; i++) {
        h[i].id = (int)i;
        h[i].logit = clean(logits[i]);
    }
    for (size_t i = m / 2; i-- > 0;)
        heap_sift_down(h, m, i);
    float worst = h[0].logit;
    size_t pos = m;
    /* Replacements are rare after the first few thousand tokens, so test a fixed block at a
     * time with a branch-free (vectorisable) "anything above the worst kept?" first. */
    for (; pos + TOPK_BLOCK <= (size_t)n; pos += TOPK_BLOCK) {
        const float *b = logits + pos;
        unsigned any = 0;
        for (int j = 0; j < TOPK_BLOCK; j++)
            any |= (unsigned)(b[j] > worst);
        if (any)
            worst = heap_offer(h, m, logits, pos, pos + TOPK_BLOCK);
    }
    heap_offer(h, m, logits, pos, (size_t)n);
    /* Swap raw entries of penalised tokens for their penalised values. */
    size_t len = 0;
    for (size_t i = 0; i < m; i++)
        if (s->n_pen == 0 || s->mark[h[i].id] != s->epoch)
            h[len++] = h[i];
    for (int i = 0; i < s->n_pen; i++)
        h[len++] = s->pen[i];
    qsort(h, len, sizeof(*h), cmp_best_first);
    s->sorted = 1;
    return len < (size_t)k ? (int)len : k;
}

/* All n candidates with penalties applied, in id order. */
static int build_all(struct sampler *s, const float *logits, int n)
{
    for (int i = 0; i < n; i++) {
        s->cand[i].id = i;
        s->cand[i].logit = clean(logits[i]);
    }
    for (int i = 0; i < s->n_pen; i++)
        s->cand[s->pen[i].id].logit = s->pen[i].logit;
    s->sorted = 0;
    return n;
}

// ---- the chain -----------------------------------------------------------------------------

static float max_logit(const struct sampler *s, int n)
{
    if (s->sorted)
        return s->cand[0].logit;
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (s->cand[i].logit > mx)
            mx = s->cand[i].logit;
    return mx;
}

/* Sum of exp(logit - mx) over the n candidates: the softmax denominator. */
static double mass(const struct sampler *s, int n, float mx)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += expf(s->cand[i].logit - mx);
    return sum;
}

/* top-p: keep the shortest best-first prefix whose mass reaches p * total, where total is
 * the mass of the list top-p was given (see chain_truncate for why the list may already be
 * cut).  An unsorted list is sorted progressively, a growing chunk at a time, because the
 * prefix is usually short. */
static int apply_top_p(struct sampler *s, int n, float p, float mx, double total)
{
    if (p >= 1.0f || n <= 1)
        return n;
    double target = (double)p * total, cum = 0.0;
    size_t done = s->sorted ? (size_t)n : 0, chunk = 256;
    for (int i = 0; i < n; i++) {
        if ((size_t)i == done) {
            size_t len = chunk < (size_t)n - done ? chunk : (size_t)n - done;
            cand_partial_sort(s->cand + done, (size_t)n - done, len);
            done += len;
            chunk *= 4;
        }
        cum += expf(s->cand[i].logit - mx);
        if (cum >= target) {
            s->sorted = 1; /* the kept prefix is fully sorted */
            return i + 1;
        }
    }
    s->sorted = 1;
    return n;
}

/* min-p: keep candidates with prob >= min_p * prob_max, i.e. logit >= max + ln(min_p). */
static int apply_min_p(struct sampler *s, int n, float min_p, float mx)
{
    if (min_p <= 0.0f || n <= 1)
        return n;
    float thr = min_p >= 1.0f ? mx : mx + logf(min_p); /* keeps at least the best one */
    int kept = 0;
    if (s->sorted) {
        while (kept < n && s->cand[kept].logit >= thr)
            kept++;
    } else {
        for (int i = 0; i < n; i++) /* order-preserving compaction */
            if (s->cand[i].logit >= thr)
                s->cand[kept++] = s->cand[i];
    }
    return kept > 0 ? kept : 1;
}

/* Penalties → top-k → top-p → min-p; returns the number of survivors in s->cand.  Greedy is
 * top-1 of the penalised logits: truncation never removes the best candidate. */
static int chain_truncate(struct sampler *s, const float *logits, int n)
{
    int greedy = !(s->p.temp > 0.0f);
    int k = greedy ? 1 : s->p.top_k;
    int n_cand;

    collect_penalties(s, logits, n);
    if (k > 0 && (size_t)k + (size_t)s->n_pen < (size_t)n) {
        n_cand = build_top_k(s, logits, n, k);
    } else {
        n_cand = build_all(s, logits, n);
        if (k > 0 && k < n) {
            cand_partial_sort(s->cand, (size_t)n, (size_t)k);
            s->sorted = 1;
            n_cand = k;
        }
    }
    if (greedy || n_cand <= 1)
        return 1;

    /* top-p and min-p each keep a best-first prefix, and min-p's threshold depends only on
     * the maximum, which top-p always keeps: the chain's result is the shorter prefix.  So
     * min-p may run first, as long as top-p still measures against the mass before min-p;
     * on an unsorted full vocabulary that shrinks what top-p has to sort. */
    float mx = max_logit(s, n_cand);
    double total = s->p.top_p < 1.0f ? mass(s, n_cand, mx) : 0.0;
    n_cand = apply_min_p(s, n_cand, s->p.min_p, mx);
    n_cand = apply_top_p(s, n_cand, s->p.top_p, mx, total);
    return n_cand;
}

/* Temperature and softmax numerators: prob[i] = exp((logit_i - max) / T).  Returns the sum. */
static double tempered_probs(struct sampler *s, int n)
{
    float mx = max_logit(s, n);
    double inv_t = 1.0 / (double)s->p.temp, sum = 0.0;
    for (int i = 0; i < n; i++) {
        s->prob[i] = expf((float)(((double)s->cand[i].logit - mx) * inv_t));
        sum += s->prob[i];
    }
    return sum;
}

static int check_args(const struct sampler *s, const float *logits, int n_vocab)
{
    return logits && n_vocab > 0 && n_vocab <= s->n_vocab;
}

int sampler_sample(struct sampler *s, const float *logits, int n_vocab)
{
    if (!check_args(s, logits, n_vocab))
        return STATUS_INVALID;
    int n = chain_truncate(s, logits, n_vocab);
    if (n == 1)
        return s->cand[0].id; /* nothing to draw: the RNG is not advanced */

    double sum = tempered_probs(s, n);
    double target = rng_uniform(s->rng) * sum, cum = 0.0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (s->prob[i] <= 0.0f)
            continue;
        cum += s->prob[i];
        last = i;
        /* strict: a zero-probability candidate can never be drawn, even when u == 0 */
        if (cum > target)
            return s->cand[i].id;
    }
    return s->cand[last].id; /* rounding left target just above the total */
}

int sampler_candidates(struct sampler *s, const float *logits, int n_vocab, int *ids, float *probs,
                       int max)
{
    if (!check_args(s, logits, n_vocab))
        return STATUS_INVALID;
    int n = chain_truncate(s, logits, n_vocab);
    int want = max < n ? max : n;
    if (want <= 0)
        return n;
    if (!s->sorted) { /* best first; the probabilities below follow the new order */
        cand_partial_sort(s->cand, (size_t)n, (size_t)want);
        s->sorted = 1;
    }
    double sum = 1.0;
    if (n == 1)
        s->prob[0] = 1.0f;
    else
        sum = tempered_probs(s, n);
    for (int i = 0; i < want; i++) {
        if (ids)
            ids[i] = s->cand[i].id;
        if (probs)
            probs[i] = (float)(s->prob[i] / sum);
    }
    return n;
}

// ---- state save / load ---------------------------------------------------------------------

/* Layout, little-endian: "KFSM", u32 version, u64 seed, u64 rng[4], u32 ring_len,
 * i32 ring[ring_len] oldest first. */
#define STATE_MAGIC   "KFSM"
#define STATE_VERSION 1u
#define STATE_HEADER  (4 + 4 + 8 + 32 + 4)

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t sampler_state_size(const struct sampler *s)
{
    return STATE_HEADER + 4 * (size_t)s->ring_len;
}

void sampler_state_save(const struct sampler *s, void *buf)
{
    unsigned char *p = buf;
    memcpy(p, STATE_MAGIC, 4);
    put_u32(p + 4, STATE_VERSION);
    put_u64(p + 8, s->seed);
    for (int i = 0; i < 4; i++)
        put_u64(p + 16 + 8 * i, s->rng[i]);
    put_u32(p + 48, (uint32_t)s->ring_len);
    p += STATE_HEADER;
    /* When the ring is full the oldest entry is the one at ring_head. */
    int start = s->ring_len == s->ring_cap ? s->ring_head : 0;
    for (int i = 0; i < s->ring_len; i++)
        put_u32(p + 4 * i, (uint32_t)s->ring[(start + i) % s->ring_cap]);
}

int sampler_state_load(struct sampler *s, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    if (!buf || n < STATE_HEADER || memcmp(p, STATE_MAGIC, 4) != 0 ||
        get_u32(p + 4) != STATE_VERSION)
        return STATUS_FORMAT;
    uint32_t len = get_u32(p + 48);
    if (len > (n - STATE_HEADER) / 4 || n != STATE_HEADER + 4 * (size_t)len)
        return STATUS_FORMAT;
    const unsigned char *toks = p + STATE_HEADER;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t t = get_u32(toks + 4 * i);
        if (t >= (uint32_t)s->n_vocab)
            return STATUS_FORMAT;
    }
    uint64_t rng[4];
    for (int i = 0; i < 4; i++)
        rng[i] = get_u64(p + 16 + 8 * i);
    if (!(rng[0] | rng[1] | rng[2] | rng[3]))
        return STATUS_FORMAT; /* xoshiro's one forbidden state */

    s->seed = get_u64(p + 8);
    memcpy(s->rng, rng, sizeof(rng));
    sampler_reset(s);
    uint32_t keep = len < (uint32_t)s->ring_cap ? len : (uint32_t)s->ring_cap;
    for (uint32_t i = len - keep; i < len; i++)
        sampler_accept(s, (int)get_u32(toks + 4 * i));
    return STATUS_OK;
}
