/*
 * view.c — the transcript's display state and its drawing, and the frame that puts the screen's
 * parts together (see view.h); the key-token panel, the status line, the input line and the
 * overlay boxes are drawn by view_panel.c.
 *
 * Drawing is immediate-mode over stdscr: view_draw() computes the layout from the terminal
 * size, then draws the transcript rows in view, the panel, the status line and the input, and
 * ends in one refresh() — curses sends only the cells that changed, so streaming a token costs
 * a few bytes on the wire.  Per message, wrapped lines are cached and re-rendered only when its
 * text or the width changes (Markdown replies incrementally, markdown.h).
 */
#include "config.h"
#include "view.h"
#include "view_impl.h"

#include <curses.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "layout.h"
#include "markdown.h"
#include "scroll.h"
#include "term.h"
#include "wrap.h"


struct view *view_new(void)
{
    struct view *v = calloc(1, sizeof *v);
    if (!v || !(v->sc = scroll_new())) {
        free(v);
        return NULL;
    }
    v->kv_layer = KVSHADE_ALL;
    v->kv_sel = -1;
    v->list_n = -1;
    v->st.progress = -1;
    v->dirty = 1;
    return v;
}

static void msg_free(struct vmsg *m)
{
    free(m->text);
    markdown_free(m->md);
    wrap_lines_free(&m->wl);
    free(m->toff);
    free(m->tpos);
}

void view_free(struct view *v)
{
    if (!v)
        return;
    view_clear(v);
    free(v->m);
    scroll_free(v->sc);
    kvshade_free(v->ks);
    view_list(v, NULL, NULL, -1, 0);
    free(v);
}

// ---- transcript ---------------------------------------------------------------------------

static int text_append(struct vmsg *m, const char *s, size_t n)
{
    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->len + n + 1)
            cap *= 2;
        char *t = realloc(m->text, cap);
        if (!t)
            return -1;
        m->text = t;
        m->cap = cap;
    }
    memcpy(m->text + m->len, s, n);
    m->len += n;
    m->text[m->len] = 0;
    return 0;
}

int view_add(struct view *v, enum view_role role, const char *text, size_t n)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 32;
        struct vmsg *m = realloc(v->m, (size_t)cap * sizeof *m);
        if (!m)
            return -1;
        v->m = m;
        v->cap = cap;
    }
    struct vmsg *m = &v->m[v->n];
    memset(m, 0, sizeof *m);
    m->role = role;
    if (text_append(m, text ? text : "", text ? n : 0))
        return -1;
    m->stale = 1;
    v->dirty = 1;
    return v->n++;
}

static int tok_push(struct vmsg *m, int off, int pos)
{
    if (m->ntok == m->tcap) {
        int cap = m->tcap ? m->tcap * 2 : 64;
        int *a = realloc(m->toff, (size_t)cap * sizeof *a);
        if (!a)
            return -1;
        m->toff = a;
        int *b = realloc(m->tpos, (size_t)cap * sizeof *b);
        if (!b)
            return -1;
        m->tpos = b;
        m->tcap = cap;
    }
    m->toff[m->ntok] = off;
    m->tpos[m->ntok] = pos;
    m->ntok++;
    return 0;
}

void view_append(struct view *v, int i, const char *s, size_t n, int pos)
{
    if (i < 0 || i >= v->n)
        return;
    struct vmsg *m = &v->m[i];
    size_t off = m->len;
    if (text_append(m, s, n))
        return;
    if (pos >= 0)
        tok_push(m, (int)off, pos);
    if (m->md)
        markdown_append(m->md, s, n);
    m->stale = 1;
    v->dirty = 1;
}

void view_set_tokens(struct view *v, int i, const int *off, const int *pos, int n)
{
    if (i < 0 || i >= v->n)
        return;
    struct vmsg *m = &v->m[i];
    m->ntok = 0;
    for (int k = 0; k < n; k++)
        if (tok_push(m, off[k], pos[k]))
            break;
    v->dirty = 1;
}

void view_truncate(struct view *v, int i)
{
    if (i < 0)
        i = 0;
    while (v->n > i)
        msg_free(&v->m[--v->n]);
    v->dirty = 1;
}

void view_clear(struct view *v)
{
    view_truncate(v, 0);
    scroll_end(v->sc);
}

int view_n_msgs(const struct view *v)
{
    return v->n;
}

enum view_role view_msg_role(const struct view *v, int i)
{
    return (enum view_role)v->m[i].role;
}

const char *view_msg_text(const struct view *v, int i, size_t *len)
{
    if (len)
        *len = v->m[i].len;
    return v->m[i].text ? v->m[i].text : "";
}

/* Bring message m's lines up to date for width w. */
static void msg_render(struct vmsg *m, int w)
{
    if (m->width == w && !m->stale)
        return;
    int body;
    if (m->role == VIEW_ASSISTANT) {
        if (!m->md) {
            m->md = markdown_new(w, term_ascii());
            if (m->md)
                markdown_append(m->md, m->text, m->len);
        } else if (m->width != w) {
            markdown_set_width(m->md, w);
        }
        if (m->md)
            markdown_render(m->md);
        body = m->md ? (int)markdown_n_lines(m->md) : 0;
    } else {
        m->wl.n = 0;
        int iw = w > 2 ? w - 2 : 1; /* user text is indented by two columns */
        wrap_paragraph(m->text ? m->text : "", m->len, iw, iw, &m->wl);
        body = (int)m->wl.n;
    }
    m->width = w;
    m->stale = 0;
    m->n_lines = body + 2;
}

// ---- scrolling and key-token cursor -----------------------------------------------------------

void view_scroll(struct view *v, int lines)
{
    scroll_by(v->sc, lines);
    v->dirty = 1;
}

void view_page(struct view *v, int pages)
{
    scroll_page(v->sc, pages);
    v->dirty = 1;
}

void view_scroll_end(struct view *v)
{
    scroll_end(v->sc);
    v->dirty = 1;
}

struct kvshade *view_kv_reset(struct view *v, int n_layer)
{
    kvshade_free(v->ks);
    v->ks = kvshade_new(n_layer);
    v->kv_layer = KVSHADE_ALL;
    v->kv_sel = -1;
    v->dirty = 1;
    return v->ks;
}

struct kvshade *view_kvshade(struct view *v)
{
    return v->ks;
}

void view_kv_toggle(struct view *v)
{
    v->kv_on = !v->kv_on;
    v->dirty = 1;
}

int view_kv_on(const struct view *v)
{
    return v->kv_on;
}

void view_kv_layer(struct view *v, int delta)
{
    if (!v->ks)
        return;
    int n = kvshade_n_layer(v->ks) + 1; /* all, 0 .. n_layer-1 */
    int i = (v->kv_layer + 1 + delta) % n;
    if (i < 0)
        i += n;
    v->kv_layer = i - 1;
    v->dirty = 1;
}

void view_kv_cursor(struct view *v, int delta)
{
    int n = v->ks ? kvshade_n_past(v->ks) : 0;
    if (n <= 0)
        return;
    long s = v->kv_sel < 0 ? n - 1 : v->kv_sel;
    if (delta == INT_MAX)
        s = n - 1;
    else if (delta == INT_MIN)
        s = 0;
    else if (v->kv_sel >= 0)
        s += delta;
    v->kv_sel = (int)(s < 0 ? 0 : s >= n ? n - 1 : s);
    v->dirty = 1;
}

// ---- overlays -----------------------------------------------------------------------------

void view_help(struct view *v, int on)
{
    v->help = on;
    v->dirty = 1;
}

int view_help_on(const struct view *v)
{
    return v->help;
}

void view_list(struct view *v, const char *title, const char *const *items, int n, int sel)
{
    for (int i = 0; i < v->list_n; i++)
        free(v->list[i]);
    free(v->list);
    v->list = NULL;
    v->list_n = -1;
    v->dirty = 1;
    if (n < 0)
        return;
    v->list = calloc((size_t)n + 1, sizeof *v->list);
    if (!v->list)
        return;
    for (int i = 0; i < n; i++)
        v->list[i] = strdup(items[i] ? items[i] : "");
    v->list_n = n;
    v->list_sel = sel;
    snprintf(v->list_title, sizeof v->list_title, "%s", title ? title : "");
}

int view_list_on(const struct view *v)
{
    return v->list_n >= 0;
}

void view_set_status(struct view *v, const struct view_status *st)
{
    v->st = *st;
}

void view_touch(struct view *v)
{
    v->dirty = 1;
}

int view_dirty(const struct view *v)
{
    return v->dirty;
}

// ---- drawing helpers ------------------------------------------------------------------------

void view_set_style(int style, unsigned flags)
{
    attrset((attr_t)term_attr((enum ui_style)style, flags));
}

/* Draw s[0..n) at (y, x) sanitized, counting tabs from column col; returns the columns used. */
int view_put_text(int y, int x, const char *s, size_t n, int col, int maxw)
{
    char buf[1024];
    size_t fit = wrap_fit(s, n, col, maxw, NULL);
    int used = 0;
    while (fit > 0) {
        size_t chunk = fit > 120 ? wrap_fit(s, 120, col, maxw - used, NULL) : fit;
        if (chunk == 0)
            chunk = fit;
        int w = wrap_str_width(s, chunk, col);
        size_t k = wrap_sanitize(s, chunk, col, buf, sizeof buf);
        mvaddnstr(y, x + used, buf, (int)k);
        used += w;
        col += w;
        s += chunk;
        fit -= chunk;
    }
    return used;
}

/* Text of fixed width: a string padded or cut to w columns. */
void view_put_fit(int y, int x, const char *s, int w)
{
    if (w <= 0)
        return;
    int used = view_put_text(y, x, s, strlen(s), 0, w);
    for (; used < w; used++)
        mvaddch(y, x + used, ' ');
}

/* Index of the token holding byte off of m, or -1. */
static int tok_at(const struct vmsg *m, size_t off)
{
    int lo = 0, hi = m->ntok - 1, r = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if ((size_t)m->toff[mid] <= off) {
            r = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return r;
}

/* The style a token position is drawn with in the key-token view (or base without it). */
static int shade_style(const struct view *v, int pos, int base)
{
    if (!v->kv_on || !v->ks || pos < 0)
        return base;
    if (pos == v->kv_sel)
        return UI_STYLE_KV_CURSOR;
    enum kvshade_shade sh = kvshade_shade(v->ks, v->kv_layer, pos);
    return sh == KVSHADE_SHADE_NONE ? base : (int)kvshade_shade_style(sh);
}

/* Draw source bytes [start, start+len) of m at (y, x), split by tokens when shading. */
static int draw_span(const struct view *v, const struct vmsg *m, int y, int x, size_t start,
                     size_t len, int style, unsigned flags, int col, int maxw)
{
    int used = 0;
    size_t end = start + len;
    while (start < end && used < maxw) {
        size_t stop = end;
        int st = style;
        if (v->kv_on && m->ntok > 0) {
            int t = tok_at(m, start);
            if (t + 1 < m->ntok && (size_t)m->toff[t + 1] < stop)
                stop = (size_t)m->toff[t + 1];
            if (t >= 0)
                st = shade_style(v, m->tpos[t], style);
        }
        view_set_style(st, st == style ? flags : 0);
        int w = view_put_text(y, x + used, m->text + start, stop - start, col + used, maxw - used);
        if (w == 0 && stop - start > 0 && wrap_str_width(m->text + start, stop - start, col) > 0)
            break; /* does not fit */
        used += w;
        start = stop;
    }
    return used;
}

static const char *role_label(int role)
{
    switch (role) {
    case VIEW_USER: return "you";
    case VIEW_ASSISTANT: return "assistant";
    case VIEW_SYSTEM: return "system";
    case VIEW_ERROR: return "error";
    default: return "kfchat";
    }
}

/* Draw display line k of message m (k = 0 header, last = blank) at row y. */
static void draw_msg_line(const struct view *v, const struct vmsg *m, int k, int y,
                          const struct ui_rect *r)
{
    if (k == 0) {
        view_set_style(m->role == VIEW_ERROR ? UI_STYLE_ERROR : UI_STYLE_ROLE, 0);
        view_put_text(y, r->x, role_label(m->role), strlen(role_label(m->role)), 0, r->w);
        return;
    }
    k--;
    if (m->role != VIEW_ASSISTANT || !m->md) {
        if ((size_t)k >= m->wl.n)
            return;
        const struct wrap_line *l = &m->wl.v[k];
        int st = m->role == VIEW_USER ? UI_STYLE_USER
                 : m->role == VIEW_ERROR ? UI_STYLE_ERROR
                 : m->role == VIEW_NOTICE ? UI_STYLE_DIM : UI_STYLE_NORMAL;
        draw_span(v, m, y, r->x + 2, l->start, l->end - l->start, st, 0, 0, r->w - 2);
        return;
    }
    if ((size_t)k >= markdown_n_lines(m->md))
        return;
    const struct md_line *ml = markdown_line(m->md, (size_t)k);
    const struct md_run *runs = markdown_runs(m->md) + ml->run0;
    if (ml->kind == MD_LINE_CODE || ml->kind == MD_LINE_FENCE) {
        view_set_style(UI_STYLE_CODE, 0);
        mvhline(y, r->x, ' ', r->w);
    }
    for (int i = 0; i < ml->n_runs; i++) {
        const struct md_run *ru = &runs[i];
        if (ru->col >= r->w)
            break;
        int maxw = r->w - ru->col;
        if (ru->kind == MD_RUN_TEXT) {
            draw_span(v, m, y, r->x + ru->col, ru->start, ru->len, ru->style, ru->flags,
                      ru->col - ml->tab_origin, maxw);
        } else {
            view_set_style(ru->style, ru->flags);
            int reps = ru->kind == MD_RUN_FILL ? ru->width : 1;
            int col = ru->col;
            for (int j = 0; j < reps && col < r->w; j++)
                col += view_put_text(y, r->x + col, ru->lit, strlen(ru->lit), 0, r->w - col);
        }
    }
}

static void draw_transcript(struct view *v, const struct ui_rect *r)
{
    int total = 0;
    for (int i = 0; i < v->n; i++) {
        msg_render(&v->m[i], r->w);
        total += v->m[i].n_lines;
    }
    scroll_set_rows(v->sc, r->h);
    scroll_set_total(v->sc, total);
    int top = scroll_top(v->sc), line = 0, y = r->y;
    for (int i = 0; i < v->n && y < r->y + r->h; i++) {
        const struct vmsg *m = &v->m[i];
        if (line + m->n_lines <= top) {
            line += m->n_lines;
            continue;
        }
        for (int k = top > line ? top - line : 0; k < m->n_lines && y < r->y + r->h; k++)
            draw_msg_line(v, m, k, y++, r);
        line += m->n_lines;
    }
    int below = scroll_below(v->sc);
    if (below > 0 && r->h > 0) {
        char b[48];
        snprintf(b, sizeof b, " %d more below (PgDn) ", below);
        view_set_style(UI_STYLE_DIM, 0);
        int w = (int)strlen(b);
        view_put_text(r->y + r->h - 1, r->x + (r->w > w ? r->w - w : 0), b, strlen(b), 0, r->w);
    }
}

// ---- the frame ----------------------------------------------------------------------------

static void compute_layout(struct view *v, int *input_rows)
{
    struct wrap_lines wl = { 0 };
    int pw;
    struct layout_req req = { .lines = LINES, .cols = COLS, .kv_panel = v->kv_on,
                              .help = v->help || v->list_n >= 0 };
    req.input_lines = view_input_layout(&wl, COLS, &pw);
    wrap_lines_free(&wl);
    layout_compute(&req, &v->lay);
    *input_rows = req.input_lines;
}

void view_draw(struct view *v)
{
    int rows;
    if (!v->dirty && input_dirty()) {
        compute_layout(v, &rows);
        if (rows == v->last_input_rows && !v->lay.too_small) {
            view_draw_input(&v->lay.input); /* a keystroke: only the input line changes */
            input_clear_dirty();
            refresh();
            return;
        }
    }
    if (!v->dirty && !input_dirty())
        return;
    compute_layout(v, &rows);
    v->last_input_rows = rows;
    erase();
    const struct layout *L = &v->lay;
    if (L->too_small) {
        char b[128];
        view_set_style(UI_STYLE_STATUS_WARN, 0);
        layout_too_small_text(COLS, LINES, b, sizeof b);
        view_put_text(L->message.y + L->message.h / 2, 0, b, strlen(b), 0, COLS);
    } else {
        draw_transcript(v, &L->transcript);
        if (L->panel_kind != LAYOUT_PANEL_NONE)
            view_draw_panel(v, &L->panel, L->panel_kind);
        view_draw_status(v, &L->status, L->status_level, L->panel_hidden);
        if (v->list_n >= 0)
            view_draw_box(&L->help, v->list_title, (const char *const *)v->list, v->list_n,
                     v->list_sel);
        else if (v->help)
            view_draw_help(&L->help);
        view_draw_input(&L->input); /* last: the cursor ends in the input */
    }
    view_set_style(UI_STYLE_NORMAL, 0);
    v->dirty = 0;
    input_clear_dirty();
    refresh();
}
