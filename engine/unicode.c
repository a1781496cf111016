/*
 * unicode.c — UTF-8 coding, code point classes, GPT-2's byte alphabet and the hand-coded
 * pre-tokenizer regexes of byte-level BPE (see unicode.h for the semantics followed).
 *
 * A rule is a matcher: given a position inside a piece it returns the length of the match that
 * the regex would find starting exactly there (0 for none).  One driver turns matchers into
 * splits the way std::regex_iterator does in llama.cpp: scan left to right, emit each match as a
 * piece and each stretch between matches as a piece of its own.  Matchers never look outside
 * the piece they are given, because llama.cpp runs each regex on each previous piece separately.
 */
#include "config.h"
#include "unicode.h"

#include <stdlib.h>

#include "status.h"
#include "unicode_data.h"

unsigned unicode_flags(uint32_t cp)
{
    size_t lo = 0, hi = sizeof(unicode_runs) / sizeof(unicode_runs[0]);

    if (cp > 0x10FFFF)
        return UNICODE_UNASSIGNED;
    /* find the last run starting at or before cp */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((unicode_runs[mid] >> 8) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return unicode_runs[lo] & 0xFF;
}

size_t unicode_utf8_len(unsigned char b)
{
    static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[b >> 4];
}

static int is_cont(unsigned char b)
{
    return (b & 0xC0) == 0x80;
}

uint32_t unicode_utf8_decode(const char *s, size_t n, size_t *used)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;

    *used = 1;
    if (u[0] < 0x80)
        return u[0];
    if (u[0] < 0xC0)
        return 0xFFFD; /* stray continuation byte */
    if (u[0] < 0xE0) {
        if (n < 2 || !is_cont(u[1]))
            return 0xFFFD;
        *used = 2;
        return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    }
    if (u[0] < 0xF0) {
        if (n < 3 || !is_cont(u[1]) || !is_cont(u[2]))
            return 0xFFFD;
        *used = 3;
        return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    }
    if (u[0] < 0xF8) {
        if (n < 4 || !is_cont(u[1]) || !is_cont(u[2]) || !is_cont(u[3]))
            return 0xFFFD;
        cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
             ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
        /* llama.cpp decodes these too but then throws when re-encoding; we replace them */
        if (cp > 0x10FFFF)
            return 0xFFFD;
        *used = 4;
        return cp;
    }
    return 0xFFFD;
}

size_t unicode_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;

    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | ((cp >> 18) & 0x07));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The 68 bytes that are not printable stand in for U+0100.. in this order:
 * 0x00–0x20 (33), 0x7F–0xA0 (34), 0xAD (1). */
static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t unicode_byte_to_cpt(unsigned char b)
{
    if (byte_is_printable(b))
        return b;
    if (b <= 0x20)
        return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu);
    return 0x100u + 67; /* 0xAD */
}

int unicode_cpt_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp < 0x100 + 33)
        return (int)(cp - 0x100);
    if (cp < 0x100 + 67)
        return (int)(0x7F + (cp - 0x100 - 33));
    if (cp == 0x100 + 67)
        return 0xAD;
    return -1;
}

int unicode_pieces_push(struct unicode_pieces *p, size_t len)
{
    if (len == 0)
        return STATUS_OK;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        size_t *l = realloc(p->len, cap * sizeof(*l));
        if (!l)
            return STATUS_NOMEM;
        p->len = l;
        p->cap = cap;
    }
    p->len[p->n++] = len;
    return STATUS_OK;
}

void unicode_pieces_free(struct unicode_pieces *p)
{
    free(p->len);
    p->len = NULL;
    p->n = p->cap = 0;
}

// ---- matchers ------------------------------------------------------------------------------

/* A view of one piece: positions are absolute indices into the text, end is exclusive. */
struct span {
    const uint32_t *c;
    const uint8_t *f;
    size_t end;
};

/* Flags at i, or NONE past the piece end: a value no predicate below accepts as a class, so
 * "followed by a non-space" and "at the end" stay distinguishable, as in llama.cpp. */
#define NONE 0x80u

static unsigned fl(const struct span *s, size_t i)
{
    return i < s->end ? s->f[i] : NONE;
}

static int is_ws(unsigned f)
{
    return (f & UNICODE_WHITESPACE) != 0;
}

static int is_cls(unsigned f, unsigned cls)
{
    return f != NONE && (f & UNICODE_CLASS_MASK) == cls;
}

/* [^\s\p{L}\p{N}] — and present (not past the end) */
static int is_other(unsigned f)
{
    return f != NONE && !is_ws(f) && !is_cls(f, UNICODE_LETTER) && !is_cls(f, UNICODE_NUMBER);
}

static size_t run_cls(const struct span *s, size_t p, unsigned cls)
{
    size_t q = p;
    while (is_cls(fl(s, q), cls))
        q++;
    return q - p;
}

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's 't 're 've 'm 'll 'd at p (optionally case-insensitive): match length or 0 */
static size_t match_contraction(const struct span *s, size_t p, int icase)
{
    uint32_t a, b;

    if (s->c[p] != '\'' || p + 1 >= s->end)
        return 0;
    a = icase ? ascii_lower(s->c[p + 1]) : s->c[p + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (p + 2 >= s->end)
        return 0;
    b = icase ? ascii_lower(s->c[p + 2]) : s->c[p + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

static size_t match_gpt2(const struct span *s, size_t p)
{
    size_t k, q, n;
    int sp = s->c[p] == ' ';
    unsigned f2 = sp ? fl(s, p + 1) : fl(s, p);

    if ((k = match_contraction(s, p, 0)) != 0)
        return k;
    if (is_cls(f2, UNICODE_LETTER))                  /* ' ?\p{L}+' */
        return sp + run_cls(s, p + sp, UNICODE_LETTER);
    if (is_cls(f2, UNICODE_NUMBER))                  /* ' ?\p{N}+' */
        return sp + run_cls(s, p + sp, UNICODE_NUMBER);
    if (is_other(f2)) {                              /* ' ?[^\s\p{L}\p{N}]+' */
        q = p + sp;
        while (is_other(fl(s, q)))
            q++;
        return q - p;
    }
    for (n = 0; is_ws(fl(s, p + n)); n++)
        ;
    if (n > 1 && p + n < s->end)                     /* '\s+(?!\S)': leave one for the next word */
        return n - 1;
    return n ? n : 1;                                /* '\s+' */
}

/* The llama3 regex; max_digits is 3 for llama3 and 1 for qwen2. */
static size_t match_llama3(const struct span *s, size_t p, size_t max_digits)
{
    uint32_t c = s->c[p];
    unsigned f = fl(s, p), f2;
    size_t k, q, n, last_nl;

    if ((k = match_contraction(s, p, 1)) != 0)
        return k;
    /* '[^\r\n\p{L}\p{N}]?\p{L}+': the optional char is taken only if a letter follows it */
    if (c != '\r' && c != '\n' && !is_cls(f, UNICODE_NUMBER)) {
        if (is_cls(f, UNICODE_LETTER))
            return run_cls(s, p, UNICODE_LETTER);
        if (is_cls(fl(s, p + 1), UNICODE_LETTER))
            return 1 + run_cls(s, p + 1, UNICODE_LETTER);
    }
    if (is_cls(f, UNICODE_NUMBER)) {                 /* '\p{N}{1,3}' */
        for (q = p; q - p < max_digits && is_cls(fl(s, q), UNICODE_NUMBER); q++)
            ;
        return q - p;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' — a lone final space lands here too and matches itself, which
     * is also what the '\s+(?!\S)' alternative would give it */
    f2 = c == ' ' ? fl(s, p + 1) : f;
    if (!is_ws(f2) && !is_cls(f2, UNICODE_LETTER) && !is_cls(f2, UNICODE_NUMBER)) {
        q = p + (c == ' ');
        while (is_other(fl(s, q)))
            q++;
        while (q < s->end && (s->c[q] == '\r' || s->c[q] == '\n'))
            q++;
        return q - p;
    }
    /* '\s*[\r\n]+': whitespace up to and including the last newline of the run */
    last_nl = 0;
    for (n = 0; is_ws(fl(s, p + n)); n++)
        if (s->c[p + n] == '\r' || s->c[p + n] == '\n')
            last_nl = n + 1;
    if (last_nl)
        return last_nl;
    if (n > 1 && p + n < s->end)                     /* '\s+(?!\S)' */
        return n - 1;
    return n ? n : 1;                                /* '\s+' */
}

static int in_ranges(uint32_t c, const uint32_t (*r)[2], size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid][0])
            hi = mid;
        else if (c > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static int is_dsk_letter(uint32_t c)
{
    return in_ranges(c, unicode_dsk_letter, sizeof(unicode_dsk_letter) / sizeof(unicode_dsk_letter[0]));
}

/* [!-/:-~！-／：-～‘-‟　-。] */
static int is_dsk_punct(uint32_t c)
{
    static const uint32_t r[][2] = {
        {0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002}, {0xFF01, 0xFF0F},
        {0xFF1A, 0xFF5E},
    };
    return in_ranges(c, r, sizeof(r) / sizeof(r[0]));
}

/* [一-龥ࠀ-一가-퟿]: U+4E00–U+9FA5, U+0800–U+4E00, U+AC00–U+D7FF */
static int is_cjk(uint32_t c)
{
    return (c >= 0x0800 && c <= 0x9FA5) || (c >= 0xAC00 && c <= 0xD7FF);
}

static int is_bpe_punct(const struct span *s, size_t i, int backtick)
{
    uint32_t c = s->c[i];
    if (is_cls(s->f[i], UNICODE_PUNCT))
        return 1;
    return c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' ||
           c == '|' || (backtick && c == '`');
}

/* '\s?X+' for a class X given as a predicate on a position */
static size_t match_space_run(const struct span *s, size_t p,
                              int (*in_class)(const struct span *, size_t))
{
    size_t q = p;

    if (is_ws(s->f[p])) {
        /* \s? takes the space only if the class follows; X never contains a space itself */
        if (p + 1 >= s->end || !in_class(s, p + 1))
            return 0;
        q++;
    }
    while (q < s->end && in_class(s, q))
        q++;
    return q - p;
}

static int at_letter(const struct span *s, size_t i)
{
    return is_cls(s->f[i], UNICODE_LETTER);
}

static int at_punct(const struct span *s, size_t i)
{
    return is_cls(s->f[i], UNICODE_PUNCT);
}

static int at_dsk_letter(const struct span *s, size_t i)
{
    return is_dsk_letter(s->c[i]);
}

/* llama.cpp matches the literal classes with std::wregex after replacing every non-ASCII
 * whitespace code point by '\v', so U+3000 is a space there and never a member of a class. */
static int at_dsk_punct(const struct span *s, size_t i)
{
    return is_dsk_punct(s->c[i]) && !(s->c[i] > 0x7F && is_ws(s->f[i]));
}

static int is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

static size_t match_rule(enum unicode_rule rule, const struct span *s, size_t p)
{
    size_t q;

    switch (rule) {
    case UNICODE_RULE_GPT2:
        return match_gpt2(s, p);
    case UNICODE_RULE_LLAMA3:
        return match_llama3(s, p, 3);
    case UNICODE_RULE_QWEN2:
        return match_llama3(s, p, 1);
    case UNICODE_RULE_NUMBER:
        return is_cls(s->f[p], UNICODE_NUMBER);
    case UNICODE_RULE_NUMBERS:
        return run_cls(s, p, UNICODE_NUMBER);
    case UNICODE_RULE_DIGIT3:
        return p + 2 < s->end && is_digit(s->c[p]) && is_digit(s->c[p + 1]) &&
                       is_digit(s->c[p + 2])
                   ? 3
                   : 0;
    case UNICODE_RULE_PUNCT:
    case UNICODE_RULE_PUNCT_FALCON:
        for (q = p; q < s->end && is_bpe_punct(s, q, rule == UNICODE_RULE_PUNCT_FALCON); q++)
            ;
        return q - p;
    case UNICODE_RULE_NEWLINE:
        return s->c[p] == '\r' || s->c[p] == '\n';
    case UNICODE_RULE_SPACE_LETTERS:
        return match_space_run(s, p, at_letter);
    case UNICODE_RULE_SPACE_PUNCT:
        return match_space_run(s, p, at_punct);
    case UNICODE_RULE_DSK_LETTERS:
        return match_space_run(s, p, at_dsk_letter);
    case UNICODE_RULE_DSK_PUNCT:
        return match_space_run(s, p, at_dsk_punct);
    case UNICODE_RULE_CJK: /* the spaces in U+2000–U+3000 are '\v' to llama.cpp's wregex */
        for (q = p; q < s->end && is_cjk(s->c[q]) && !is_ws(s->f[q]); q++)
            ;
        return q - p;
    case UNICODE_RULE_TRAILING_SPACE:
        break; /* handled by split_trailing_space */
    }
    return 0;
}

/* '\s+$': the maximal whitespace run that reaches the end of the piece, if any.  Done apart
 * from the driver so that long inner runs of spaces are not rescanned at every position. */
static int split_trailing_space(const struct span *s, size_t start, struct unicode_pieces *out)
{
    size_t t = s->end;
    int st;

    while (t > start && is_ws(s->f[t - 1]))
        t--;
    if ((st = unicode_pieces_push(out, t - start)) != STATUS_OK)
        return st;
    return unicode_pieces_push(out, s->end - t);
}

int unicode_split(enum unicode_rule rule, const struct unicode_text *text,
                  const struct unicode_pieces *in, struct unicode_pieces *out)
{
    size_t start = 0;
    int st;

    for (size_t i = 0; i < in->n; i++) {
        struct span s = {text->cpts, text->flags, start + in->len[i]};
        size_t p = start, u = start; /* u: first position not yet emitted */

        if (rule == UNICODE_RULE_TRAILING_SPACE) {
            if ((st = split_trailing_space(&s, start, out)) != STATUS_OK)
                return st;
            start = s.end;
            continue;
        }
        while (p < s.end) {
            size_t k = match_rule(rule, &s, p);
            if (k == 0) {
                p++;
                continue;
            }
            if ((st = unicode_pieces_push(out, p - u)) != STATUS_OK ||
                (st = unicode_pieces_push(out, k)) != STATUS_OK)
                return st;
            p += k;
            u = p;
        }
        if ((st = unicode_pieces_push(out, s.end - u)) != STATUS_OK)
            return st;
        start = s.end;
    }
    return STATUS_OK;
}
