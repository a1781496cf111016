/*
 * md_inline.c — code spans, escapes and emphasis of one Markdown line (see md_inline.h).
 *
 * Attributes are per byte rather than a tree: the renderer only needs to know, for each source
 * byte, whether it is shown and with which look, and per-byte marks make nesting free (a byte
 * inside strong inside emphasis simply carries both bits).
 */
#include "config.h"
#include "md_inline.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

static int is_punct(unsigned char c)
{
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

struct md_delim {
    size_t lo, hi; /* unused delimiter characters: [lo, hi) */
    int orig;      /* length of the run as written */
    char ch;
    int can_open, can_close;
    long prev, next; /* neighbours still on the delimiter stack (-1: none) */
};

/* Code spans and backslash escapes of s[a..b) into attr (indexed from a). */
static void inline_code(const char *s, size_t a, size_t b, unsigned char *attr)
{
    /* no_closer[k]: a search already found no run of k backticks further on, so later
     * openers of that length need not search again (keeps a line of stray ` linear) */
    unsigned char no_closer[64] = {0};
    size_t i = a;
    while (i < b) {
        if (s[i] == '\\' && i + 1 < b && is_punct((unsigned char)s[i + 1])) {
            attr[i - a] |= MD_AT_HIDDEN;
            attr[i + 1 - a] |= MD_AT_LITERAL;
            i += 2;
            continue;
        }
        if (s[i] != '`') {
            i++;
            continue;
        }
        size_t k = 0, j = b;
        while (i + k < b && s[i + k] == '`')
            k++;
        for (j = (k < 64 && no_closer[k]) ? b : i + k; j < b;) {
            size_t m = 0;
            while (j + m < b && s[j + m] == '`')
                m++;
            if (m == k)
                break;
            j += m ? m : 1;
        }
        if (j >= b) { /* no closer: the backticks are literal */
            if (k < 64)
                no_closer[k] = 1;
            for (size_t t = i; t < i + k; t++)
                attr[t - a] |= MD_AT_LITERAL;
            i += k;
            continue;
        }
        size_t c0 = i + k, c1 = j;
        /* one space on both sides of non-blank content is padding (`` `x` ``) */
        if (c1 - c0 >= 2 && s[c0] == ' ' && s[c1 - 1] == ' ') {
            size_t t = c0;
            while (t < c1 && s[t] == ' ')
                t++;
            if (t < c1) {
                attr[c0 - a] |= MD_AT_HIDDEN;
                attr[c1 - 1 - a] |= MD_AT_HIDDEN;
            }
        }
        for (size_t t = i; t < i + k; t++)
            attr[t - a] |= MD_AT_HIDDEN;
        for (size_t t = c0; t < c1; t++)
            attr[t - a] |= MD_AT_CODE | MD_AT_LITERAL;
        for (size_t t = j; t < j + k; t++)
            attr[t - a] |= MD_AT_HIDDEN;
        i = j + k;
    }
}

/* Collect the * and _ delimiter runs with CommonMark's flanking rules. */
static size_t inline_delims(const char *s, size_t a, size_t b, const unsigned char *attr,
                            struct md_delim *d, size_t max)
{
    size_t n = 0, i = a;
    while (i < b && n < max) {
        char ch = s[i];
        if ((ch != '*' && ch != '_') ||
            (attr[i - a] & (MD_AT_LITERAL | MD_AT_HIDDEN | MD_AT_CODE))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < b && s[j] == ch && !(attr[j - a] & (MD_AT_LITERAL | MD_AT_HIDDEN | MD_AT_CODE)))
            j++;
        unsigned char before = i > a ? (unsigned char)s[i - 1] : ' ';
        unsigned char after = j < b ? (unsigned char)s[j] : ' ';
        int left = !is_space(after) && (!is_punct(after) || is_space(before) || is_punct(before));
        int right = !is_space(before) && (!is_punct(before) || is_space(after) || is_punct(after));
        struct md_delim *x = &d[n++];
        x->lo = i;
        x->hi = j;
        x->orig = (int)(j - i);
        x->ch = ch;
        if (ch == '*') {
            x->can_open = left;
            x->can_close = right;
        } else { /* no intraword emphasis with _ (snake_case stays as typed) */
            x->can_open = left && (!right || is_punct(before));
            x->can_close = right && (!left || is_punct(after));
        }
        i = j;
    }
    return n;
}

static void delim_remove(struct md_delim *d, long i)
{
    if (d[i].prev >= 0)
        d[d[i].prev].next = d[i].next;
    if (d[i].next >= 0)
        d[d[i].next].prev = d[i].prev;
}

/* Find the opener for closer c, or -1; never looks at or below bottom. */
static long find_opener(const struct md_delim *d, long c, long bottom)
{
    for (long o = d[c].prev; o >= 0 && o > bottom; o = d[o].prev) {
        if (d[o].ch != d[c].ch || !d[o].can_open || d[o].hi == d[o].lo)
            continue;
        if ((d[o].can_close || d[c].can_open) && (d[o].orig + d[c].orig) % 3 == 0 &&
            !(d[o].orig % 3 == 0 && d[c].orig % 3 == 0))
            continue; /* rule of three */
        return o;
    }
    return -1;
}

/*
 * Match closers with openers (CommonMark "process emphasis", without link brackets).  The
 * stack is a linked list so that delimiters consumed between a pair are skipped for good, and
 * bottom[] remembers, per kind of closer, below which no opener can exist — both keep a line
 * full of unmatched * linear.  Emphasis spans are added to depth counters (+1 at the start,
 * -1 past the end) and turned into bits once, so nested spans cost nothing extra.
 */
static void inline_emphasis(unsigned char *attr, struct md_delim *d, long n, int *bold, int *emph)
{
    long bottom[2][3][2];

    for (int i = 0; i < 12; i++)
        (&bottom[0][0][0])[i] = -1;
    for (long i = 0; i < n; i++) {
        d[i].prev = i - 1;
        d[i].next = i + 1 < n ? i + 1 : -1;
    }
    for (long c = n > 0 ? 0 : -1; c >= 0;) {
        long next = d[c].next;
        if (!d[c].can_close) {
            c = next;
            continue;
        }
        long *bot = &bottom[d[c].ch == '_'][d[c].orig % 3][d[c].can_open != 0];
        while (d[c].hi > d[c].lo) {
            long o = find_opener(d, c, *bot);
            if (o < 0) {
                *bot = d[c].prev;
                break;
            }
            size_t use = (d[o].hi - d[o].lo >= 2 && d[c].hi - d[c].lo >= 2) ? 2 : 1;
            int *depth = use == 2 ? bold : emph;
            d[o].hi -= use;
            for (size_t t = d[o].hi; t < d[o].hi + use; t++)
                attr[t] |= MD_AT_HIDDEN;
            depth[d[o].hi + use]++;
            depth[d[c].lo]--;
            for (size_t t = d[c].lo; t < d[c].lo + use; t++)
                attr[t] |= MD_AT_HIDDEN;
            d[c].lo += use;
            for (long m = d[o].next; m != c; m = d[m].next) /* inside: literal from now on */
                delim_remove(d, m);
            if (d[o].hi == d[o].lo)
                delim_remove(d, o);
        }
        if (d[c].hi == d[c].lo || !d[c].can_open)
            delim_remove(d, c);
        c = next;
    }
}

int md_inline_scan(const char *s, size_t n, unsigned char *attr)
{
    /* at most one delimiter run per two bytes */
    struct md_delim *d = malloc((n / 2 + 1) * sizeof(*d));
    int *depth = calloc(2 * (n + 1), sizeof(int)); /* bold, then emphasis */

    if (!d || !depth) {
        free(d);
        free(depth);
        return STATUS_NOMEM;
    }
    memset(attr, 0, n);
    inline_code(s, 0, n, attr);
    size_t nd = inline_delims(s, 0, n, attr, d, n / 2 + 1);
    inline_emphasis(attr, d, (long)nd, depth, depth + n + 1);
    int b = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        b += depth[i];
        e += depth[n + 1 + i];
        if (b > 0)
            attr[i] |= MD_AT_BOLD;
        if (e > 0)
            attr[i] |= MD_AT_EMPH;
    }
    free(d);
    free(depth);
    return STATUS_OK;
}
