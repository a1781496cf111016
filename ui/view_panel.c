/*
 * view_panel.c — the parts of the screen around the transcript: the key-token panel (legend,
 * budget line and bar, the selected token, per-layer retention), the status line, the input line
 * and the overlay boxes (help, list pane).  Called by view_draw() (view.c) with the rectangles
 * of the layout; each part clears and fills its whole rectangle.
 */
#include "config.h"
#include "view_impl.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "input.h"
#include "kvshade.h"
#include "term.h"

// ---- key-token panel --------------------------------------------------------------------------

/* Draw one panel row: text in style, cut or padded to the panel's width. */
static int panel_row(const struct ui_rect *r, int *y, int style, const char *text)
{
    if (*y >= r->y + r->h)
        return 0;
    view_set_style(style, 0);
    view_put_fit(*y, r->x, text, r->w);
    (*y)++;
    return 1;
}

static void draw_legend(const struct view *v, const struct ui_rect *r, int *y)
{
    enum kvshade_shade sh[KVSHADE_SHADE_COUNT];
    int n = kvshade_legend(v->kv_layer, sh, KVSHADE_SHADE_COUNT), x = r->x;
    if (*y >= r->y + r->h)
        return;
    view_set_style(UI_STYLE_NORMAL, 0);
    mvhline(*y, r->x, ' ', r->w);
    for (int i = 0; i < n; i++) {
        const char *l = kvshade_shade_label(sh[i]);
        int w = wrap_str_width(l, strlen(l), 0);
        if (x + w > r->x + r->w) { /* wrap the legend onto the next row */
            if (++(*y) >= r->y + r->h)
                return;
            view_set_style(UI_STYLE_NORMAL, 0);
            mvhline(*y, r->x, ' ', r->w);
            x = r->x;
        }
        view_set_style(kvshade_shade_style(sh[i]), 0);
        x += view_put_text(*y, x, l, strlen(l), 0, r->x + r->w - x);
        view_set_style(UI_STYLE_NORMAL, 0);
        if (x < r->x + r->w)
            x++;
    }
    (*y)++;
}

void view_draw_panel(const struct view *v, const struct ui_rect *pr, int kind)
{
    char buf[256];
    struct ui_rect r = *pr;
    view_set_style(UI_STYLE_BORDER, 0);
    if (kind == LAYOUT_PANEL_RIGHT) {
        mvvline(r.y, r.x, term_ascii() ? '|' : ACS_VLINE, r.h);
        r.x += 2;
        r.w -= 2;
    } else {
        mvhline(r.y, r.x, term_ascii() ? '-' : ACS_HLINE, r.w);
        r.y++;
        r.h--;
    }
    if (r.w <= 0 || r.h <= 0)
        return;
    int y = r.y;
    if (v->kv_layer == KVSHADE_ALL)
        snprintf(buf, sizeof buf, "Key tokens: all layers (F3/F4)");
    else
        snprintf(buf, sizeof buf, "Key tokens: layer %d (F3/F4)", v->kv_layer);
    panel_row(&r, &y, UI_STYLE_HEADING, buf);
    if (!v->ks) {
        panel_row(&r, &y, UI_STYLE_DIM, "waiting for the model");
        return;
    }
    draw_legend(v, &r, &y);
    /* budget bar: bytes held against the budget, and the saving against a full cache */
    kvshade_format_budget(v->st.kv_used, v->st.kv_budget_bytes, v->st.kv_full, r.w, buf,
                          sizeof buf);
    panel_row(&r, &y, UI_STYLE_NORMAL, buf);
    if (v->st.kv_budget_bytes > 0 && y < r.y + r.h) {
        double f = (double)v->st.kv_used / (double)v->st.kv_budget_bytes;
        kvshade_format_bar(f > 1 ? 1 : f, r.w, term_ascii(), buf, sizeof buf);
        panel_row(&r, &y, UI_STYLE_BAR_FILL, buf);
    }
    /* the selected token first: it is what the user is looking at */
    int sel = v->kv_sel >= 0 ? v->kv_sel : kvshade_n_past(v->ks) - 1;
    if (sel >= 0) {
        kvshade_format_token(v->ks, sel, v->kv_layer, buf, sizeof buf);
        panel_row(&r, &y, UI_STYLE_KV_CURSOR, buf);
        char lay[160];
        kvshade_format_layers(v->ks, sel, lay, sizeof lay);
        snprintf(buf, sizeof buf, "in layers %s", lay);
        panel_row(&r, &y, UI_STYLE_NORMAL, buf);
    }
    /* per-layer retention, then (room permitting) the selected token per layer */
    kvshade_format_retention(v->ks, KVSHADE_ALL, r.w, term_ascii(), buf, sizeof buf);
    panel_row(&r, &y, UI_STYLE_NORMAL, buf);
    int nl = kvshade_n_layer(v->ks);
    int room = r.y + r.h - y;
    int show_tok = sel >= 0 && room >= 2 * nl + 1;
    for (int l = 0; l < nl && y < r.y + r.h; l++) {
        kvshade_format_retention(v->ks, l, r.w, term_ascii(), buf, sizeof buf);
        panel_row(&r, &y, l == v->kv_layer ? UI_STYLE_HEADING : UI_STYLE_NORMAL, buf);
    }
    if (show_tok) {
        panel_row(&r, &y, UI_STYLE_DIM, "selected token per layer (S-arrows)");
        for (int l = 0; l < nl && y < r.y + r.h; l++) {
            kvshade_format_token_layer(v->ks, sel, l, buf, sizeof buf);
            int st = kvshade_shade_style(kvshade_shade(v->ks, l, sel));
            panel_row(&r, &y, st, buf);
        }
    }
    view_set_style(UI_STYLE_NORMAL, 0);
    for (; y < r.y + r.h; y++)
        mvhline(y, r.x, ' ', r.w);
}

// ---- status line and input ----------------------------------------------------------------

void view_draw_status(const struct view *v, const struct ui_rect *r, int level, int panel_hidden)
{
    const struct view_status *s = &v->st;
    char prog[96] = "", model[96] = "", pol[64] = "", kv[96] = "", ctx[48] = "", pp[32] = "",
         tg[32] = "", rss[32] = "", note[256] = "";
    if (s->progress >= 0) {
        char bar[64];
        int bw = level == LAYOUT_STATUS_SHORT ? 6 : 12;
        kvshade_format_bar(s->progress, bw, term_ascii(), bar, sizeof bar);
        snprintf(prog, sizeof prog, "%s %s %3.0f%%", s->state ? s->state : "", bar,
                 s->progress * 100);
    } else {
        snprintf(prog, sizeof prog, "%s", s->state ? s->state : "");
    }
    snprintf(model, sizeof model, "%s", s->model ? s->model : "");
    if (s->policy) {
        if (s->kv_budget > 0)
            snprintf(pol, sizeof pol, "%s B=%d", s->policy, s->kv_budget);
        else
            snprintf(pol, sizeof pol, "%s", s->policy);
    }
    kvshade_format_budget(s->kv_used, s->kv_budget_bytes, s->kv_full,
                          level == LAYOUT_STATUS_FULL ? 40 : 20, kv, sizeof kv);
    if (s->n_ctx > 0)
        snprintf(ctx, sizeof ctx, "ctx %d/%d", s->n_past, s->n_ctx);
    if (s->prompt_tps > 0)
        snprintf(pp, sizeof pp, "pp %.0f t/s", s->prompt_tps);
    if (s->gen_tps > 0)
        snprintf(tg, sizeof tg, "tg %.1f t/s", s->gen_tps);
    if (s->rss > 0) {
        char b[24];
        kvshade_format_bytes(s->rss, 1, b, sizeof b);
        snprintf(rss, sizeof rss, "RSS %s", b);
    }
    if (s->note)
        snprintf(note, sizeof note, "%s", s->note);
    else if (panel_hidden)
        snprintf(note, sizeof note, "panel needs a larger terminal");
    struct layout_seg segs[] = {
        { prog, 0 }, { note, 1 }, { model, 4 }, { pol, 3 }, { kv, 2 },
        { ctx, 2 },  { tg, 3 },   { pp, 5 },    { rss, 6 }, { "F1 help", 7 },
    };
    char out[512];
    layout_status_fit(segs, (int)(sizeof segs / sizeof segs[0]), " | ", r->w, term_ascii(), out,
                      sizeof out, NULL);
    view_set_style(UI_STYLE_STATUS, 0);
    view_put_fit(r->y, r->x, out, r->w);
}

/* The input's wrapped lines: prompt on the first, continuation indented by two columns. */
int view_input_layout(struct wrap_lines *wl, int cols, int *pw)
{
    const char *p = input_prompt();
    size_t len;
    const char *t = input_text(&len);
    *pw = wrap_str_width(p, strlen(p), 0);
    int w1 = cols - *pw, wr = cols - 2;
    wl->n = 0;
    wrap_paragraph(t, len, w1 > 1 ? w1 : 1, wr > 1 ? wr : 1, wl);
    return wl->n > 0 ? (int)wl->n : 1;
}

void view_draw_input(const struct ui_rect *r)
{
    static struct wrap_lines wl;
    int pw;
    view_input_layout(&wl, r->w, &pw);
    size_t len, row = 0;
    const char *t = input_text(&len);
    int col = 0;
    wrap_locate(&wl, t, input_cursor(), &row, &col);
    int first = (int)row >= r->h ? (int)row - r->h + 1 : 0;
    view_set_style(UI_STYLE_NORMAL, 0);
    for (int y = 0; y < r->h; y++)
        mvhline(r->y + y, r->x, ' ', r->w);
    for (int k = 0; k < r->h && (size_t)(first + k) < wl.n; k++) {
        int x = r->x + (first + k == 0 ? pw : 2);
        const struct wrap_line *l = &wl.v[first + k];
        if (first + k == 0) {
            view_set_style(UI_STYLE_ROLE, 0);
            view_put_text(r->y, r->x, input_prompt(), strlen(input_prompt()), 0, r->w);
            view_set_style(UI_STYLE_NORMAL, 0);
        }
        view_put_text(r->y + k, x, t + l->start, l->end - l->start, 0, r->x + r->w - x);
    }
    if (wl.n == 0) {
        view_set_style(UI_STYLE_ROLE, 0);
        view_put_text(r->y, r->x, input_prompt(), strlen(input_prompt()), 0, r->w);
    }
    int cx = r->x + ((int)row == 0 ? pw : 2) + col, cy = r->y + (int)row - first;
    move(cy, cx < r->x + r->w ? cx : r->x + r->w - 1);
}

// ---- overlays -----------------------------------------------------------------------------

static const char *const help_text[] = {
    "Keys",
    "  Enter            send            Ctrl-J, Alt-Enter  new line",
    "  Ctrl-C, Esc      stop the reply  Ctrl-C twice       quit (empty prompt)",
    "  PgUp / PgDn      scroll          Ctrl-L             redraw",
    "  F1               this help       F2 or /kv          key-token view",
    "  F3 / F4          layer - / +     Shift/Alt-arrows   move the token cursor",
    "  Ctrl-R           search history  Ctrl-Z             suspend",
    "Commands",
    "  /new  /sessions  /resume ID  /rename NAME  /delete  /fork [NAME]",
    "  /regen  /edit [TEXT]  /system TEXT  /policy P  /budget B  /temp T",
    "  /export md|json [FILE]  /copy  /search TEXT  /kv  /help  /quit",
    "",
    "Key-token view: tokens shaded by what the KV cache keeps in the layer",
    "shown (all layers: the share of layers keeping them).  Any key closes.",
};

void view_draw_box(const struct ui_rect *r, const char *title, const char *const *lines, int n,
                     int sel)
{
    view_set_style(UI_STYLE_HELP, 0);
    for (int y = 0; y < r->h; y++)
        mvhline(r->y + y, r->x, ' ', r->w);
    view_set_style(UI_STYLE_BORDER, 0);
    if (r->w >= 2 && r->h >= 2) {
        if (term_ascii()) {
            mvhline(r->y, r->x, '-', r->w);
            mvhline(r->y + r->h - 1, r->x, '-', r->w);
        } else {
            mvhline(r->y, r->x, ACS_HLINE, r->w);
            mvhline(r->y + r->h - 1, r->x, ACS_HLINE, r->w);
        }
    }
    view_set_style(UI_STYLE_HEADING, 0);
    view_put_text(r->y, r->x + 1, title, strlen(title), 0, r->w - 2);
    int rows = r->h - 2, first = sel >= rows ? sel - rows + 1 : 0;
    for (int i = 0; i < rows && first + i < n; i++) {
        view_set_style(first + i == sel ? UI_STYLE_KV_CURSOR : UI_STYLE_HELP, 0);
        view_put_fit(r->y + 1 + i, r->x + 1, lines[first + i], r->w - 2);
    }
}

void view_draw_help(const struct ui_rect *r)
{
    view_draw_box(r, "kfchat help  (any key closes)", help_text,
                  (int)(sizeof help_text / sizeof help_text[0]), -1);
}
