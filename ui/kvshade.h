/*
 * kvshade.h — the logic of the key-token view: which tokens the KV cache holds, per layer, and
 * how to shade, summarise and describe them.  No drawing here.
 *
 * Data.  For every absolute position p < n_past and every layer, a class (what the cache does
 * with the token in that layer) and a score (the policy's accumulated score; 0 if it has none).
 * A snapshot is built after each forward call: kvshade_begin(n_past) marks every seen position
 * EVICTED, then kvshade_add_trace() is called once per (layer, KV head) with what
 * kv_cache_trace() returned.  Heads of one layer are merged: the layer keeps a token if any
 * head does, with the strongest role (sink > recent > key > kept) and the highest score.
 * Positions ≥ n_past (text not yet processed) are NOT_IN_CACHE.
 *
 * Shades.  For one layer the shade is the class.  For all layers (KVSHADE_ALL) it is the share
 * of layers keeping the token: a token kept nowhere is EVICTED, one kept everywhere ALL (or
 * RECENT / SINK when every layer holds it in that role), otherwise LOW (≤ 1/3), MID (≤ 2/3) or
 * HIGH.  So an evicted token is never shaded as kept and a token kept by a single layer never
 * as evicted.
 *
 * One instance per chat view; not thread-safe (the UI thread copies traces between calls).
 */
#ifndef KF_UI_KVSHADE_H
#define KF_UI_KVSHADE_H

#include <stddef.h>
#include <stdint.h>

#include "style.h"

#define KVSHADE_ALL (-1) /* "layer" argument: all layers */

/* Flags of a trace entry: the same bits as kv_cache_trace()'s KV_TRACE_* (test_kvshade.c
 * checks); no flag means held without a role (full cache, sliding-window layer). */
#define KVSHADE_TRACE_RECENT 1
#define KVSHADE_TRACE_SINK   2
#define KVSHADE_TRACE_KEY    4

enum kvshade_class {
    KVSHADE_CLASS_NOT_IN_CACHE, /* not processed yet */
    KVSHADE_CLASS_EVICTED,
    KVSHADE_CLASS_KEPT,   /* held without eviction pressure */
    KVSHADE_CLASS_KEY,    /* held for its score */
    KVSHADE_CLASS_RECENT, /* held by the recent window */
    KVSHADE_CLASS_SINK,   /* held as an attention sink */
    KVSHADE_CLASS_COUNT
};

enum kvshade_shade {
    KVSHADE_SHADE_NONE, /* drawn as normal text */
    KVSHADE_SHADE_EVICTED,
    KVSHADE_SHADE_KEPT,
    KVSHADE_SHADE_KEY,
    KVSHADE_SHADE_RECENT,
    KVSHADE_SHADE_SINK,
    KVSHADE_SHADE_LOW,  /* all layers: kept by a share in (0, 1/3] */
    KVSHADE_SHADE_MID,  /* (1/3, 2/3] */
    KVSHADE_SHADE_HIGH, /* (2/3, 1) */
    KVSHADE_SHADE_ALL,  /* every layer */
    KVSHADE_SHADE_COUNT
};

struct kvshade;

/* New view state for a model with n_layer ≥ 1 layers; NULL on OOM or a bad n_layer. */
struct kvshade *kvshade_new(int n_layer);
void kvshade_free(struct kvshade *ks);

int kvshade_n_layer(const struct kvshade *ks);
int kvshade_n_past(const struct kvshade *ks);

/*
 * Start a snapshot of n_past positions: all of them EVICTED with score 0 in every layer.
 * STATUS_OK, STATUS_INVALID (n_past < 0) or STATUS_NOMEM (the previous snapshot is kept).
 */
int kvshade_begin(struct kvshade *ks, int n_past);

/*
 * Merge one KV head's trace of layer: n entries of positions, scores (may be NULL) and flags
 * (KVSHADE_TRACE_*; may be NULL = no role).  Entries outside [0, n_past) are skipped.
 * STATUS_OK, or STATUS_INVALID for a bad layer or n < 0 (nothing merged).
 */
int kvshade_add_trace(struct kvshade *ks, int layer, const int32_t *pos, const float *score,
                      const uint8_t *flags, int n);

/* Set one cell (synthetic traces, tests).  STATUS_INVALID outside the snapshot. */
int kvshade_set(struct kvshade *ks, int layer, int pos, enum kvshade_class cls, float score);

/* Class and score of pos in layer (NOT_IN_CACHE / 0 outside the snapshot). */
enum kvshade_class kvshade_class(const struct kvshade *ks, int layer, int pos);
float kvshade_score(const struct kvshade *ks, int layer, int pos);

/* Layers holding pos (0 outside the snapshot). */
int kvshade_kept_layers(const struct kvshade *ks, int pos);

/* The shade of pos for one layer or KVSHADE_ALL (see the file comment). */
enum kvshade_shade kvshade_shade(const struct kvshade *ks, int layer, int pos);

/* The style a shade is drawn with (NONE → UI_STYLE_NORMAL), and a short legend label. */
enum ui_style kvshade_shade_style(enum kvshade_shade sh);
const char *kvshade_shade_label(enum kvshade_shade sh);

/* The shades a legend lists for one layer or KVSHADE_ALL, into out (≤ max); returns count. */
int kvshade_legend(int layer, enum kvshade_shade *out, int max);

/*
 * Retention of a layer (or KVSHADE_ALL: summed over layers): *kept positions held out of
 * *seen = n_past (× n_layer for all).  Kept counts are maintained incrementally.
 */
void kvshade_retention(const struct kvshade *ks, int layer, long *kept, long *seen);

// ---- text for the panel and the status line (all return the bytes written, NUL-terminated,
// ---- truncated to n - 1; each fits the width asked for when one is given)

/* "512 B", "12.3 KiB", "12.3 MiB", "1.50 GiB" (short: "512B", "12.3M", "1.50G"). */
size_t kvshade_format_bytes(size_t bytes, int short_form, char *buf, size_t n);

/*
 * The budget line "KV 12.3 MiB / 32.0 MiB (saved 41%)": used bytes, the budget, and the saving
 * versus a full cache of the same positions (full bytes).  budget 0 means no budget ("KV 12.3
 * MiB (full cache)").  Shorter forms are chosen to fit width: "KV 12.3M/32.0M (saved 41%)",
 * "KV 12.3M/32.0M saved 41%", "KV 12.3M saved 41%", "KV 12.3M/32.0M", "12.3M"; "" if nothing
 * fits.  The saving is always spelled "saved N%", never a bare "-N%".
 */
size_t kvshade_format_budget(size_t used, size_t budget, size_t full, int width, char *buf,
                             size_t n);

/* The saving in whole percent, 0..100 (0 when full is 0). */
int kvshade_saved_percent(size_t used, size_t full);

/*
 * A bar of width cells for frac in [0, 1]: eighth blocks, or '#' and '.' when ascii.  A
 * non-zero fraction shows at least one eighth and a fraction below 1 never shows full.
 */
size_t kvshade_format_bar(double frac, int width, int ascii, char *buf, size_t n);

/*
 * "L 3 ██████▌    45%" ("all" for KVSHADE_ALL): exactly width columns when there is room for a
 * bar, else the label and percentage cut to width.  100% only when nothing was evicted, 0%
 * only when nothing is kept.
 */
size_t kvshade_format_retention(const struct kvshade *ks, int layer, int width, int ascii,
                                char *buf, size_t n);

/* Layers holding pos as ranges: "0-3,5,7-31", or "none". */
size_t kvshade_format_layers(const struct kvshade *ks, int pos, char *buf, size_t n);

/*
 * One-line description of the token at pos: for a layer "pos 123 L5 key 0.842", for all
 * layers "pos 123 kept in 20/32 layers"; "pos 123 not in cache yet" past the snapshot.
 */
size_t kvshade_format_token(const struct kvshade *ks, int pos, int layer, char *buf, size_t n);

/* Row of the token details: "L 5 key      0.842" for one layer. */
size_t kvshade_format_token_layer(const struct kvshade *ks, int pos, int layer, char *buf,
                                  size_t n);

#endif
