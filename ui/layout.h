/*
 * layout.h — where each part of kfchat's screen goes, computed from the terminal size alone.
 *
 * From top to bottom: the transcript, the key-token panel when it is at the bottom, the status
 * line (one row) and the input (1..LAYOUT_INPUT_MAX rows, growing with multiline input).  The
 * key-token panel sits right of the transcript when the terminal is at least
 * LAYOUT_PANEL_RIGHT_COLS wide, below it on narrower terminals that are at least
 * LAYOUT_PANEL_BOTTOM_LINES tall, and is hidden otherwise (panel_hidden tells the status line to
 * say so).  The panel's rectangle includes its border: its first column (right panel) or first
 * row (bottom panel).  The help overlay is a centred box drawn over everything.
 *
 * Below LAYOUT_MIN_COLS × LAYOUT_MIN_LINES only a "terminal too small" message is shown; every
 * rectangle is then empty except `message`.  Any size, even 0×0 or negative, gives a valid
 * layout: rectangles never leave the screen and never have negative sizes.
 *
 * The status line gives its segments priorities and drops the least important ones that do not
 * fit (layout_status_fit); status_level is a hint for how verbose each segment should be.
 */
#ifndef KF_UI_LAYOUT_H
#define KF_UI_LAYOUT_H

#include <stddef.h>

#define LAYOUT_MIN_COLS           40
#define LAYOUT_MIN_LINES          12
#define LAYOUT_INPUT_MAX          5
#define LAYOUT_PANEL_RIGHT_COLS   80 /* right panel from this width on */
#define LAYOUT_PANEL_BOTTOM_LINES 20 /* bottom panel (narrow terminals) from this height on */
#define LAYOUT_TRANSCRIPT_MIN     4  /* rows the transcript keeps whatever else is shown */

struct ui_rect {
    int y, x, h, w; /* top row, left column, rows, columns */
};

enum layout_panel {
    LAYOUT_PANEL_NONE,
    LAYOUT_PANEL_RIGHT,
    LAYOUT_PANEL_BOTTOM,
};

enum layout_status_level {
    LAYOUT_STATUS_SHORT,  /* < 60 columns: abbreviations, fewest segments */
    LAYOUT_STATUS_MEDIUM, /* 60..99 */
    LAYOUT_STATUS_FULL,   /* ≥ 100 */
};

struct layout_req {
    int lines, cols; /* terminal size (curses LINES, COLS) */
    int input_lines; /* rows the input's content needs; clamped to 1..LAYOUT_INPUT_MAX */
    int kv_panel;    /* the key-token panel is switched on */
    int help;        /* the help overlay is open */
};

struct layout {
    int too_small;          /* only `message` is drawn */
    struct ui_rect message; /* too small: the whole screen */
    struct ui_rect transcript;
    struct ui_rect panel; /* empty unless panel_kind != LAYOUT_PANEL_NONE */
    struct ui_rect status;
    struct ui_rect input;
    struct ui_rect help; /* empty unless req->help */
    int panel_kind;      /* enum layout_panel */
    int panel_hidden;    /* the panel is on but the terminal has no room for it */
    int status_level;    /* enum layout_status_level */
};

/* Compute the layout for req into out (always succeeds). */
void layout_compute(const struct layout_req *req, struct layout *out);

/*
 * The "terminal too small" message that fits cols columns (longest first, down to "" when
 * nothing fits), naming the current and the needed size.  Returns buf.
 */
const char *layout_too_small_text(int cols, int lines, char *buf, size_t n);

/* A status line segment: text, and how early to drop it (0 = never; higher = earlier). */
struct layout_seg {
    const char *text; /* UTF-8; NULL or "" segments are skipped */
    int prio;
};

/*
 * Join segs with sep into out, dropping segments by decreasing prio (the rightmost first on
 * ties) until the line fits width columns; if the never-dropped segments alone are too wide,
 * the line is cut to width columns ending in "…" ("~" when ascii).  keep[i] (may be NULL) tells
 * which segments were shown.  Returns the columns used.
 */
int layout_status_fit(const struct layout_seg *segs, int n, const char *sep, int width, int ascii,
                      char *out, size_t outcap, unsigned char *keep);

#endif
