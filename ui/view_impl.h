/*
 * view_impl.h — what view.c (state, transcript, frame) and view_panel.c (key-token panel,
 * status line, input line, overlay boxes) share: the view's state and the drawing helpers.
 * Private to the view; UI thread only.
 */
#ifndef KF_UI_VIEW_IMPL_H
#define KF_UI_VIEW_IMPL_H

#include <stddef.h>

#include "layout.h"
#include "markdown.h"
#include "scroll.h"
#include "view.h"
#include "wrap.h"

struct vmsg {
    int role;
    char *text;
    size_t len, cap;
    struct markdown *md;  /* assistant replies */
    struct wrap_lines wl; /* everything else */
    int width;            /* width the lines were made for; 0: not yet */
    int stale;            /* text changed since */
    int n_lines;          /* header + body + blank */
    int *toff, *tpos;     /* token spans */
    int ntok, tcap;
};

struct view {
    struct vmsg *m;
    int n, cap;
    struct scroll *sc;
    struct kvshade *ks;
    int kv_on, kv_layer, kv_sel;
    int help;
    char **list;
    int list_n, list_sel;
    char list_title[128];
    struct view_status st;
    int dirty;
    int last_input_rows;
    struct layout lay;
};

// ---- drawing helpers (view.c) ---------------------------------------------------------------

void view_set_style(int style, unsigned flags);
/* Draw s[0..n) at (y, x) sanitized, counting tabs from column col; returns the columns used. */
int view_put_text(int y, int x, const char *s, size_t n, int col, int maxw);
/* Text of fixed width: a string padded or cut to w columns. */
void view_put_fit(int y, int x, const char *s, int w);

// ---- the screen's other parts (view_panel.c) -----------------------------------------------

void view_draw_panel(const struct view *v, const struct ui_rect *pr, int kind);
void view_draw_status(const struct view *v, const struct ui_rect *r, int level, int panel_hidden);
/* The input's wrapped lines for cols columns (prompt width in *pw); returns the rows needed. */
int view_input_layout(struct wrap_lines *wl, int cols, int *pw);
void view_draw_input(const struct ui_rect *r); /* leaves the cursor in the input */
/* A box with a title and lines, sel highlighted (-1: none): the list pane. */
void view_draw_box(const struct ui_rect *r, const char *title, const char *const *lines, int n,
                   int sel);
void view_draw_help(const struct ui_rect *r);

#endif
