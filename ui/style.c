/*
 * style.c — the style table: one colour look and one monochrome look per enum ui_style.
 *
 * The monochrome column is designed first: within the key-token view's per-layer legend (key,
 * recent, sink, kept, evicted, not yet cached) and within its all-layers legend (all, high,
 * mid, low, evicted, recent, sink, not yet cached) no two entries share an attribute set, and
 * the cursor differs from all of them (tests/test_kvshade.c checks this).  The colour column
 * uses the eight basic colours only, which every colour terminal has.
 */
#include "config.h"
#include "style.h"

#include <stddef.h>

#define D   UI_COLOR_DEFAULT
#define B   UI_ATTR_BOLD
#define DIM UI_ATTR_DIM
#define U   UI_ATTR_UNDERLINE
#define R   UI_ATTR_REVERSE

struct style_row {
    const char *name;
    struct ui_look color, mono;
};

static const struct style_row style_table[UI_STYLE_COUNT] = {
    [UI_STYLE_NORMAL] = {"normal", {D, D, 0}, {D, D, 0}},
    [UI_STYLE_HEADING] = {"heading", {UI_COLOR_YELLOW, D, B}, {D, D, B | U}},
    [UI_STYLE_CODE] = {"code", {UI_COLOR_GREEN, D, 0}, {D, D, 0}},
    [UI_STYLE_CODE_INLINE] = {"code-inline", {UI_COLOR_GREEN, D, 0}, {D, D, R}},
    [UI_STYLE_CODE_MARGIN] = {"code-margin", {UI_COLOR_BLUE, D, 0}, {D, D, DIM}},
    [UI_STYLE_CODE_LABEL] = {"code-label", {UI_COLOR_BLUE, D, B}, {D, D, DIM}},
    [UI_STYLE_CODE_TRUNC] = {"code-trunc", {UI_COLOR_RED, D, B}, {D, D, B}},
    [UI_STYLE_QUOTE] = {"quote", {UI_COLOR_CYAN, D, 0}, {D, D, DIM}},
    [UI_STYLE_QUOTE_BAR] = {"quote-bar", {UI_COLOR_CYAN, D, 0}, {D, D, DIM}},
    [UI_STYLE_BULLET] = {"bullet", {UI_COLOR_YELLOW, D, B}, {D, D, B}},
    [UI_STYLE_RULE] = {"rule", {UI_COLOR_BLUE, D, 0}, {D, D, DIM}},
    [UI_STYLE_ROLE] = {"role", {UI_COLOR_BLUE, D, B}, {D, D, B | U}},
    [UI_STYLE_USER] = {"user", {UI_COLOR_CYAN, D, 0}, {D, D, 0}},
    [UI_STYLE_DIM] = {"dim", {D, D, DIM}, {D, D, DIM}},
    [UI_STYLE_ERROR] = {"error", {UI_COLOR_RED, D, B}, {D, D, B | R}},
    [UI_STYLE_STATUS] = {"status", {UI_COLOR_BLACK, UI_COLOR_CYAN, 0}, {D, D, R}},
    [UI_STYLE_STATUS_WARN] = {"status-warn", {UI_COLOR_WHITE, UI_COLOR_RED, B}, {D, D, R | B}},
    [UI_STYLE_BORDER] = {"border", {UI_COLOR_BLUE, D, 0}, {D, D, DIM}},
    [UI_STYLE_HELP] = {"help", {UI_COLOR_WHITE, UI_COLOR_BLUE, 0}, {D, D, 0}},
    [UI_STYLE_BAR_FILL] = {"bar-fill", {UI_COLOR_GREEN, D, 0}, {D, D, B}},
    [UI_STYLE_BAR_EMPTY] = {"bar-empty", {UI_COLOR_BLUE, D, DIM}, {D, D, DIM}},
    /* Key-token shades: see the file comment for the monochrome design. */
    [UI_STYLE_KV_KEY] = {"kv-key", {UI_COLOR_BLACK, UI_COLOR_YELLOW, 0}, {D, D, R | B}},
    [UI_STYLE_KV_RECENT] = {"kv-recent", {UI_COLOR_BLACK, UI_COLOR_CYAN, 0}, {D, D, R}},
    [UI_STYLE_KV_SINK] = {"kv-sink", {UI_COLOR_WHITE, UI_COLOR_MAGENTA, 0}, {D, D, R | U}},
    [UI_STYLE_KV_KEPT] = {"kv-kept", {UI_COLOR_BLACK, UI_COLOR_GREEN, 0}, {D, D, B}},
    [UI_STYLE_KV_EVICTED] = {"kv-evicted", {D, D, DIM}, {D, D, DIM}},
    [UI_STYLE_KV_SHARE_LOW] = {"kv-share-low", {UI_COLOR_RED, D, 0}, {D, D, DIM | U}},
    [UI_STYLE_KV_SHARE_MID] = {"kv-share-mid", {UI_COLOR_YELLOW, D, 0}, {D, D, U}},
    [UI_STYLE_KV_SHARE_HIGH] = {"kv-share-high", {UI_COLOR_GREEN, D, B}, {D, D, B | U}},
    [UI_STYLE_KV_SHARE_ALL] = {"kv-share-all", {UI_COLOR_BLACK, UI_COLOR_GREEN, 0}, {D, D, B}},
    [UI_STYLE_KV_CURSOR] = {"kv-cursor", {UI_COLOR_WHITE, UI_COLOR_RED, B}, {D, D, R | B | U}},
};

static int style_is_kv(enum ui_style s)
{
    return s >= UI_STYLE_KV_KEY && s <= UI_STYLE_KV_CURSOR;
}

struct ui_look ui_style_look(enum ui_style style, unsigned flags, int has_colors)
{
    if ((int)style < 0 || style >= UI_STYLE_COUNT)
        style = UI_STYLE_NORMAL;
    const struct style_row *r = &style_table[style];
    struct ui_look l = has_colors ? r->color : r->mono;

    if (!has_colors && style_is_kv(style))
        return l; /* the shade alone must speak; see the header */
    if (flags & UI_FLAG_BOLD)
        l.attrs |= UI_ATTR_BOLD;
    /* Italic is missing on many terminals; without colours underline is the safe emphasis. */
    if (flags & UI_FLAG_EMPH)
        l.attrs |= has_colors ? UI_ATTR_ITALIC : UI_ATTR_UNDERLINE;
    return l;
}

int ui_style_use_colors(const char *no_color_env, int term_colors)
{
    if (no_color_env && no_color_env[0])
        return 0;
    return term_colors >= 8;
}

const char *ui_style_name(enum ui_style style)
{
    if ((int)style < 0 || style >= UI_STYLE_COUNT)
        return "?";
    return style_table[style].name;
}
