/*
 * test_kv_type.c — the KV cache's storage types (--kv-type, kv_cache.h's enum kv_type) on the
 * CPU side:
 *   - kv_round_q8_0 against a reference written here from the Q8_0 definition
 *     (docs: engine-reference.md; ggml's reference quantizer: d = amax/127, q = round half away
 *     from zero of x·(1/d), stored d in f16, value = f16(d)·q), bit for bit, on random rows with
 *     zeros, ties, tiny and large values; and that rounding a rounded row changes nothing (what
 *     lets snapshots move between the CPU and a q8_0 GPU cache any number of times);
 *   - a q8_0 cache stores rounded keys and values, an f16 one (CPU: f32) the values given;
 *   - a head size that is not a multiple of 32 is refused with a one-line message;
 *   - a snapshot taken under one type is refused (STATUS_INVALID) by a cache of the other;
 *   - the names.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "kv_sync.h"
#include "status.h"
#include "tap.h"

static uint64_t rng_state = 12345;

static uint64_t rng_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float rng_sym(void) /* [-1, 1) */
{
    return (float)((double)(rng_u64() >> 11) / 4503599627370496.0 - 1.0);
}

/* The Q8_0 value of x within its block of 32, from the definition (f16 through _Float16). */
static void ref_q8_0(const float *x, float *y)
{
    float amax = 0.0f;
    for (int e = 0; e < 32; e++)
        if (fabsf(x[e]) > amax)
            amax = fabsf(x[e]);
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    float dh = (float)(_Float16)d;
    for (int e = 0; e < 32; e++) {
        volatile float p = x[e] * id; /* one rounded product, as the C reference computes it */
        y[e] = dh * (float)(signed char)roundf(p);
    }
}

static void fill_row(float *x, int n, int kind)
{
    float scale = kind == 0 ? 1.0f : kind == 1 ? 1e-6f : kind == 2 ? 3e3f : 37.0f;
    for (int i = 0; i < n; i++) {
        x[i] = scale * rng_sym();
        if (kind == 3) /* multiples of amax/254: exact ties in x·(1/d) */
            x[i] = (float)((int)(x[i] / 37.0f * 254.0f)) * (37.0f / 254.0f);
        if (rng_u64() % 17 == 0)
            x[i] = 0.0f;
    }
    if (kind == 4) /* a block of zeros: d = 0 */
        memset(x, 0, 32 * sizeof(float));
}

static void test_rounding(void)
{
    enum { N = 256 };
    long bad = 0, moved = 0, rows = 0, changed = 0;
    for (int it = 0; it < 4000; it++) {
        float x[N], y[N], r[N], again[N];
        fill_row(x, N, it % 5);
        for (int b = 0; b < N; b += 32)
            ref_q8_0(x + b, r + b);
        memcpy(y, x, sizeof x);
        kv_round_q8_0(y, N);
        memcpy(again, y, sizeof y);
        kv_round_q8_0(again, N);
        rows++;
        bad += memcmp(y, r, sizeof y) != 0;
        int mv = 0; /* by value: a block whose scale rounds to 0 in f16 gives -0, then +0 */
        for (int i = 0; i < N; i++)
            mv |= again[i] != y[i];
        moved += mv;
        changed += memcmp(x, y, sizeof y) != 0;
    }
    ok(bad == 0, "kv_round_q8_0 = the Q8_0 definition bit for bit (%ld of %ld rows differ)", bad,
       rows);
    ok(moved == 0, "rounding a rounded row changes nothing (%ld of %ld rows moved)", moved, rows);
    ok(changed > rows / 2, "the rounding does round (%ld of %ld rows changed)", changed, rows);
    /* the error bound of the format: half a step, the step amax/127 rounded to f16 (2^-11 of
     * up to 127 steps) */
    float x[64], y[64], worst = 0.0f;
    for (int it = 0; it < 1000; it++) {
        fill_row(x, 64, 0);
        memcpy(y, x, sizeof x);
        kv_round_q8_0(y, 64);
        for (int b = 0; b < 64; b += 32) {
            float amax = 0.0f;
            for (int e = 0; e < 32; e++)
                amax = fmaxf(amax, fabsf(x[b + e]));
            for (int e = 0; amax > 0.0f && e < 32; e++)
                worst = fmaxf(worst, fabsf(y[b + e] - x[b + e]) / (amax / 127.0f));
        }
    }
    ok(worst <= 0.5f + 127.0f / 2048.0f,
       "every value within half a step of its block, f16 scale included (worst %.4f step)",
       worst);
}

static struct kv_cache *open_cache(int head_dim, enum kv_type type, char *err, size_t errlen)
{
    struct kv_shape sh = { .n_layer = 2, .n_head = 2, .n_head_kv = 1, .head_dim = head_dim,
                           .n_ctx = 64, .n_batch = 8, .scale = 0.125f };
    struct kv_params p = kv_params_default();
    p.policy = KV_POLICY_H2O;
    p.budget = 16;
    p.type = type;
    struct kv_cache *kv = NULL;
    if (kv_cache_new(&kv, &sh, &p, err, errlen) != STATUS_OK)
        return NULL;
    return kv;
}

static void test_cache(void)
{
    char err[256] = "";
    struct kv_cache *bad = open_cache(48, KV_TYPE_Q8_0, err, sizeof err);
    ok(!bad && strstr(err, "multiple of 32") && strstr(err, "48") && !strchr(err, '\n'),
       "q8_0 with head size 48 refused in one line: %s", err);
    kv_cache_free(bad);
    struct kv_cache *q = open_cache(64, KV_TYPE_Q8_0, err, sizeof err);
    struct kv_cache *f = open_cache(64, KV_TYPE_F16, err, sizeof err);
    if (!ok(q && f, "q8_0 and f16 caches of head size 64 open")) {
        kv_cache_free(q);
        kv_cache_free(f);
        return;
    }
    ok(kv_cache_params(q)->type == KV_TYPE_Q8_0, "the cache keeps its type");
    float k[64], v[64], rk[64], rv[64];
    fill_row(k, 64, 0);
    fill_row(v, 64, 2);
    memcpy(rk, k, sizeof k);
    memcpy(rv, v, sizeof v);
    kv_round_q8_0(rk, 64);
    kv_round_q8_0(rv, 64);
    struct kv_cache *both[2] = { q, f };
    for (int i = 0; i < 2; i++) {
        kv_cache_begin(both[i], 0, 1);
        for (int l = 0; l < 2; l++)
            kv_cache_store(both[i], l, 0, 0, k, v);
        kv_cache_commit_layer(both[i], 0, NULL);
        kv_cache_commit_layer(both[i], 1, NULL);
        kv_cache_end(both[i]);
    }
    struct kv_slots sq, sf;
    kv_cache_slots(q, 1, 0, &sq);
    kv_cache_slots(f, 1, 0, &sf);
    ok(!memcmp(sq.k, rk, sizeof rk) && !memcmp(sq.v, rv, sizeof rv),
       "q8_0: the stored key and value are the rounded ones");
    ok(!memcmp(sf.k, k, sizeof k) && !memcmp(sf.v, v, sizeof v),
       "f16 on the CPU: the values as given (f32)");
    void *buf = malloc(kv_cache_state_size(q));
    kv_cache_state_save(q, buf);
    ok(kv_cache_state_load(f, buf, kv_cache_state_size(q)) == STATUS_INVALID,
       "a q8_0 snapshot is refused by an f16 cache (the caller re-processes)");
    struct kv_cache *q2 = open_cache(64, KV_TYPE_Q8_0, err, sizeof err);
    ok(q2 && kv_cache_state_load(q2, buf, kv_cache_state_size(q)) == STATUS_OK &&
           kv_cache_n_past(q2) == 1,
       "and loads into a q8_0 one");
    kv_cache_free(q2);
    free(buf);
    kv_cache_free(q);
    kv_cache_free(f);
}

static void test_names(void)
{
    ok(kv_type_from_name("f16") == KV_TYPE_F16 && kv_type_from_name("q8_0") == KV_TYPE_Q8_0 &&
           kv_type_from_name("q4_0") == -1 && kv_type_from_name("") == -1,
       "type names parse; unknown ones are -1");
    ok(!strcmp(kv_type_name(KV_TYPE_F16), "f16") && !strcmp(kv_type_name(KV_TYPE_Q8_0), "q8_0"),
       "type names print");
    struct kv_params p = kv_params_default();
    char err[256] = "";
    p.type = (enum kv_type)7;
    ok(p.type != KV_TYPE_F16 && kv_params_check(&p, 64, err, sizeof err) == STATUS_INVALID &&
           strstr(err, "q8_0"),
       "an unknown type is refused, naming the valid ones: %s", err);
    ok(kv_params_default().type == KV_TYPE_F16, "the default is f16");
}

int main(void)
{
    test_names();
    test_rounding();
    test_cache();
    return done_testing();
}
