/*
 * markdown.c — line-by-line Markdown renderer with a resumable parser state (see markdown.h).
 *
 * Each source line goes through: container prefixes (quote markers), then one of fence / code
 * line / blank / thematic break / heading / list item / paragraph.  Inline markup of a line is
 * resolved into per-byte attributes (hidden, code, bold, emphasis), the visible bytes are
 * gathered into a scratch buffer of "pieces" that remember their source offsets, the buffer is
 * wrapped by wrap_paragraph(), and each wrapped line becomes runs by intersecting it with the
 * pieces.  So every run that shows source text points at the exact source bytes.
 */
#include "config.h"
#include "markdown.h"

#include <stdlib.h>
#include <string.h>

#include "md_inline.h"
#include "status.h"
#include "wrap.h"

#define MD_MAX_LIST 16
#define MD_TAB      4 /* Markdown's tab stop for indentation */

struct md_list {
    int marker_col;  /* source indentation of the item's marker */
    int disp_indent; /* display column where the item's content starts */
};

/* Everything a line's rendering depends on besides the line itself. */
struct md_state {
    int in_fence;     /* inside a fenced code block */
    char fence_ch;    /* '`' or '~' */
    int fence_len;    /* length of the opening fence run */
    int fence_indent; /* source indentation of the opening fence, stripped from code lines */
    int fence_disp;   /* display column of the code block's margin */
    int fence_quote;  /* quote depth of the code block */
    int quote;        /* quote depth of the previous line */
    int prev_blank;   /* the previous source line was blank */
    int last_blank;   /* the last display line is blank (runs of blanks collapse) */
    int any_output;   /* some line was emitted (leading blank lines are dropped) */
    int n_list;
    struct md_list list[MD_MAX_LIST];
};

/* A stretch of visible source bytes with one look. */
struct md_piece {
    size_t vis, src, len;
    int style;
    unsigned flags;
};

struct markdown {
    char *text;
    size_t len, cap;
    int width, ascii;

    struct md_line *lines;
    size_t n_lines, cap_lines;
    struct md_run *runs;
    size_t n_runs, cap_runs;

    /* resume point: state after the last complete source line */
    int valid;
    size_t ck_src, ck_lines, ck_runs;
    struct md_state ck;
    size_t last_parsed;

    /* scratch */
    unsigned char *attr;
    size_t cap_attr;
    char *vis;
    size_t cap_vis;
    struct md_piece *pieces;
    size_t n_pieces, cap_pieces;
    struct wrap_lines wl;
};

/* Decorations: UTF-8 box drawing, or ASCII. */
struct md_glyphs {
    const char *quote, *bullet[3], *fence_top, *fence_side, *fence_bottom, *rule, *trunc;
};

static const struct md_glyphs glyphs_utf8 = {
    .quote = "\xE2\x94\x82 ",                                   /* "│ " */
    .bullet = {"\xE2\x80\xA2", "\xE2\x97\xA6", "\xE2\x96\xAA"}, /* • ◦ ▪ */
    .fence_top = "\xE2\x94\x8C\xE2\x94\x80",                    /* "┌─" */
    .fence_side = "\xE2\x94\x82 ",                              /* "│ " */
    .fence_bottom = "\xE2\x94\x94\xE2\x94\x80",                 /* "└─" */
    .rule = "\xE2\x94\x80",                                     /* "─" */
    .trunc = "\xE2\x86\x92",                                    /* "→" */
};
static const struct md_glyphs glyphs_ascii = {
    .quote = "| ",
    .bullet = {"*", "-", "+"},
    .fence_top = "+-",
    .fence_side = "| ",
    .fence_bottom = "+-",
    .rule = "-",
    .trunc = ">",
};

// ---- storage ---------------------------------------------------------------------------------

/*
 * Make room for need elements of elem bytes in the array p (capacity *cap); returns the array,
 * possibly moved, or NULL on OOM with p and *cap untouched.  need is never 0 here.
 */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * elem);
    if (q)
        *cap = c;
    return q;
}

struct markdown *markdown_new(int width, int ascii)
{
    struct markdown *md = calloc(1, sizeof(*md));
    if (!md)
        return NULL;
    md->width = width < 1 ? 1 : width;
    md->ascii = ascii;
    return md;
}

void markdown_free(struct markdown *md)
{
    if (!md)
        return;
    free(md->text);
    free(md->lines);
    free(md->runs);
    free(md->attr);
    free(md->vis);
    free(md->pieces);
    wrap_lines_free(&md->wl);
    free(md);
}

void markdown_set_width(struct markdown *md, int width)
{
    if (width < 1)
        width = 1;
    if (width != md->width) {
        md->width = width;
        md->valid = 0;
    }
}

int markdown_append(struct markdown *md, const char *s, size_t n)
{
    char *t = grow(md->text, &md->cap, md->len + n + 1, 1);
    if (!t)
        return STATUS_NOMEM;
    md->text = t;
    memcpy(md->text + md->len, s, n);
    md->len += n;
    md->text[md->len] = '\0';
    return STATUS_OK;
}

int markdown_set_text(struct markdown *md, const char *s, size_t n)
{
    if (n >= md->len && (md->len == 0 || memcmp(s, md->text, md->len) == 0))
        return markdown_append(md, s + md->len, n - md->len);
    char *t = grow(md->text, &md->cap, n + 1, 1);
    if (!t)
        return STATUS_NOMEM;
    md->text = t;
    memcpy(md->text, s, n);
    md->len = n;
    md->text[n] = '\0';
    md->valid = 0;
    return STATUS_OK;
}

const char *markdown_text(const struct markdown *md, size_t *len)
{
    if (len)
        *len = md->len;
    return md->text ? md->text : "";
}

size_t markdown_n_lines(const struct markdown *md)
{
    return md->n_lines;
}

const struct md_line *markdown_line(const struct markdown *md, size_t i)
{
    return i < md->n_lines ? &md->lines[i] : NULL;
}

const struct md_run *markdown_runs(const struct markdown *md)
{
    return md->runs;
}

size_t markdown_last_parsed(const struct markdown *md)
{
    return md->last_parsed;
}

// ---- output ----------------------------------------------------------------------------------

/* Start a display line. */
static struct md_line *line_begin(struct markdown *md, int kind, int level, size_t a, size_t b,
                                  int tab_origin)
{
    struct md_line *v = grow(md->lines, &md->cap_lines, md->n_lines + 1, sizeof(*v));
    if (!v)
        return NULL;
    md->lines = v;
    struct md_line *l = &md->lines[md->n_lines++];
    *l = (struct md_line){md->n_runs, 0, 0, kind, level, tab_origin, a, b};
    return l;
}

static int run_add(struct markdown *md, int kind, int style, unsigned flags, int col, int width,
                   size_t start, size_t len, const char *lit)
{
    struct md_run *v = grow(md->runs, &md->cap_runs, md->n_runs + 1, sizeof(*v));
    if (!v)
        return STATUS_NOMEM;
    md->runs = v;
    md->runs[md->n_runs++] = (struct md_run){kind, style, flags, col, width, start, len, lit};
    struct md_line *l = &md->lines[md->n_lines - 1];
    l->n_runs++;
    if (col + width > l->width)
        l->width = col + width;
    return STATUS_OK;
}

static int lit_add(struct markdown *md, int style, int col, const char *lit)
{
    int w = wrap_str_width(lit, strlen(lit), 0);
    return run_add(md, MD_RUN_LIT, style, 0, col, w, 0, 0, lit);
}

static const struct md_glyphs *glyphs(const struct markdown *md)
{
    return md->ascii ? &glyphs_ascii : &glyphs_utf8;
}

/* Quote bars drawn for depth q: at most a quarter of the width, two columns each. */
static int quote_bars(const struct markdown *md, int q)
{
    int max = md->width / 4;
    return q < max ? q : max;
}

static int bars_add(struct markdown *md, int q, int style)
{
    int nb = quote_bars(md, q);
    for (int i = 0; i < nb; i++)
        if (lit_add(md, style, 2 * i, glyphs(md)->quote))
            return STATUS_NOMEM;
    return STATUS_OK;
}

// ---- inline markup ---------------------------------------------------------------------------

static int piece_add(struct markdown *md, size_t vis, size_t src, size_t len, int style,
                     unsigned flags)
{
    if (md->n_pieces) {
        struct md_piece *p = &md->pieces[md->n_pieces - 1];
        if (p->src + p->len == src && p->style == style && p->flags == flags) {
            p->len += len;
            return STATUS_OK;
        }
    }
    struct md_piece *v = grow(md->pieces, &md->cap_pieces, md->n_pieces + 1, sizeof(*v));
    if (!v)
        return STATUS_NOMEM;
    md->pieces = v;
    md->pieces[md->n_pieces++] = (struct md_piece){vis, src, len, style, flags};
    return STATUS_OK;
}

/* Resolve s[a..b) into visible pieces in md->vis / md->pieces; returns the visible length. */
static int inline_parse(struct markdown *md, size_t a, size_t b, int style, unsigned flags,
                        size_t *vis_len)
{
    const char *s = md->text;
    size_t n = b - a, v = 0;

    md->n_pieces = 0;
    unsigned char *attr = grow(md->attr, &md->cap_attr, n + 1, 1);
    if (attr)
        md->attr = attr;
    char *vis = attr ? grow(md->vis, &md->cap_vis, n + 1, 1) : NULL;
    if (!vis)
        return STATUS_NOMEM;
    md->vis = vis;
    if (md_inline_scan(s + a, n, md->attr))
        return STATUS_NOMEM;

    for (size_t i = a; i < b; i++) {
        unsigned at = md->attr[i - a];
        if (at & MD_AT_HIDDEN)
            continue;
        int st = (at & MD_AT_CODE) ? UI_STYLE_CODE_INLINE : style;
        unsigned fl = (at & MD_AT_CODE) ? 0 : flags;
        if (at & MD_AT_BOLD)
            fl |= UI_FLAG_BOLD;
        if (at & MD_AT_EMPH)
            fl |= UI_FLAG_EMPH;
        md->vis[v] = s[i];
        if (piece_add(md, v, i, 1, st, fl))
            return STATUS_NOMEM;
        v++;
    }
    *vis_len = v;
    return STATUS_OK;
}

// ---- block emitters --------------------------------------------------------------------------

/* What goes in front of a wrapped paragraph. */
struct md_lead {
    int quote;               /* quote depth */
    int indent;              /* display column of the content */
    const char *bullet;      /* first line: bullet glyph, or NULL */
    size_t num_src, num_len; /* first line: ordered-list marker as source text (len 0: none) */
    int marker_col;
};

/*
 * Wrap source s[a..b) (after inline parsing) below the lead and emit the display lines; the
 * whole source line is [la, lb).
 */
static int emit_paragraph(struct markdown *md, int kind, int level, size_t la, size_t lb, size_t a,
                          size_t b, const struct md_lead *lead, int style, unsigned flags)
{
    size_t vis_len, p = 0;
    int indent = lead->indent, avail = md->width - indent;

    if (avail < 2) { /* room for a wide character, whenever the width allows it */
        indent = md->width >= 2 ? md->width - 2 : 0;
        avail = md->width - indent;
    }
    if (inline_parse(md, a, b, style, flags, &vis_len))
        return STATUS_NOMEM;
    md->wl.n = 0;
    if (wrap_paragraph(md->vis, vis_len, avail, avail, &md->wl))
        return STATUS_NOMEM;
    for (size_t k = 0; k < md->wl.n; k++) {
        const struct wrap_line *wl = &md->wl.v[k];
        if (!line_begin(md, kind, level, la, lb, indent) ||
            bars_add(md, lead->quote, UI_STYLE_QUOTE_BAR))
            return STATUS_NOMEM;
        if (k == 0 && lead->bullet && lead->marker_col + 1 <= indent &&
            lit_add(md, UI_STYLE_BULLET, lead->marker_col, lead->bullet))
            return STATUS_NOMEM;
        if (k == 0 && lead->num_len && lead->marker_col + (int)lead->num_len < indent + 1 &&
            run_add(md, MD_RUN_TEXT, UI_STYLE_BULLET, 0, lead->marker_col, (int)lead->num_len,
                    lead->num_src, lead->num_len, NULL))
            return STATUS_NOMEM;
        /* pieces overlapping [wl->start, wl->end) of the visible text */
        while (p < md->n_pieces && md->pieces[p].vis + md->pieces[p].len <= wl->start)
            p++;
        int col = indent;
        for (size_t q = p; q < md->n_pieces && md->pieces[q].vis < wl->end; q++) {
            const struct md_piece *pc = &md->pieces[q];
            size_t s0 = pc->vis > wl->start ? pc->vis : wl->start;
            size_t s1 = pc->vis + pc->len < wl->end ? pc->vis + pc->len : wl->end;
            if (s1 <= s0)
                continue;
            int w = wrap_str_width(md->vis + s0, s1 - s0, col - indent);
            if (run_add(md, MD_RUN_TEXT, pc->style, pc->flags, col, w, pc->src + (s0 - pc->vis),
                        s1 - s0, NULL))
                return STATUS_NOMEM;
            col += w;
        }
    }
    return STATUS_OK;
}

static int emit_blank(struct markdown *md, struct md_state *st, size_t a, size_t b, int q)
{
    if (st->last_blank || !st->any_output)
        return STATUS_OK;
    st->last_blank = 1;
    if (!line_begin(md, MD_LINE_BLANK, 0, a, b, 0) || bars_add(md, q, UI_STYLE_QUOTE_BAR))
        return STATUS_NOMEM;
    return STATUS_OK;
}

/* A line of a code block: margin, code cut at the right edge with a marker. */
static int emit_code(struct markdown *md, const struct md_state *st, size_t la, size_t lb, size_t a,
                     size_t b)
{
    const struct md_glyphs *g = glyphs(md);
    int margin = st->fence_disp, col = margin + 2, avail = md->width - col, used;

    if (!line_begin(md, MD_LINE_CODE, 0, la, lb, col) ||
        bars_add(md, st->fence_quote, UI_STYLE_QUOTE_BAR) ||
        (margin + 2 <= md->width && lit_add(md, UI_STYLE_CODE_MARGIN, margin, g->fence_side)))
        return STATUS_NOMEM;
    if (avail < 1 || a == b)
        return STATUS_OK;
    if (wrap_str_width(md->text + a, b - a, 0) <= avail) {
        used = wrap_str_width(md->text + a, b - a, 0);
        return run_add(md, MD_RUN_TEXT, UI_STYLE_CODE, 0, col, used, a, b - a, NULL);
    }
    size_t fit = wrap_fit(md->text + a, b - a, 0, avail - 1, &used);
    if (fit && run_add(md, MD_RUN_TEXT, UI_STYLE_CODE, 0, col, used, a, fit, NULL))
        return STATUS_NOMEM;
    return lit_add(md, UI_STYLE_CODE_TRUNC, md->width - 1, g->trunc);
}

/* Opening fence line (with the language label) or closing one. */
static int emit_fence(struct markdown *md, const struct md_state *st, size_t la, size_t lb,
                      size_t info, size_t info_end, int opening)
{
    const struct md_glyphs *g = glyphs(md);
    int margin = st->fence_disp, col = margin + 3, used;

    if (!line_begin(md, MD_LINE_FENCE, 0, la, lb, col) ||
        bars_add(md, st->fence_quote, UI_STYLE_QUOTE_BAR))
        return STATUS_NOMEM;
    if (margin + 2 > md->width)
        return STATUS_OK;
    if (lit_add(md, UI_STYLE_CODE_MARGIN, margin, opening ? g->fence_top : g->fence_bottom))
        return STATUS_NOMEM;
    if (!opening || info == info_end || col >= md->width)
        return STATUS_OK;
    size_t fit = wrap_fit(md->text + info, info_end - info, 0, md->width - col, &used);
    if (fit && run_add(md, MD_RUN_TEXT, UI_STYLE_CODE_LABEL, 0, col, used, info, fit, NULL))
        return STATUS_NOMEM;
    return STATUS_OK;
}

// ---- block parsing ---------------------------------------------------------------------------

/* Skip up to max columns of indentation at s[*p..b); returns the columns skipped. */
static int skip_indent(const char *s, size_t *p, size_t b, int max)
{
    int col = 0;
    while (*p < b && (s[*p] == ' ' || s[*p] == '\t')) {
        int w = s[*p] == '\t' ? MD_TAB - col % MD_TAB : 1;
        if (col + w > max)
            break;
        col += w;
        (*p)++;
    }
    return col;
}

/* Quote markers at s[*p..b): advances past them (up to max), returns the depth. */
static int strip_quotes(const char *s, size_t *p, size_t b, int max)
{
    int q = 0;
    while (q < max) {
        size_t t = *p;
        skip_indent(s, &t, b, 3);
        if (t >= b || s[t] != '>')
            break;
        t++;
        if (t < b && s[t] == ' ')
            t++;
        *p = t;
        q++;
    }
    return q;
}

static size_t run_of(const char *s, size_t p, size_t b, char ch)
{
    size_t k = 0;
    while (p + k < b && s[p + k] == ch)
        k++;
    return k;
}

static int is_rule(const char *s, size_t p, size_t b)
{
    char ch = s[p];
    int n = 0;
    if (ch != '-' && ch != '*' && ch != '_')
        return 0;
    for (; p < b; p++) {
        if (s[p] == ch)
            n++;
        else if (s[p] != ' ' && s[p] != '\t')
            return 0;
    }
    return n >= 3;
}

/* List marker at s[p..b): its length (0 if none), *num set for ordered markers. */
static size_t list_marker(const char *s, size_t p, size_t b, int *num)
{
    size_t k = 0;
    *num = 0;
    if (s[p] == '-' || s[p] == '*' || s[p] == '+') {
        k = 1;
    } else {
        while (p + k < b && k < 9 && s[p + k] >= '0' && s[p + k] <= '9')
            k++;
        if (k == 0 || p + k >= b || (s[p + k] != '.' && s[p + k] != ')'))
            return 0;
        k++;
        *num = 1;
    }
    if (p + k < b && s[p + k] != ' ' && s[p + k] != '\t')
        return 0;
    return k;
}

static int render_fenced(struct markdown *md, struct md_state *st, size_t la, size_t lb)
{
    const char *s = md->text;
    size_t p = la;

    strip_quotes(s, &p, lb, st->fence_quote);
    size_t t = p;
    skip_indent(s, &t, lb, st->fence_indent + 3);
    size_t k = run_of(s, t, lb, st->fence_ch);
    if (k >= (size_t)st->fence_len) {
        size_t e = t + k;
        while (e < lb && (s[e] == ' ' || s[e] == '\t'))
            e++;
        if (e == lb) {
            st->in_fence = 0;
            return emit_fence(md, st, la, lb, 0, 0, 0);
        }
    }
    skip_indent(s, &p, lb, st->fence_indent);
    return emit_code(md, st, la, lb, p, lb);
}

/*
 * Content at source indentation ind while a list is open: the display indent of the item it
 * continues, or -1 when it ends the list (unindented after a blank line).
 */
static int list_continuation(struct md_state *st, int ind, int after_blank)
{
    int lvl = -1;
    for (int i = 0; i < st->n_list; i++)
        if (st->list[i].marker_col < ind)
            lvl = i;
    if (lvl < 0) {
        if (after_blank) { /* a blank line then an unindented line: the list is over */
            st->n_list = 0;
            return -1;
        }
        lvl = st->n_list - 1; /* lazy continuation */
    }
    st->n_list = lvl + 1;
    return st->list[lvl].disp_indent;
}

static int render_item(struct markdown *md, struct md_state *st, size_t la, size_t lb, size_t p,
                       int ind, size_t mk, int num, int quote_w)
{
    const char *s = md->text;
    struct md_lead lead = {st->quote, 0, NULL, 0, 0, 0};
    size_t c = p + mk;
    int sp = skip_indent(s, &c, lb, 4);

    if (sp == 4 && c < lb) { /* content indented 5+: the extra is content (CommonMark) */
        c = p + mk;
        if (c < lb && (s[c] == ' ' || s[c] == '\t'))
            c++;
    }
    while (st->n_list > 0 && st->list[st->n_list - 1].marker_col > ind)
        st->n_list--;
    if (st->n_list > 0 && st->list[st->n_list - 1].marker_col == ind)
        st->n_list--;
    int mcol = st->n_list > 0 ? st->list[st->n_list - 1].disp_indent : quote_w;
    int mw = num ? (int)mk : 1, indent = mcol + mw + 1;
    if (indent > md->width / 2) { /* deep nesting must not eat the line */
        indent = md->width / 2;
        mcol = indent - mw - 1;
    }
    if (st->n_list < MD_MAX_LIST)
        st->list[st->n_list++] = (struct md_list){ind, indent};
    lead.indent = indent;
    lead.marker_col = mcol;
    if (mcol >= quote_w) {
        if (num) {
            lead.num_src = p;
            lead.num_len = mk;
        } else {
            lead.bullet = glyphs(md)->bullet[(st->n_list - 1) % 3];
        }
    }
    return emit_paragraph(md, MD_LINE_TEXT, 0, la, lb, c, lb, &lead,
                          st->quote ? UI_STYLE_QUOTE : UI_STYLE_NORMAL, 0);
}

static int render_heading(struct markdown *md, struct md_state *st, size_t la, size_t lb, size_t p,
                          size_t k, int quote_w)
{
    const char *s = md->text;
    size_t a = p + k, b = lb;
    struct md_lead lead = {st->quote, quote_w, NULL, 0, 0, 0};

    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    /* optional closing sequence: " ##" */
    size_t e = b;
    while (e > a && s[e - 1] == '#')
        e--;
    if (e == a || (e < b && (s[e - 1] == ' ' || s[e - 1] == '\t'))) {
        b = e;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
    }
    st->n_list = 0;
    return emit_paragraph(md, MD_LINE_HEADING, (int)k, la, lb, a, b, &lead, UI_STYLE_HEADING,
                          UI_FLAG_BOLD);
}

/* One complete (or, at the end of a streaming text, partial) source line [la, lb). */
static int render_line(struct markdown *md, struct md_state *st, size_t la, size_t lb)
{
    const char *s = md->text;
    size_t p = la;

    if (lb > la && s[lb - 1] == '\r')
        lb--;
    if (st->in_fence) {
        st->last_blank = 0;
        st->any_output = 1;
        return render_fenced(md, st, la, lb);
    }
    int q = strip_quotes(s, &p, lb, 64);
    if (q != st->quote)
        st->n_list = 0; /* lists do not cross quote levels */
    st->quote = q;
    int quote_w = 2 * quote_bars(md, q);
    size_t t = p;
    int ind = skip_indent(s, &t, lb, 1 << 20);

    if (t == lb) {
        st->prev_blank = 1;
        return emit_blank(md, st, la, lb, q);
    }
    st->any_output = 1;
    st->last_blank = 0;
    int was_blank = st->prev_blank;
    st->prev_blank = 0;

    /* fenced code: inside a list item when indented like its content */
    size_t k = run_of(s, t, lb, s[t]);
    if ((s[t] == '`' || s[t] == '~') && k >= 3 &&
        !(s[t] == '`' && memchr(s + t + k, '`', lb - t - k))) {
        int disp = quote_w;
        if (st->n_list > 0 && ind > st->list[0].marker_col) {
            int d = list_continuation(st, ind, was_blank);
            if (d >= 0)
                disp = d;
        } else {
            st->n_list = 0;
        }
        size_t info = t + k, info_end = lb;
        while (info < lb && (s[info] == ' ' || s[info] == '\t'))
            info++;
        while (info_end > info && (s[info_end - 1] == ' ' || s[info_end - 1] == '\t'))
            info_end--;
        st->in_fence = 1;
        st->fence_ch = s[t];
        st->fence_len = (int)k;
        st->fence_indent = ind;
        st->fence_disp = disp;
        st->fence_quote = q;
        return emit_fence(md, st, la, lb, info, info_end, 1);
    }
    if (ind <= 3 && is_rule(s, t, lb)) {
        st->n_list = 0;
        if (!line_begin(md, MD_LINE_RULE, 0, la, lb, 0) || bars_add(md, q, UI_STYLE_QUOTE_BAR))
            return STATUS_NOMEM;
        if (md->width > quote_w)
            return run_add(md, MD_RUN_FILL, UI_STYLE_RULE, 0, quote_w, md->width - quote_w, 0, 0,
                           glyphs(md)->rule);
        return STATUS_OK;
    }
    k = run_of(s, t, lb, '#');
    if (ind <= 3 && k >= 1 && k <= 6 && (t + k == lb || s[t + k] == ' ' || s[t + k] == '\t'))
        return render_heading(md, st, la, lb, t, k, quote_w);
    int num;
    size_t mk = list_marker(s, t, lb, &num);
    if (mk)
        return render_item(md, st, la, lb, t, ind, mk, num, quote_w);

    struct md_lead lead = {q, quote_w, NULL, 0, 0, 0};
    if (st->n_list > 0) {
        int d = list_continuation(st, ind, was_blank);
        if (d >= 0)
            lead.indent = d;
    }
    return emit_paragraph(md, MD_LINE_TEXT, 0, la, lb, t, lb, &lead,
                          q ? UI_STYLE_QUOTE : UI_STYLE_NORMAL, 0);
}

int markdown_render(struct markdown *md)
{
    struct md_state st;
    size_t pos;

    if (md->valid) {
        md->n_lines = md->ck_lines;
        md->n_runs = md->ck_runs;
        st = md->ck;
        pos = md->ck_src;
    } else {
        md->n_lines = md->n_runs = 0;
        memset(&st, 0, sizeof(st));
        pos = 0;
    }
    md->last_parsed = md->len - pos;
    while (pos < md->len) {
        const char *nl = memchr(md->text + pos, '\n', md->len - pos);
        size_t end = nl ? (size_t)(nl - md->text) : md->len;
        if (render_line(md, &st, pos, end)) {
            md->valid = 0;
            md->n_lines = md->n_runs = 0;
            return STATUS_NOMEM;
        }
        if (!nl)
            break; /* the unfinished last line: rendered, but not a resume point */
        pos = end + 1;
        md->ck = st;
        md->ck_src = pos;
        md->ck_lines = md->n_lines;
        md->ck_runs = md->n_runs;
        md->valid = 1;
    }
    if (!md->valid) { /* no complete line yet: resume from the start */
        md->ck_src = md->ck_lines = md->ck_runs = 0;
        memset(&md->ck, 0, sizeof(md->ck));
        md->valid = 1;
    }
    return STATUS_OK;
}

size_t markdown_line_text(const struct markdown *md, size_t i, char *out, size_t outcap)
{
    const struct md_line *l = markdown_line(md, i);
    size_t o = 0;
    int col = 0;

    if (outcap == 0)
        return 0;
    out[0] = '\0';
    if (!l)
        return 0;
    for (int r = 0; r < l->n_runs; r++) {
        const struct md_run *run = &md->runs[l->run0 + (size_t)r];
        while (col < run->col && o + 1 < outcap) {
            out[o++] = ' ';
            col++;
        }
        if (run->kind == MD_RUN_TEXT) {
            o += wrap_sanitize(md->text + run->start, run->len, run->col - l->tab_origin, out + o,
                               outcap - o);
        } else {
            int reps = run->kind == MD_RUN_FILL ? run->width : 1;
            size_t n = strlen(run->lit);
            for (int k = 0; k < reps && o + n < outcap; k++) {
                memcpy(out + o, run->lit, n);
                o += n;
            }
        }
        col = run->col + run->width;
    }
    out[o] = '\0';
    return o;
}
