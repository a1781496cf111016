/*
 * style.h — the abstract styles of everything kfchat draws, and their mapping to terminal looks.
 *
 * Pure modules (markdown, kvshade, layout) tag what they produce with an enum ui_style plus
 * UI_FLAG_* bits (inline emphasis); only the curses layer turns a look into a colour pair and
 * A_* attributes.  ui_style_look() is that mapping as a pure function, so the monochrome path
 * (NO_COLOR, terminals without colours) is tested like the colour path: there every style that
 * must be told apart — above all the key-token shades — differs in its attributes alone.
 */
#ifndef KF_UI_STYLE_H
#define KF_UI_STYLE_H

enum ui_style {
    UI_STYLE_NORMAL,
    UI_STYLE_HEADING,     /* markdown heading text */
    UI_STYLE_CODE,        /* code block line */
    UI_STYLE_CODE_INLINE, /* `code` inside a paragraph */
    UI_STYLE_CODE_MARGIN, /* the bar left of a code block */
    UI_STYLE_CODE_LABEL,  /* the language named on the opening fence */
    UI_STYLE_CODE_TRUNC,  /* marker at the right edge of a code line that did not fit */
    UI_STYLE_QUOTE,       /* block quote text */
    UI_STYLE_QUOTE_BAR,   /* the bar left of a block quote */
    UI_STYLE_BULLET,      /* list marker */
    UI_STYLE_RULE,        /* thematic break */
    UI_STYLE_ROLE,        /* message header ("you", "assistant") */
    UI_STYLE_USER,        /* text the user typed */
    UI_STYLE_DIM,         /* secondary text: hints, "3 more lines below" */
    UI_STYLE_ERROR,
    UI_STYLE_STATUS,      /* status line */
    UI_STYLE_STATUS_WARN, /* status segment that needs attention (context nearly full) */
    UI_STYLE_BORDER,      /* panel borders and separators */
    UI_STYLE_HELP,        /* help overlay body */
    UI_STYLE_BAR_FILL,    /* filled part of a retention or budget bar */
    UI_STYLE_BAR_EMPTY,
    UI_STYLE_KV_KEY,        /* key-token view, one layer: kept as a key (scored) token */
    UI_STYLE_KV_RECENT,     /* kept by the recent window */
    UI_STYLE_KV_SINK,       /* kept as an attention sink */
    UI_STYLE_KV_KEPT,       /* held without eviction pressure (full cache, sliding window) */
    UI_STYLE_KV_EVICTED,    /* evicted */
    UI_STYLE_KV_SHARE_LOW,  /* all layers: kept by under a third of the layers */
    UI_STYLE_KV_SHARE_MID,  /* a third up to two thirds */
    UI_STYLE_KV_SHARE_HIGH, /* over two thirds, not all */
    UI_STYLE_KV_SHARE_ALL,  /* every layer */
    UI_STYLE_KV_CURSOR,     /* the token under the key-token cursor */
    UI_STYLE_COUNT
};

/* Inline emphasis, or'ed onto a style. */
#define UI_FLAG_BOLD 0x01u
#define UI_FLAG_EMPH 0x02u

/* Colours: the eight ANSI/curses colour numbers, or the terminal's default. */
enum ui_color {
    UI_COLOR_DEFAULT = -1,
    UI_COLOR_BLACK = 0,
    UI_COLOR_RED,
    UI_COLOR_GREEN,
    UI_COLOR_YELLOW,
    UI_COLOR_BLUE,
    UI_COLOR_MAGENTA,
    UI_COLOR_CYAN,
    UI_COLOR_WHITE,
};

/* Attributes, our own bits; the curses layer maps them to A_BOLD, A_UNDERLINE, ... */
#define UI_ATTR_BOLD      0x01u
#define UI_ATTR_DIM       0x02u
#define UI_ATTR_UNDERLINE 0x04u
#define UI_ATTR_REVERSE   0x08u
#define UI_ATTR_ITALIC    0x10u

struct ui_look {
    int fg, bg;     /* enum ui_color; both UI_COLOR_DEFAULT when !has_colors */
    unsigned attrs; /* UI_ATTR_* */
};

/*
 * The look of style with flags (UI_FLAG_*), for a terminal with or without colours.  Without
 * colours fg and bg are UI_COLOR_DEFAULT and attributes alone carry the meaning; the flags are
 * ignored for the key-token shades there, so that **bold** text cannot pass for a key token.
 * Out-of-range styles look like UI_STYLE_NORMAL.
 */
struct ui_look ui_style_look(enum ui_style style, unsigned flags, int has_colors);

/*
 * Whether to use colours: no when NO_COLOR is set to a non-empty string (no-color.org; pass
 * getenv("NO_COLOR")) or the terminal has fewer than 8 colours (pass curses' COLORS, or 0 when
 * has_colors() is false).
 */
int ui_style_use_colors(const char *no_color_env, int term_colors);

/* A short constant name ("kv-key", ...) for logs and tests; "?" when out of range. */
const char *ui_style_name(enum ui_style style);

#endif
