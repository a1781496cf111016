/*
 * test_kvshade.c — the key-token view's logic (ui/kvshade.c) on synthetic cache traces.
 *
 * A hand-made trace pins classes, head merging and every shade; random traces then check the
 * promises the view makes to the user: an evicted token is never shaded as kept, a token kept by
 * any layer is never shaded as evicted, the all-layers buckets follow the share of layers, and
 * retention counters equal a recount.  Formatting helpers are checked for exact text and for
 * fitting the width they are given.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h" /* only for the KV_TRACE_* values */
#include "kvshade.h"
#include "status.h"
#include "style.h"
#include "tap.h"
#include "wrap.h"

/* Trace one layer: positions with one flag value and a score of pos / 100. */
static void trace(struct kvshade *ks, int layer, const int *pos, int n, uint8_t flag)
{
    int32_t p[64];
    float s[64];
    uint8_t f[64];
    for (int i = 0; i < n; i++) {
        p[i] = pos[i];
        s[i] = (float)pos[i] / 100.0f;
        f[i] = flag;
    }
    kvshade_add_trace(ks, layer, p, s, f, n);
}

static void test_basics(void)
{
    struct kvshade *ks;

    ok(kvshade_new(0) == NULL && kvshade_new(-1) == NULL, "n_layer < 1 refused");
    ks = kvshade_new(4);
    ok(ks && kvshade_n_layer(ks) == 4 && kvshade_n_past(ks) == 0, "new: 4 layers, empty");
    ok(kvshade_shade(ks, KVSHADE_ALL, 0) == KVSHADE_SHADE_NONE, "empty: no shade");
    ok(kvshade_begin(ks, -1) == STATUS_INVALID, "begin(-1) invalid");
    ok(kvshade_begin(ks, 20) == STATUS_OK && kvshade_n_past(ks) == 20, "begin(20)");
    int all_evicted = 1;
    for (int p = 0; p < 20; p++)
        for (int l = 0; l < 4; l++)
            if (kvshade_class(ks, l, p) != KVSHADE_CLASS_EVICTED || kvshade_score(ks, l, p) != 0)
                all_evicted = 0;
    ok(all_evicted, "after begin every seen position is evicted with score 0");
    ok(kvshade_class(ks, 0, 20) == KVSHADE_CLASS_NOT_IN_CACHE &&
           kvshade_class(ks, 0, -1) == KVSHADE_CLASS_NOT_IN_CACHE &&
           kvshade_class(ks, 4, 3) == KVSHADE_CLASS_NOT_IN_CACHE,
       "outside the snapshot: not in cache");
    ok(kvshade_shade(ks, KVSHADE_ALL, 25) == KVSHADE_SHADE_NONE &&
           kvshade_shade(ks, 1, 25) == KVSHADE_SHADE_NONE,
       "positions past n_past are not shaded");
    ok(KVSHADE_TRACE_RECENT == KV_TRACE_RECENT && KVSHADE_TRACE_SINK == KV_TRACE_SINK &&
           KVSHADE_TRACE_KEY == KV_TRACE_KEY,
       "trace flags match kv_cache_trace's");

    /* sinks 0,1 everywhere; recent 14..19 everywhere; keys differ per layer */
    static const int sinks[] = {0, 1}, recent[] = {14, 15, 16, 17, 18, 19};
    for (int l = 0; l < 4; l++) {
        trace(ks, l, sinks, 2, KVSHADE_TRACE_SINK);
        trace(ks, l, recent, 6, KVSHADE_TRACE_RECENT);
    }
    static const int k0[] = {5, 9}, k1[] = {5, 7}, k2[] = {5}, k3[] = {9};
    trace(ks, 0, k0, 2, KVSHADE_TRACE_KEY);
    trace(ks, 1, k1, 2, KVSHADE_TRACE_KEY);
    trace(ks, 2, k2, 1, KVSHADE_TRACE_KEY);
    trace(ks, 3, k3, 1, KVSHADE_TRACE_KEY);

    ok(kvshade_class(ks, 0, 5) == KVSHADE_CLASS_KEY &&
           kvshade_class(ks, 3, 5) == KVSHADE_CLASS_EVICTED,
       "classes per layer");
    ok(fabsf(kvshade_score(ks, 1, 7) - 0.07f) < 1e-6f && kvshade_score(ks, 0, 7) == 0.0f,
       "scores per layer");
    ok(kvshade_kept_layers(ks, 5) == 3 && kvshade_kept_layers(ks, 7) == 1 &&
           kvshade_kept_layers(ks, 9) == 2 && kvshade_kept_layers(ks, 3) == 0,
       "kept layers per token");
    ok(kvshade_shade(ks, 0, 5) == KVSHADE_SHADE_KEY &&
           kvshade_shade(ks, 3, 5) == KVSHADE_SHADE_EVICTED &&
           kvshade_shade(ks, 2, 15) == KVSHADE_SHADE_RECENT &&
           kvshade_shade(ks, 1, 0) == KVSHADE_SHADE_SINK,
       "one-layer shades follow the class");
    ok(kvshade_shade(ks, KVSHADE_ALL, 5) == KVSHADE_SHADE_HIGH, "all: 3/4 layers -> high");
    ok(kvshade_shade(ks, KVSHADE_ALL, 9) == KVSHADE_SHADE_MID, "all: 2/4 layers -> mid");
    ok(kvshade_shade(ks, KVSHADE_ALL, 7) == KVSHADE_SHADE_LOW, "all: 1/4 layers -> low");
    ok(kvshade_shade(ks, KVSHADE_ALL, 3) == KVSHADE_SHADE_EVICTED, "all: 0 layers -> evicted");
    ok(kvshade_shade(ks, KVSHADE_ALL, 16) == KVSHADE_SHADE_RECENT, "all: recent everywhere");
    ok(kvshade_shade(ks, KVSHADE_ALL, 1) == KVSHADE_SHADE_SINK, "all: sink everywhere");

    /* a sliding-window layer holds 16 without a role: kept everywhere, not recent everywhere */
    kvshade_begin(ks, 20);
    for (int l = 0; l < 4; l++)
        trace(ks, l, recent, 6, l == 1 ? 0 : KVSHADE_TRACE_RECENT);
    ok(kvshade_class(ks, 1, 16) == KVSHADE_CLASS_KEPT &&
           kvshade_shade(ks, KVSHADE_ALL, 16) == KVSHADE_SHADE_ALL &&
           kvshade_shade(ks, 1, 16) == KVSHADE_SHADE_KEPT,
       "entry without flags is kept; mixed roles in every layer -> all");

    /* two KV heads of one layer disagree: strongest role, highest score, kept if any */
    kvshade_begin(ks, 20);
    int32_t p0[] = {8, 9}, p1[] = {8};
    float s0[] = {0.5f, 0.25f}, s1[] = {0.2f};
    uint8_t f0[] = {KVSHADE_TRACE_KEY, KVSHADE_TRACE_KEY}, f1[] = {KVSHADE_TRACE_RECENT};
    kvshade_add_trace(ks, 2, p0, s0, f0, 2);
    kvshade_add_trace(ks, 2, p1, s1, f1, 1);
    ok(kvshade_class(ks, 2, 8) == KVSHADE_CLASS_RECENT && kvshade_score(ks, 2, 8) == 0.5f,
       "head merge: recent beats key, max score");
    ok(kvshade_class(ks, 2, 9) == KVSHADE_CLASS_KEY, "head merge: one head keeping is enough");
    long kept, seen;
    kvshade_retention(ks, 2, &kept, &seen);
    ok(kept == 2 && seen == 20, "retention counts a token once per layer (2/20)");
    kvshade_retention(ks, KVSHADE_ALL, &kept, &seen);
    ok(kept == 2 && seen == 80, "retention over all layers (2/80)");
    kvshade_retention(ks, 9, &kept, &seen);
    ok(kept == 0 && seen == 0, "retention of a bad layer is 0/0");

    int32_t bad[] = {-1, 20, 1000};
    ok(kvshade_add_trace(ks, 0, bad, NULL, NULL, 3) == STATUS_OK && kvshade_kept_layers(ks, 0) == 0,
       "positions outside the snapshot are skipped");
    ok(kvshade_add_trace(ks, 4, p0, s0, f0, 2) == STATUS_INVALID &&
           kvshade_add_trace(ks, -1, p0, s0, f0, 2) == STATUS_INVALID &&
           kvshade_add_trace(ks, 0, p0, s0, f0, -1) == STATUS_INVALID,
       "bad layer or count refused");
    ok(kvshade_add_trace(ks, 0, p1, NULL, NULL, 1) == STATUS_OK &&
           kvshade_class(ks, 0, 8) == KVSHADE_CLASS_KEPT && kvshade_score(ks, 0, 8) == 0.0f,
       "trace without scores and flags: kept, score 0");
    ok(kvshade_set(ks, 0, 8, KVSHADE_CLASS_EVICTED, 0) == STATUS_OK &&
           kvshade_class(ks, 0, 8) == KVSHADE_CLASS_EVICTED,
       "set can evict");
    kvshade_retention(ks, 0, &kept, &seen);
    ok(kept == 0, "and the kept counter follows");
    ok(kvshade_set(ks, 0, 20, KVSHADE_CLASS_KEY, 1) == STATUS_INVALID &&
           kvshade_set(ks, 0, 1, KVSHADE_CLASS_NOT_IN_CACHE, 1) == STATUS_INVALID &&
           kvshade_set(ks, 0, 1, KVSHADE_CLASS_COUNT, 1) == STATUS_INVALID,
       "set refuses cells outside the snapshot and bad classes");
    ok(kvshade_begin(ks, 100000) == STATUS_OK && kvshade_kept_layers(ks, 99999) == 0 &&
           kvshade_class(ks, 3, 99999) == KVSHADE_CLASS_EVICTED,
       "snapshot grows");
    kvshade_free(ks);
    kvshade_free(NULL);
}

static void test_buckets(void)
{
    static const struct {
        int L, kept;
        enum kvshade_shade want;
    } t[] = {
        {3, 0, KVSHADE_SHADE_EVICTED}, {3, 1, KVSHADE_SHADE_LOW},   {3, 2, KVSHADE_SHADE_MID},
        {3, 3, KVSHADE_SHADE_ALL},     {32, 1, KVSHADE_SHADE_LOW},  {32, 10, KVSHADE_SHADE_LOW},
        {32, 11, KVSHADE_SHADE_MID},   {32, 21, KVSHADE_SHADE_MID}, {32, 22, KVSHADE_SHADE_HIGH},
        {32, 31, KVSHADE_SHADE_HIGH},  {32, 32, KVSHADE_SHADE_ALL}, {1, 1, KVSHADE_SHADE_ALL},
        {1, 0, KVSHADE_SHADE_EVICTED}, {2, 1, KVSHADE_SHADE_MID},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct kvshade *ks = kvshade_new(t[i].L);
        kvshade_begin(ks, 1);
        for (int l = 0; l < t[i].kept; l++)
            kvshade_set(ks, l, 0, KVSHADE_CLASS_KEY, 1.0f);
        enum kvshade_shade got = kvshade_shade(ks, KVSHADE_ALL, 0);
        ok(got == t[i].want, "%d of %d layers -> %s (got %s)", t[i].kept, t[i].L,
           kvshade_shade_label(t[i].want), kvshade_shade_label(got));
        kvshade_free(ks);
    }
}

static void test_random(void)
{
    unsigned seed = 99;
    int never_kept = 1, never_evicted = 1, buckets = 1, counters = 1, layer_ok = 1;
    for (int t = 0; t < 300; t++) {
        seed = seed * 1103515245u + 12345u;
        int L = 1 + (int)((seed >> 16) % 40), n_past = (int)((seed >> 8) % 300);
        struct kvshade *ks = kvshade_new(L);
        kvshade_begin(ks, n_past + (t % 2)); /* reuse: the second begin must reset */
        kvshade_begin(ks, n_past);
        for (int l = 0; l < L; l++) {
            for (int h = 0; h < 2; h++) { /* two KV heads per layer */
                int32_t pos[300];
                uint8_t fl[300];
                float sc[300];
                int n = 0;
                for (int p = 0; p < n_past; p++) {
                    seed = seed * 1103515245u + 12345u;
                    if ((seed >> 16) % 4 == 0) {
                        pos[n] = p;
                        fl[n] = (uint8_t)((seed >> 20) % 8);
                        sc[n++] = (float)((seed >> 8) % 1000) / 1000.0f;
                    }
                }
                kvshade_add_trace(ks, l, pos, sc, fl, n);
            }
        }
        for (int l = 0; l < L; l++) {
            long kept, seen, count = 0;
            kvshade_retention(ks, l, &kept, &seen);
            for (int p = 0; p < n_past; p++) {
                enum kvshade_class c = kvshade_class(ks, l, p);
                enum kvshade_shade s = kvshade_shade(ks, l, p);
                count += c != KVSHADE_CLASS_EVICTED;
                if ((c == KVSHADE_CLASS_EVICTED) != (s == KVSHADE_SHADE_EVICTED))
                    layer_ok = 0;
            }
            if (kept != count || seen != n_past)
                counters = 0;
        }
        for (int p = 0; p < n_past; p++) {
            int k = kvshade_kept_layers(ks, p);
            enum kvshade_shade s = kvshade_shade(ks, KVSHADE_ALL, p);
            if (k == 0 && s != KVSHADE_SHADE_EVICTED)
                never_kept = 0;
            if (k > 0 && s == KVSHADE_SHADE_EVICTED)
                never_evicted = 0;
            int full =
                s == KVSHADE_SHADE_ALL || s == KVSHADE_SHADE_RECENT || s == KVSHADE_SHADE_SINK;
            if ((k == L) != full)
                buckets = 0;
            if (k > 0 && k < L) {
                enum kvshade_shade want = 3 * k <= L       ? KVSHADE_SHADE_LOW
                                          : 3 * k <= 2 * L ? KVSHADE_SHADE_MID
                                                           : KVSHADE_SHADE_HIGH;
                if (s != want)
                    buckets = 0;
            }
        }
        kvshade_free(ks);
    }
    ok(never_kept, "random traces: a token kept by no layer is always shaded evicted");
    ok(never_evicted, "random traces: a token kept by some layer is never shaded evicted");
    ok(buckets, "random traces: all-layers buckets follow the share of layers");
    ok(counters, "random traces: retention counters equal a recount");
    ok(layer_ok, "random traces: one-layer shade is evicted exactly when the class is");
}

static void test_legend(void)
{
    enum kvshade_shade one[16], all[16];
    int n1 = kvshade_legend(0, one, 16), na = kvshade_legend(KVSHADE_ALL, all, 16);

    ok(n1 == 6 && na == 8, "legend sizes: 6 for a layer, 8 for all layers");
    ok(kvshade_legend(0, one, 2) == 2 && one[0] == KVSHADE_SHADE_KEY, "legend truncated to max");
    ok(kvshade_legend(0, one, -1) == 0, "legend with no room");
    n1 = kvshade_legend(0, one, 16);
    for (int mode = 0; mode < 2; mode++) {
        const enum kvshade_shade *v = mode ? all : one;
        int n = mode ? na : n1;
        for (int colors = 0; colors < 2; colors++) {
            int distinct = 1, cursor = 1;
            struct ui_look cur = ui_style_look(UI_STYLE_KV_CURSOR, 0, colors);
            for (int i = 0; i < n; i++) {
                struct ui_look a = ui_style_look(kvshade_shade_style(v[i]), 0, colors);
                if (a.fg == cur.fg && a.bg == cur.bg && a.attrs == cur.attrs)
                    cursor = 0;
                for (int j = 0; j < i; j++) {
                    struct ui_look b = ui_style_look(kvshade_shade_style(v[j]), 0, colors);
                    if (a.fg == b.fg && a.bg == b.bg && a.attrs == b.attrs)
                        distinct = 0;
                }
            }
            ok(distinct, "%s legend, %s: every entry looks different",
               mode ? "all-layers" : "layer", colors ? "colour" : "monochrome");
            ok(cursor, "%s legend, %s: the cursor differs from every entry",
               mode ? "all-layers" : "layer", colors ? "colour" : "monochrome");
        }
    }
    int labels = 1;
    for (int s = 0; s < KVSHADE_SHADE_COUNT; s++)
        for (int t = 0; t < s; t++)
            if (!strcmp(kvshade_shade_label((enum kvshade_shade)s),
                        kvshade_shade_label((enum kvshade_shade)t)))
                labels = 0;
    ok(labels, "shade labels are unique");
    ok(kvshade_shade_style(KVSHADE_SHADE_NONE) == UI_STYLE_NORMAL &&
           kvshade_shade_style(KVSHADE_SHADE_KEY) == UI_STYLE_KV_KEY &&
           kvshade_shade_style((enum kvshade_shade)77) == UI_STYLE_NORMAL &&
           !strcmp(kvshade_shade_label((enum kvshade_shade)77), "?"),
       "shade styles and out-of-range shades");
}

static void test_format(void)
{
    char b[256];
    size_t n;

    kvshade_format_bytes(0, 0, b, sizeof(b));
    ok(!strcmp(b, "0 B"), "bytes: 0 B");
    kvshade_format_bytes(512, 0, b, sizeof(b));
    ok(!strcmp(b, "512 B"), "bytes: 512 B");
    kvshade_format_bytes(1536, 0, b, sizeof(b));
    ok(!strcmp(b, "1.5 KiB"), "bytes: 1.5 KiB");
    kvshade_format_bytes(12897485, 0, b, sizeof(b));
    ok(!strcmp(b, "12.3 MiB"), "bytes: 12.3 MiB");
    kvshade_format_bytes((size_t)3 << 29, 0, b, sizeof(b));
    ok(!strcmp(b, "1.50 GiB"), "bytes: 1.50 GiB");
    kvshade_format_bytes((size_t)32 << 20, 1, b, sizeof(b));
    ok(!strcmp(b, "32.0M"), "bytes short: 32.0M");
    n = kvshade_format_bytes((size_t)32 << 20, 0, b, 4);
    ok(n == 3 && !strcmp(b, "32."), "bytes: truncated to the buffer");

    ok(kvshade_saved_percent(0, 1000) == 100 && kvshade_saved_percent(1000, 1000) == 0 &&
           kvshade_saved_percent(10, 0) == 0 && kvshade_saved_percent(2000, 1000) == 0,
       "saved percent: ends");
    ok(kvshade_saved_percent(999, 1000) == 1 && kvshade_saved_percent(1, 1000) == 99 &&
           kvshade_saved_percent(590, 1000) == 41,
       "saved percent: a real saving is never 0%%, a partial one never 100%%");

    size_t used = 12897485, budget = (size_t)32 << 20, full = 21860144;
    kvshade_format_budget(used, budget, full, 80, b, sizeof(b));
    ok(!strcmp(b, "KV 12.3 MiB / 32.0 MiB (saved 41%)"), "budget line: \"%s\"", b);
    kvshade_format_budget(used, budget, full, 30, b, sizeof(b));
    ok(!strcmp(b, "KV 12.3M/32.0M (saved 41%)"), "budget at 30 columns: \"%s\"", b);
    kvshade_format_budget(used, budget, full, 25, b, sizeof(b));
    ok(!strcmp(b, "KV 12.3M/32.0M saved 41%"), "budget at 25 columns: \"%s\"", b);
    kvshade_format_budget(used, budget, full, 20, b, sizeof(b));
    ok(!strcmp(b, "KV 12.3M saved 41%"), "budget at 20 columns: \"%s\"", b);
    kvshade_format_budget(used, budget, full, 15, b, sizeof(b));
    ok(!strcmp(b, "KV 12.3M/32.0M"), "budget at 15 columns: \"%s\"", b);
    kvshade_format_budget(used, budget, full, 6, b, sizeof(b));
    ok(!strcmp(b, "12.3M"), "budget at 6 columns: \"%s\"", b);
    n = kvshade_format_budget(used, budget, full, 3, b, sizeof(b));
    ok(n == 0 && b[0] == '\0', "budget at 3 columns: empty");
    kvshade_format_budget(used, 0, used, 80, b, sizeof(b));
    ok(!strcmp(b, "KV 12.3 MiB (full cache)"), "no budget: full cache");
    int fits = 1;
    for (int w = 0; w < 60; w++) {
        n = kvshade_format_budget(used, budget, full, w, b, sizeof(b));
        if ((int)n > w || strlen(b) != n)
            fits = 0;
    }
    ok(fits, "budget line fits every width");
    int worded = 1;
    for (int w = 0; w < 60; w++) {
        kvshade_format_budget(used, budget, full, w, b, sizeof(b));
        const char *pc = strchr(b, '%');
        /* a percentage only ever comes as "saved N%" */
        if (strchr(b, '-') || (pc && !strstr(b, "saved 41%")))
            worded = 0;
    }
    ok(worded, "the saving reads \"saved N%%\" at every width, never \"-N%%\"");

    kvshade_format_bar(0.5, 10, 1, b, sizeof(b));
    ok(!strcmp(b, "#####....."), "ascii bar 50%%");
    kvshade_format_bar(0.001, 10, 1, b, sizeof(b));
    ok(!strcmp(b, "#........."), "ascii bar: a sliver shows");
    kvshade_format_bar(0.999, 10, 1, b, sizeof(b));
    ok(!strcmp(b, "#########."), "ascii bar: almost full is not full");
    kvshade_format_bar(1.0, 4, 0, b, sizeof(b));
    ok(!strcmp(b, "\xE2\x96\x88\xE2\x96\x88\xE2\x96\x88\xE2\x96\x88"), "bar: full");
    kvshade_format_bar(0.0, 3, 0, b, sizeof(b));
    ok(!strcmp(b, "   "), "bar: empty");
    kvshade_format_bar(0.5625, 2, 0, b, sizeof(b));
    ok(!strcmp(b, "\xE2\x96\x88\xE2\x96\x8F"), "bar: 9/16 of 2 cells = 1 and 1/8");
    kvshade_format_bar(NAN, 3, 1, b, sizeof(b));
    ok(!strcmp(b, "..."), "bar: NaN is empty");
    kvshade_format_bar(7.0, 2, 1, b, sizeof(b));
    ok(!strcmp(b, "##"), "bar: above 1 is full");
    n = kvshade_format_bar(0.5, 0, 0, b, sizeof(b));
    ok(n == 0 && b[0] == '\0', "bar: zero width");
    int widths = 1, mono = 1, prev = -1;
    for (int i = 0; i <= 1000; i++) {
        double f = i / 1000.0;
        kvshade_format_bar(f, 7, 0, b, sizeof(b));
        if (wrap_str_width(b, strlen(b), 0) != 7)
            widths = 0;
        int eighths = 0; /* count filled eighths */
        for (size_t k = 0; k < strlen(b);) {
            size_t u;
            uint32_t cp = wrap_decode(b + k, strlen(b) - k, &u);
            if (cp == 0x2588)
                eighths += 8;
            else if (cp >= 0x2589 && cp <= 0x258F)
                eighths += 0x2590 - (int)cp;
            k += u;
        }
        if (eighths < prev || (f > 0 && eighths == 0) || (f < 1 && eighths == 56))
            mono = 0;
        prev = eighths;
    }
    ok(widths, "bar: always exactly its width in columns");
    ok(mono, "bar: grows with the fraction, slivers show, never full below 1");

    struct kvshade *ks = kvshade_new(32);
    kvshade_begin(ks, 100);
    for (int p = 0; p < 45; p++)
        kvshade_set(ks, 3, p, KVSHADE_CLASS_KEY, 1.0f);
    n = kvshade_format_retention(ks, 3, 20, 1, b, sizeof(b));
    ok(!strcmp(b, "L 3 #####......  45%") && n == 20, "retention row: \"%s\"", b);
    kvshade_format_retention(ks, 3, 20, 0, b, sizeof(b));
    ok(wrap_str_width(b, strlen(b), 0) == 20, "retention row (UTF-8) is exactly 20 columns");
    kvshade_format_retention(ks, KVSHADE_ALL, 20, 1, b, sizeof(b));
    ok(!strncmp(b, "all ", 4) && strstr(b, "  1%"), "all-layers retention row: \"%s\"", b);
    kvshade_format_retention(ks, 0, 20, 1, b, sizeof(b));
    ok(strstr(b, "  0%") != NULL, "nothing kept: 0%%");
    for (int p = 0; p < 99; p++)
        kvshade_set(ks, 5, p, KVSHADE_CLASS_RECENT, 0.0f);
    kvshade_format_retention(ks, 5, 20, 1, b, sizeof(b));
    ok(strstr(b, " 99%") != NULL, "99 of 100 kept shows 99%%, not 100%%");
    kvshade_format_retention(ks, 3, 8, 1, b, sizeof(b));
    ok(!strcmp(b, "L 3  45%"), "narrow retention row drops the bar: \"%s\"", b);
    n = kvshade_format_retention(ks, 3, 4, 1, b, sizeof(b));
    ok(n == 4 && !strcmp(b, "L 3 "), "very narrow retention row is cut to the width");

    kvshade_begin(ks, 10);
    for (int l = 0; l < 32; l++)
        if (l <= 3 || l == 5 || l >= 7)
            kvshade_set(ks, l, 4, KVSHADE_CLASS_KEY, (float)l / 10.0f);
    kvshade_format_layers(ks, 4, b, sizeof(b));
    ok(!strcmp(b, "0-3,5,7-31"), "layers as ranges: \"%s\"", b);
    kvshade_format_layers(ks, 2, b, sizeof(b));
    ok(!strcmp(b, "none"), "no layers: none");
    n = kvshade_format_layers(ks, 4, b, 6);
    ok(n == 5 && !strcmp(b, "0-3,5"), "layer list cut at a whole range");
    kvshade_format_token(ks, 4, KVSHADE_ALL, b, sizeof(b));
    ok(!strcmp(b, "pos 4 kept in 30/32 layers"), "token, all layers: \"%s\"", b);
    kvshade_format_token(ks, 4, 5, b, sizeof(b));
    ok(!strcmp(b, "pos 4 L5 key 0.5"), "token, one layer: \"%s\"", b);
    kvshade_format_token(ks, 4, 6, b, sizeof(b));
    ok(!strcmp(b, "pos 4 L6 evicted 0"), "token, evicted layer: \"%s\"", b);
    kvshade_format_token(ks, 12, 6, b, sizeof(b));
    ok(!strcmp(b, "pos 12 not in cache yet"), "token past the snapshot");
    kvshade_format_token_layer(ks, 4, 5, b, sizeof(b));
    ok(!strcmp(b, "L 5 key        0.5"), "detail row: \"%s\"", b);
    kvshade_free(ks);
}

int main(void)
{
    test_basics();
    test_buckets();
    test_random();
    test_legend();
    test_format();
    return done_testing();
}
