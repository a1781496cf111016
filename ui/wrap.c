/*
 * wrap.c — UTF-8 decoding, display width, safe rendering and word wrap (see wrap.h).
 *
 * The wrapper is one left-to-right scan per line that remembers the last break opportunity;
 * when a cluster does not fit, the line ends there and the scan restarts at the next line's
 * first byte.  Widths are recomputed on the restart rather than cached because a tab's width
 * depends on its column, which changes when the line starts elsewhere.
 */
#include "config.h"
#include "wrap.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "wcwidth_data.h"

// ---- code points -----------------------------------------------------------------------------

uint32_t wrap_decode(const char *s, size_t n, size_t *used)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char b = p[0];
    uint32_t cp;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

    *used = 1;
    if (b < 0x80)
        return b;
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
        cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        cp = b & 0x0F;
        if (b == 0xE0)
            lo = 0xA0; /* overlong */
        else if (b == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        cp = b & 0x07;
        if (b == 0xF0)
            lo = 0x90; /* overlong */
        else if (b == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0xFFFD; /* continuation byte, C0/C1 overlong lead, F5..FF */
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0xFFFD;
    cp = (cp << 6) | (p[1] & 0x3F);
    for (size_t i = 2; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0xFFFD;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    *used = len;
    return cp;
}

static int wcw_in(const struct wcw_range *t, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;

    if (cp < t[0].lo || cp > t[n - 1].hi)
        return 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp > t[mid].hi)
            lo = mid + 1;
        else if (cp < t[mid].lo)
            hi = mid;
        else
            return 1;
    }
    return 0;
}

static int is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF;
}

int wrap_wcwidth(uint32_t cp)
{
    if (cp == 0)
        return 0;
    if (cp >= 0x20 && cp < 0x7F)
        return 1;
    if (is_control(cp))
        return -1;
    if (wcw_in(wcw_zero, sizeof(wcw_zero) / sizeof(wcw_zero[0]), cp))
        return 0;
    if (wcw_in(wcw_wide, sizeof(wcw_wide) / sizeof(wcw_wide[0]), cp))
        return 2;
    return 1;
}

int wrap_cp_width(uint32_t cp)
{
    if (cp == 0 || is_control(cp))
        return 1;
    return wrap_wcwidth(cp);
}

static int is_bidi_control(uint32_t cp)
{
    return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

uint32_t wrap_display_cp(uint32_t cp)
{
    if (cp < 0x20)
        return 0x2400 + cp; /* SYMBOL FOR NULL .. SYMBOL FOR UNIT SEPARATOR */
    if (cp == 0x7F)
        return 0x2421; /* SYMBOL FOR DELETE */
    if (is_control(cp))
        return 0xFFFD; /* C1 controls could be read as escape sequences by 8-bit terminals */
    if (is_bidi_control(cp))
        return 0; /* would reorder the rest of the terminal line ("Trojan Source") */
    return cp;
}

// ---- clusters --------------------------------------------------------------------------------

static int is_zwj(uint32_t cp)
{
    return cp == 0x200D;
}

static int is_skin_tone(uint32_t cp)
{
    return cp >= 0x1F3FB && cp <= 0x1F3FF;
}

static int is_regional(uint32_t cp)
{
    return cp >= 0x1F1E6 && cp <= 0x1F1FF;
}

static int tab_width(int col)
{
    if (col < 0)
        col = 0;
    return WRAP_TAB - col % WRAP_TAB;
}

size_t wrap_cluster(const char *s, size_t n, int col, int *width)
{
    size_t used, pos;
    uint32_t cp = wrap_decode(s, n, &used);
    int w, joined = 0;

    if (cp == '\t') {
        *width = tab_width(col);
        return used;
    }
    w = wrap_cp_width(cp);
    pos = used;
    if (is_control(cp) || cp == 0) {
        *width = w;
        return pos;
    }
    while (pos < n) {
        uint32_t c2 = wrap_decode(s + pos, n - pos, &used);
        if (c2 == 0 || c2 == '\t' || is_control(c2))
            break;
        if (wrap_wcwidth(c2) == 0) {
            joined = is_zwj(c2);
            pos += used;
            continue;
        }
        if (joined || is_skin_tone(c2) || (is_regional(cp) && is_regional(c2) && pos == 4)) {
            /* pos == 4: only the second indicator of a pair joins the first */
            w += wrap_cp_width(c2);
            pos += used;
            joined = 0;
            continue;
        }
        break;
    }
    *width = w;
    return pos;
}

int wrap_str_width(const char *s, size_t n, int col)
{
    int c = col, w;
    size_t i = 0;

    while (i < n) {
        i += wrap_cluster(s + i, n - i, c, &w);
        c += w;
    }
    return c - col;
}

size_t wrap_fit(const char *s, size_t n, int col, int max_cols, int *cols)
{
    int used = 0, w;
    size_t i = 0;

    while (i < n) {
        size_t c = wrap_cluster(s + i, n - i, col + used, &w);
        if (used + w > max_cols)
            break;
        used += w;
        i += c;
    }
    if (cols)
        *cols = used;
    return i;
}

static size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t wrap_sanitize(const char *s, size_t n, int col, char *out, size_t outcap)
{
    size_t i = 0, o = 0, used;
    int c = col;

    if (outcap == 0)
        return 0;
    while (i < n) {
        char unit[8];
        size_t len = 0;
        uint32_t cp = wrap_decode(s + i, n - i, &used);
        int w;

        if (cp == '\t') {
            w = tab_width(c);
            memset(unit, ' ', (size_t)w);
            len = (size_t)w;
        } else {
            uint32_t d = wrap_display_cp(cp);
            w = wrap_cp_width(cp);
            if (d)
                len = utf8_put(d, unit);
        }
        if (o + len > outcap - 1)
            break;
        memcpy(out + o, unit, len);
        o += len;
        c += w;
        i += used;
    }
    out[o] = '\0';
    return o;
}

// ---- word wrap -------------------------------------------------------------------------------

/* CJK punctuation that must not start a line (a small kinsoku set). */
static int no_line_start(uint32_t cp)
{
    static const uint32_t set[] = {
        0x3001, 0x3002, 0x3009, 0x300B, 0x300D, 0x300F, 0x3011, 0x3015, 0x3017, 0x3019,
        0x301B, 0x30FC, 0xFF01, 0xFF09, 0xFF0C, 0xFF0E, 0xFF1A, 0xFF1B, 0xFF1F, 0xFF5D,
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i] == cp)
            return 1;
    return 0;
}

/* CJK opening brackets, which must not end a line. */
static int no_line_end(uint32_t cp)
{
    static const uint32_t set[] = {0x3008, 0x300A, 0x300C, 0x300E, 0x3010, 0x3014,
                                   0x3016, 0x3018, 0x301A, 0xFF08, 0xFF5B};
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i] == cp)
            return 1;
    return 0;
}

static int is_alnum_cp(uint32_t cp)
{
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           (cp >= 0xC0 && cp != 0xD7 && cp != 0xF7 && cp < 0x2000);
}

/* What the scan remembers of the clusters before the current one. */
struct wrap_prev {
    uint32_t cp, cp2; /* first code point of the previous cluster and of the one before */
    int wide;         /* the previous cluster is wide */
};

/* May a line break between the previous cluster and cur (neither of them a space)? */
static int wrap_can_break(const struct wrap_prev *p, uint32_t cur, int cur_wide)
{
    if (p->cp == '-' && is_alnum_cp(p->cp2) && is_alnum_cp(cur))
        return 1;
    if ((p->wide || cur_wide) && !no_line_start(cur) && !no_line_end(p->cp))
        return 1;
    return 0;
}

static int wrap_push(struct wrap_lines *out, size_t start, size_t end, int width, int brk)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 16;
        struct wrap_line *v = realloc(out->v, cap * sizeof(*v));
        if (!v)
            return STATUS_NOMEM;
        out->v = v;
        out->cap = cap;
    }
    out->v[out->n++] = (struct wrap_line){start, end, width, brk};
    return STATUS_OK;
}

void wrap_lines_free(struct wrap_lines *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* Is s[i] a space or tab standing alone?  A space carrying a combining mark is a letter. */
static int blank_at(const char *s, size_t n, size_t i)
{
    int w;
    return (s[i] == ' ' || s[i] == '\t') && wrap_cluster(s + i, n - i, 0, &w) == 1;
}

/* Bytes of the first code points of the cluster s[0..n) that fit in width (at least one). */
static size_t wrap_split_cluster(const char *s, size_t n, int width, int *cols)
{
    size_t i = 0, used;
    int w = 0;

    while (i < n) {
        uint32_t cp = wrap_decode(s + i, n - i, &used);
        int cw = wrap_cp_width(cp);
        if (i > 0 && w + cw > width)
            break;
        w += cw;
        i += used;
    }
    *cols = w;
    return i;
}

/*
 * Scan one line starting at s[pos] with the given width.  Appends the line and returns the
 * start of the next one, or n + 1 when the text is done (negative on NOMEM: see caller).
 */
static int wrap_one_line(const char *s, size_t n, size_t pos, int width, struct wrap_lines *out,
                         size_t *next)
{
    size_t i = pos, brk_end = 0, brk_next = 0, sp_start = 0;
    int col = 0, brk_col = 0, sp_col = 0, in_space = 0, have_brk = 0;
    struct wrap_prev prev = {0, 0, 0};

    for (;;) {
        if (i == n) {
            *next = n + 1;
            return wrap_push(out, pos, i, col, WRAP_BREAK_END);
        }
        if (s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')) {
            *next = i + (s[i] == '\r' ? 2 : 1);
            return wrap_push(out, pos, i, col, WRAP_BREAK_HARD);
        }
        int w;
        size_t used, c = wrap_cluster(s + i, n - i, col, &w);
        uint32_t cp = wrap_decode(s + i, n - i, &used);
        int blank = c == 1 && (s[i] == ' ' || s[i] == '\t'), wide = w >= 2 && cp != '\t';

        if (!blank && i > pos) {
            if (in_space && sp_start > pos) {
                have_brk = 1;
                brk_end = sp_start;
                brk_col = sp_col;
                brk_next = i;
            } else if (!in_space && wrap_can_break(&prev, cp, wide)) {
                have_brk = 1;
                brk_end = brk_next = i;
                brk_col = col;
            }
        }
        if (col + w > width) {
            if (blank && i > pos) {
                size_t j = i, end = in_space ? sp_start : i;
                int end_col = in_space ? sp_col : col;
                while (j < n && blank_at(s, n, j))
                    j++;
                if (j < n && (s[j] == '\n' || (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n'))) {
                    *next = j + (s[j] == '\r' ? 2 : 1);
                    return wrap_push(out, pos, end, end_col, WRAP_BREAK_HARD);
                }
                *next = j;
                return wrap_push(out, pos, end, end_col, WRAP_BREAK_SOFT);
            }
            if (have_brk) {
                *next = brk_next;
                return wrap_push(out, pos, brk_end, brk_col, WRAP_BREAK_SOFT);
            }
            if (i > pos) {
                *next = i;
                return wrap_push(out, pos, i, col, WRAP_BREAK_FORCED);
            }
            if (blank) {
                /* a tab wider than the whole line, as indentation: drop it */
                pos = i = i + c;
                continue;
            }
            /* one cluster wider than the whole line: split it, or show it alone */
            int cw;
            size_t take = wrap_split_cluster(s + i, c, width, &cw);
            if (i + take == n) {
                *next = n + 1;
                return wrap_push(out, pos, n, cw, WRAP_BREAK_END);
            }
            *next = i + take;
            return wrap_push(out, pos, i + take, cw, WRAP_BREAK_FORCED);
        }
        if (blank) {
            if (!in_space) {
                sp_start = i;
                sp_col = col;
                in_space = 1;
            }
        } else {
            in_space = 0;
        }
        prev.cp2 = prev.cp;
        prev.cp = cp;
        prev.wide = wide;
        col += w;
        i += c;
    }
}

int wrap_paragraph(const char *s, size_t n, int width_first, int width_rest, struct wrap_lines *out)
{
    size_t pos = 0, next;
    int first = 1;

    if (width_first < 1 || width_rest < 1)
        return STATUS_INVALID;
    while (pos <= n) {
        int st = wrap_one_line(s, n, pos, first ? width_first : width_rest, out, &next);
        if (st != STATUS_OK)
            return st;
        if (next > n && out->v[out->n - 1].brk == WRAP_BREAK_END)
            break;
        /* A soft break that consumed the rest of the text as spaces ends it here. */
        if (next == n && out->v[out->n - 1].brk == WRAP_BREAK_SOFT)
            break;
        pos = next;
        first = 0;
    }
    return STATUS_OK;
}

int wrap_locate(const struct wrap_lines *l, const char *s, size_t off, size_t *row, int *col)
{
    size_t lo = 0, hi;

    if (l->n == 0)
        return -1;
    /* the last line starting at or before off */
    hi = l->n;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (l->v[mid].start <= off)
            lo = mid;
        else
            hi = mid;
    }
    const struct wrap_line *ln = &l->v[lo];
    size_t end = off < ln->start ? ln->start : off;
    if (end > ln->end) {
        /* in the gap after the line: count dropped blanks, but not the newline */
        size_t e = ln->end;
        while (e < end && (s[e] == ' ' || s[e] == '\t'))
            e++;
        end = e;
    }
    *row = lo;
    *col = wrap_str_width(s + ln->start, end - ln->start, 0);
    return 0;
}
