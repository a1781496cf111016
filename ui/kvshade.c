/*
 * kvshade.c — per-token, per-layer cache classes and the key-token view built on them
 * (see kvshade.h).
 *
 * Storage is token-major (pos × n_layer bytes of class, and as many floats of score), because
 * the view asks per token — its shade over all layers, its details — far more often than per
 * layer; per-layer retention is kept as counters updated on every class change, so the panel
 * does not rescan the transcript on each redraw.
 */
#include "config.h"
#include "kvshade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

struct kvshade {
    int n_layer;
    int n_past;   /* positions in the snapshot */
    size_t cap;   /* positions allocated */
    uint8_t *cls; /* (cap, n_layer): enum kvshade_class */
    float *score; /* (cap, n_layer) */
    long *kept;   /* (n_layer): positions held by each layer */
};

/* How strong a role is when heads disagree (higher wins). */
static const int class_rank[KVSHADE_CLASS_COUNT] = {
    [KVSHADE_CLASS_NOT_IN_CACHE] = 0, [KVSHADE_CLASS_EVICTED] = 1, [KVSHADE_CLASS_KEPT] = 2,
    [KVSHADE_CLASS_KEY] = 3,          [KVSHADE_CLASS_RECENT] = 4,  [KVSHADE_CLASS_SINK] = 5,
};

static int is_kept(int c)
{
    return c >= KVSHADE_CLASS_KEPT && c < KVSHADE_CLASS_COUNT;
}

struct kvshade *kvshade_new(int n_layer)
{
    if (n_layer < 1)
        return NULL;
    struct kvshade *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return NULL;
    ks->n_layer = n_layer;
    ks->kept = calloc((size_t)n_layer, sizeof(long));
    if (!ks->kept) {
        free(ks);
        return NULL;
    }
    return ks;
}

void kvshade_free(struct kvshade *ks)
{
    if (!ks)
        return;
    free(ks->cls);
    free(ks->score);
    free(ks->kept);
    free(ks);
}

int kvshade_n_layer(const struct kvshade *ks)
{
    return ks->n_layer;
}

int kvshade_n_past(const struct kvshade *ks)
{
    return ks->n_past;
}

int kvshade_begin(struct kvshade *ks, int n_past)
{
    size_t L = (size_t)ks->n_layer;

    if (n_past < 0)
        return STATUS_INVALID;
    if ((size_t)n_past > ks->cap) {
        size_t cap = ks->cap ? ks->cap : 256;
        while (cap < (size_t)n_past)
            cap *= 2;
        uint8_t *c = malloc(cap * L);
        float *s = malloc(cap * L * sizeof(float));
        if (!c || !s) {
            free(c);
            free(s);
            return STATUS_NOMEM;
        }
        free(ks->cls);
        free(ks->score);
        ks->cls = c;
        ks->score = s;
        ks->cap = cap;
    }
    ks->n_past = n_past;
    if (n_past) {
        memset(ks->cls, KVSHADE_CLASS_EVICTED, (size_t)n_past * L);
        memset(ks->score, 0, (size_t)n_past * L * sizeof(float));
    }
    memset(ks->kept, 0, L * sizeof(long));
    return STATUS_OK;
}

/* Merge (cls, score) into a cell, keeping the kept counter right. */
static void cell_merge(struct kvshade *ks, int layer, int pos, int cls, float score)
{
    size_t i = (size_t)pos * (size_t)ks->n_layer + (size_t)layer;
    int old = ks->cls[i];

    if (class_rank[cls] > class_rank[old]) {
        ks->cls[i] = (uint8_t)cls;
        ks->kept[layer] += is_kept(cls) - is_kept(old);
    }
    if (score > ks->score[i])
        ks->score[i] = score;
}

static int class_of_flags(unsigned f)
{
    if (f & KVSHADE_TRACE_SINK)
        return KVSHADE_CLASS_SINK;
    if (f & KVSHADE_TRACE_RECENT)
        return KVSHADE_CLASS_RECENT;
    if (f & KVSHADE_TRACE_KEY)
        return KVSHADE_CLASS_KEY;
    return KVSHADE_CLASS_KEPT;
}

int kvshade_add_trace(struct kvshade *ks, int layer, const int32_t *pos, const float *score,
                      const uint8_t *flags, int n)
{
    if (layer < 0 || layer >= ks->n_layer || n < 0 || (n > 0 && !pos))
        return STATUS_INVALID;
    for (int i = 0; i < n; i++) {
        if (pos[i] < 0 || pos[i] >= ks->n_past)
            continue;
        cell_merge(ks, layer, pos[i], class_of_flags(flags ? flags[i] : 0u),
                   score ? score[i] : 0.0f);
    }
    return STATUS_OK;
}

int kvshade_set(struct kvshade *ks, int layer, int pos, enum kvshade_class cls, float score)
{
    if (layer < 0 || layer >= ks->n_layer || pos < 0 || pos >= ks->n_past ||
        (int)cls < KVSHADE_CLASS_EVICTED || cls >= KVSHADE_CLASS_COUNT)
        return STATUS_INVALID;
    size_t i = (size_t)pos * (size_t)ks->n_layer + (size_t)layer;
    ks->kept[layer] += is_kept((int)cls) - is_kept(ks->cls[i]);
    ks->cls[i] = (uint8_t)cls;
    ks->score[i] = score;
    return STATUS_OK;
}

static int in_snapshot(const struct kvshade *ks, int layer, int pos)
{
    return layer >= 0 && layer < ks->n_layer && pos >= 0 && pos < ks->n_past;
}

enum kvshade_class kvshade_class(const struct kvshade *ks, int layer, int pos)
{
    if (!in_snapshot(ks, layer, pos))
        return KVSHADE_CLASS_NOT_IN_CACHE;
    return (enum kvshade_class)ks->cls[(size_t)pos * (size_t)ks->n_layer + (size_t)layer];
}

float kvshade_score(const struct kvshade *ks, int layer, int pos)
{
    if (!in_snapshot(ks, layer, pos))
        return 0.0f;
    return ks->score[(size_t)pos * (size_t)ks->n_layer + (size_t)layer];
}

int kvshade_kept_layers(const struct kvshade *ks, int pos)
{
    int k = 0;
    if (!in_snapshot(ks, 0, pos))
        return 0;
    const uint8_t *c = ks->cls + (size_t)pos * (size_t)ks->n_layer;
    for (int l = 0; l < ks->n_layer; l++)
        k += is_kept(c[l]);
    return k;
}

enum kvshade_shade kvshade_shade(const struct kvshade *ks, int layer, int pos)
{
    static const enum kvshade_shade of_class[KVSHADE_CLASS_COUNT] = {
        KVSHADE_SHADE_NONE, KVSHADE_SHADE_EVICTED, KVSHADE_SHADE_KEPT,
        KVSHADE_SHADE_KEY,  KVSHADE_SHADE_RECENT,  KVSHADE_SHADE_SINK,
    };
    if (layer != KVSHADE_ALL)
        return of_class[kvshade_class(ks, layer, pos)];
    if (!in_snapshot(ks, 0, pos))
        return KVSHADE_SHADE_NONE;

    const uint8_t *c = ks->cls + (size_t)pos * (size_t)ks->n_layer;
    int L = ks->n_layer, kept = 0, recent = 0, sink = 0;
    for (int l = 0; l < L; l++) {
        kept += is_kept(c[l]);
        recent += c[l] == KVSHADE_CLASS_RECENT;
        sink += c[l] == KVSHADE_CLASS_SINK;
    }
    if (kept == 0)
        return KVSHADE_SHADE_EVICTED;
    if (kept == L)
        return recent == L ? KVSHADE_SHADE_RECENT
               : sink == L ? KVSHADE_SHADE_SINK
                           : KVSHADE_SHADE_ALL;
    if (3 * kept <= L)
        return KVSHADE_SHADE_LOW;
    if (3 * kept <= 2 * L)
        return KVSHADE_SHADE_MID;
    return KVSHADE_SHADE_HIGH;
}

enum ui_style kvshade_shade_style(enum kvshade_shade sh)
{
    static const enum ui_style st[KVSHADE_SHADE_COUNT] = {
        UI_STYLE_NORMAL,        UI_STYLE_KV_EVICTED,   UI_STYLE_KV_KEPT,      UI_STYLE_KV_KEY,
        UI_STYLE_KV_RECENT,     UI_STYLE_KV_SINK,      UI_STYLE_KV_SHARE_LOW, UI_STYLE_KV_SHARE_MID,
        UI_STYLE_KV_SHARE_HIGH, UI_STYLE_KV_SHARE_ALL,
    };
    return (int)sh >= 0 && sh < KVSHADE_SHADE_COUNT ? st[sh] : UI_STYLE_NORMAL;
}

const char *kvshade_shade_label(enum kvshade_shade sh)
{
    static const char *const lab[KVSHADE_SHADE_COUNT] = {
        "not cached", "evicted",      "kept",         "key",         "recent",
        "sink",       "<=1/3 layers", "<=2/3 layers", ">2/3 layers", "all layers",
    };
    return (int)sh >= 0 && sh < KVSHADE_SHADE_COUNT ? lab[sh] : "?";
}

int kvshade_legend(int layer, enum kvshade_shade *out, int max)
{
    static const enum kvshade_shade one[] = {
        KVSHADE_SHADE_KEY,  KVSHADE_SHADE_RECENT,  KVSHADE_SHADE_SINK,
        KVSHADE_SHADE_KEPT, KVSHADE_SHADE_EVICTED, KVSHADE_SHADE_NONE,
    };
    static const enum kvshade_shade all[] = {
        KVSHADE_SHADE_ALL,     KVSHADE_SHADE_HIGH,   KVSHADE_SHADE_MID,  KVSHADE_SHADE_LOW,
        KVSHADE_SHADE_EVICTED, KVSHADE_SHADE_RECENT, KVSHADE_SHADE_SINK, KVSHADE_SHADE_NONE,
    };
    const enum kvshade_shade *src = layer == KVSHADE_ALL ? all : one;
    int n = layer == KVSHADE_ALL ? (int)(sizeof(all) / sizeof(all[0]))
                                 : (int)(sizeof(one) / sizeof(one[0]));
    if (n > max)
        n = max < 0 ? 0 : max;
    for (int i = 0; i < n; i++)
        out[i] = src[i];
    return n;
}

void kvshade_retention(const struct kvshade *ks, int layer, long *kept, long *seen)
{
    *kept = 0;
    *seen = 0;
    if (layer == KVSHADE_ALL) {
        for (int l = 0; l < ks->n_layer; l++)
            *kept += ks->kept[l];
        *seen = (long)ks->n_past * ks->n_layer;
    } else if (layer >= 0 && layer < ks->n_layer) {
        *kept = ks->kept[layer];
        *seen = ks->n_past;
    }
}

// ---- text ------------------------------------------------------------------------------------

size_t kvshade_format_bytes(size_t bytes, int short_form, char *buf, size_t n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    static const char *const unit_short[] = {"B", "K", "M", "G", "T"};
    double v = (double)bytes;
    int u = 0, len;

    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    /* one decimal below 1000 of a unit, none for bytes; 1000..1023 shows as "1000 KiB" */
    const char *sp = short_form ? "" : " ";
    const char *un = short_form ? unit_short[u] : unit[u];
    if (u == 0)
        len = snprintf(buf, n, "%zu%s%s", bytes, sp, un);
    else if (v < 10.0 && u >= 3)
        len = snprintf(buf, n, "%.2f%s%s", v, sp, un);
    else
        len = snprintf(buf, n, "%.1f%s%s", v, sp, un);
    if (len < 0)
        return 0;
    return n == 0 ? 0 : (size_t)len < n ? (size_t)len : n - 1;
}

int kvshade_saved_percent(size_t used, size_t full)
{
    if (full == 0 || used >= full)
        return 0;
    double s = 100.0 * (double)(full - used) / (double)full;
    int p = (int)(s + 0.5);
    /* never round a real saving to 0 or a partial one to 100 */
    if (p == 0)
        p = 1;
    if (p == 100 && used > 0)
        p = 99;
    return p;
}

size_t kvshade_format_budget(size_t used, size_t budget, size_t full, int width, char *buf,
                             size_t n)
{
    char u[32], b[32], us[32], bs[32], cand[6][128];
    int pct = kvshade_saved_percent(used, full), nc = 0;

    kvshade_format_bytes(used, 0, u, sizeof(u));
    kvshade_format_bytes(budget, 0, b, sizeof(b));
    kvshade_format_bytes(used, 1, us, sizeof(us));
    kvshade_format_bytes(budget, 1, bs, sizeof(bs));
    /* Shorter forms drop units, then punctuation, then the budget (the policy segment and the
     * panel's bar show it too), but the saving always keeps its word: a bare "-41%" reads as a
     * loss, not as what the policy saved. */
    if (budget) {
        snprintf(cand[nc++], sizeof(cand[0]), "KV %s / %s (saved %d%%)", u, b, pct);
        snprintf(cand[nc++], sizeof(cand[0]), "KV %s/%s (saved %d%%)", us, bs, pct);
        snprintf(cand[nc++], sizeof(cand[0]), "KV %s/%s saved %d%%", us, bs, pct);
        snprintf(cand[nc++], sizeof(cand[0]), "KV %s saved %d%%", us, pct);
        snprintf(cand[nc++], sizeof(cand[0]), "KV %s/%s", us, bs);
    } else {
        snprintf(cand[nc++], sizeof(cand[0]), "KV %s (full cache)", u);
        snprintf(cand[nc++], sizeof(cand[0]), "KV %s full", us);
        snprintf(cand[nc++], sizeof(cand[0]), "KV %s", us);
    }
    snprintf(cand[nc++], sizeof(cand[0]), "%s", us);
    if (n == 0)
        return 0;
    buf[0] = '\0';
    for (int i = 0; i < nc; i++)
        if ((int)strlen(cand[i]) <= width) {
            snprintf(buf, n, "%s", cand[i]);
            break;
        }
    return strlen(buf);
}

size_t kvshade_format_bar(double frac, int width, int ascii, char *buf, size_t n)
{
    /* U+258F .. U+2589: one to seven eighths of a cell */
    static const char *const part[8] = {
        "",
        "\xE2\x96\x8F",
        "\xE2\x96\x8E",
        "\xE2\x96\x8D",
        "\xE2\x96\x8C",
        "\xE2\x96\x8B",
        "\xE2\x96\x8A",
        "\xE2\x96\x89",
    };
    const char *full = ascii ? "#" : "\xE2\x96\x88", *empty = ascii ? "." : " ";
    int steps = ascii ? 1 : 8, total, fill;
    size_t o = 0;

    if (n == 0)
        return 0;
    if (width < 0)
        width = 0;
    if (!(frac > 0.0)) /* also NaN */
        frac = 0.0;
    if (frac > 1.0)
        frac = 1.0;
    total = width * steps;
    fill = (int)(frac * total + 0.5);
    if (frac > 0.0 && fill == 0 && total > 0)
        fill = 1;
    if (frac < 1.0 && fill == total && total > 0)
        fill = total - 1;
    for (int c = 0; c < width; c++) {
        int e = fill - c * steps; /* eighths in this cell */
        const char *g = e >= steps ? full : e > 0 ? part[e] : empty;
        size_t len = strlen(g);
        if (o + len >= n)
            break;
        memcpy(buf + o, g, len);
        o += len;
    }
    buf[o] = '\0';
    return o;
}

size_t kvshade_format_retention(const struct kvshade *ks, int layer, int width, int ascii,
                                char *buf, size_t n)
{
    char label[16], pct[8];
    long kept, seen;
    int digits = snprintf(label, sizeof(label), "%d", ks->n_layer - 1);
    size_t o;

    if (n == 0)
        return 0;
    kvshade_retention(ks, layer, &kept, &seen);
    double frac = seen ? (double)kept / (double)seen : 0.0;
    int p = (int)(frac * 100.0 + 0.5);
    if (p == 100 && kept < seen)
        p = 99; /* 100% only when nothing was evicted */
    if (p == 0 && kept > 0)
        p = 1;
    if (layer == KVSHADE_ALL)
        snprintf(label, sizeof(label), "%-*s", digits + 1, "all");
    else
        snprintf(label, sizeof(label), "L%*d", digits, layer);
    snprintf(pct, sizeof(pct), "%3d%%", p);

    int lw = (int)strlen(label), pw = (int)strlen(pct), bar = width - lw - pw - 2;
    if (bar < 1) { /* no room for a bar: label and percentage, or as much as fits */
        o = (size_t)snprintf(buf, n, "%s %s", label, pct);
        if (o >= n)
            o = n - 1;
        if ((int)o > width)
            o = width > 0 ? (size_t)width : 0;
        buf[o] = '\0';
        return o;
    }
    o = (size_t)snprintf(buf, n, "%s ", label);
    if (o >= n)
        return n - 1;
    o += kvshade_format_bar(frac, bar, ascii, buf + o, n - o);
    o += (size_t)snprintf(buf + o, n - o, " %s", pct);
    return o < n ? o : n - 1;
}

size_t kvshade_format_layers(const struct kvshade *ks, int pos, char *buf, size_t n)
{
    size_t o = 0;
    int first = 1;

    if (n == 0)
        return 0;
    buf[0] = '\0';
    for (int l = 0; l < ks->n_layer; l++) {
        if (!is_kept(kvshade_class(ks, l, pos)))
            continue;
        int e = l;
        while (e + 1 < ks->n_layer && is_kept(kvshade_class(ks, e + 1, pos)))
            e++;
        int len = e > l ? snprintf(buf + o, n - o, "%s%d-%d", first ? "" : ",", l, e)
                        : snprintf(buf + o, n - o, "%s%d", first ? "" : ",", l);
        if (len < 0 || (size_t)len >= n - o) {
            buf[o] = '\0';
            return o;
        }
        o += (size_t)len;
        first = 0;
        l = e;
    }
    if (first)
        o = (size_t)snprintf(buf, n, "none");
    return o < n ? o : n - 1;
}

static const char *class_name(enum kvshade_class c)
{
    static const char *const nm[KVSHADE_CLASS_COUNT] = {"not cached", "evicted", "kept",
                                                        "key",        "recent",  "sink"};
    return nm[c];
}

size_t kvshade_format_token(const struct kvshade *ks, int pos, int layer, char *buf, size_t n)
{
    int len;

    if (n == 0)
        return 0;
    if (pos < 0 || pos >= ks->n_past)
        len = snprintf(buf, n, "pos %d not in cache yet", pos);
    else if (layer == KVSHADE_ALL)
        len = snprintf(buf, n, "pos %d kept in %d/%d layers", pos, kvshade_kept_layers(ks, pos),
                       ks->n_layer);
    else
        len = snprintf(buf, n, "pos %d L%d %s %.3g", pos, layer,
                       class_name(kvshade_class(ks, layer, pos)), kvshade_score(ks, layer, pos));
    if (len < 0)
        return 0;
    return (size_t)len < n ? (size_t)len : n - 1;
}

size_t kvshade_format_token_layer(const struct kvshade *ks, int pos, int layer, char *buf, size_t n)
{
    char d[16];
    int digits = snprintf(d, sizeof(d), "%d", ks->n_layer - 1);
    int len = snprintf(buf, n, "L%*d %-10s %.3g", digits, layer,
                       class_name(kvshade_class(ks, layer, pos)), kvshade_score(ks, layer, pos));
    if (len < 0 || n == 0)
        return 0;
    return (size_t)len < n ? (size_t)len : n - 1;
}
