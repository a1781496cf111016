/*
 * test_wrap.c — UTF-8 decoding, widths, safe rendering and word wrap (ui/wrap.c).
 *
 * Fixed cases pin the semantics; a randomised part wraps texts built from awkward pieces
 * (CJK, emoji, ZWJ sequences, combining marks, tabs, controls, invalid bytes) at many widths and
 * checks the invariants the transcript relies on: no line wider than its width, no line boundary
 * inside a UTF-8 sequence or a cluster, byte offsets that rebuild the text exactly.
 */
#define _XOPEN_SOURCE 700
#include "config.h"

#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "status.h"
#include "tap.h"
#include "wrap.h"

#define FAMILY     "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7"
#define THUMB_TONE "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"
#define FLAG_FR    "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7"
#define FLAG_DE    "\xF0\x9F\x87\xA9\xF0\x9F\x87\xAA"

static int strw(const char *s)
{
    return wrap_str_width(s, strlen(s), 0);
}

static void test_decode(void)
{
    size_t u;
    uint32_t cp;

    cp = wrap_decode("A", 1, &u);
    ok(cp == 'A' && u == 1, "decode ASCII");
    cp = wrap_decode("\xC3\xA9", 2, &u);
    ok(cp == 0xE9 && u == 2, "decode 2-byte (é)");
    cp = wrap_decode("\xE4\xB8\xAD", 3, &u);
    ok(cp == 0x4E2D && u == 3, "decode 3-byte (中)");
    cp = wrap_decode("\xF0\x9F\x98\x80", 4, &u);
    ok(cp == 0x1F600 && u == 4, "decode 4-byte (😀)");
    cp = wrap_decode("\xF4\x8F\xBF\xBF", 4, &u);
    ok(cp == 0x10FFFF && u == 4, "decode U+10FFFF");
    cp = wrap_decode("\xC0\x80", 2, &u);
    ok(cp == 0xFFFD && u == 1, "overlong C0 80 -> U+FFFD, one byte");
    cp = wrap_decode("\xE0\x80\xAF", 3, &u);
    ok(cp == 0xFFFD && u == 1, "overlong 3-byte -> U+FFFD");
    cp = wrap_decode("\xF0\x80\x80\xAF", 4, &u);
    ok(cp == 0xFFFD && u == 1, "overlong 4-byte -> U+FFFD");
    cp = wrap_decode("\xED\xA0\x80", 3, &u);
    ok(cp == 0xFFFD && u == 1, "surrogate -> U+FFFD");
    cp = wrap_decode("\xF4\x90\x80\x80", 4, &u);
    ok(cp == 0xFFFD && u == 1, "past U+10FFFF -> U+FFFD");
    cp = wrap_decode("\xE4\xB8", 2, &u);
    ok(cp == 0xFFFD && u == 1, "truncated sequence -> U+FFFD");
    cp = wrap_decode("\xE4\x41\xAD", 3, &u);
    ok(cp == 0xFFFD && u == 1, "bad continuation -> U+FFFD");
    cp = wrap_decode("\x80", 1, &u);
    ok(cp == 0xFFFD && u == 1, "lone continuation byte -> U+FFFD");
    cp = wrap_decode("\xFF", 1, &u);
    ok(cp == 0xFFFD && u == 1, "0xFF -> U+FFFD");
}

static void test_cp_width(void)
{
    static const struct {
        uint32_t cp;
        int w;
        const char *what;
    } t[] = {
        {'a', 1, "ASCII letter"},
        {0xE9, 1, "Latin é"},
        {0x0301, 0, "combining acute"},
        {0x4E2D, 2, "CJK ideograph"},
        {0x3042, 2, "hiragana"},
        {0xAC00, 2, "Hangul syllable"},
        {0x1160, 0, "Hangul medial"},
        {0xFF21, 2, "fullwidth A"},
        {0xFF61, 1, "halfwidth kana"},
        {0x1F600, 2, "emoji face"},
        {0x1F44D, 2, "emoji thumb"},
        {0x231A, 2, "watch (emoji presentation)"},
        {0x2603, 1, "snowman (text presentation)"},
        {0x200D, 0, "ZWJ"},
        {0xFE0F, 0, "VS16"},
        {0x200B, 0, "ZWSP"},
        {0x00AD, 1, "soft hyphen"},
        {0xFEFF, 0, "BOM"},
        {0x0600, 1, "Arabic number sign"},
        {0x302A, 0, "ideographic tone mark (Mn and W)"},
        {0x20000, 2, "CJK ext B"},
        {0x2A6E0, 2, "unassigned, CJK ext plane"},
        {0x1F6FF, 1, "unassigned outside the wide blocks"},
        {0xE000, 1, "private use"},
        {0x0E33, 1, "Thai sara am"},
        {0, 0, "NUL"},
        {0x1B, -1, "ESC"},
        {0x7F, -1, "DEL"},
        {0x85, -1, "C1 NEL"},
        {0x2028, -1, "line separator"},
        {0xD800, -1, "surrogate"},
        {0x110000, -1, "past Unicode"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int w = wrap_wcwidth(t[i].cp);
        ok(w == t[i].w, "wcwidth U+%04X %s = %d (got %d)", (unsigned)t[i].cp, t[i].what, t[i].w, w);
    }
    ok(wrap_cp_width(0x1B) == 1 && wrap_cp_width(0) == 1 && wrap_cp_width(0x85) == 1,
       "controls take one column on screen");
    ok(wrap_cp_width(0x4E2D) == 2 && wrap_cp_width(0x301) == 0, "cp_width agrees elsewhere");

    /* Against the C library where both are settled (skip if the locale is missing). */
    if (setlocale(LC_CTYPE, "C.UTF-8") || setlocale(LC_CTYPE, "en_US.UTF-8")) {
        static const uint32_t sample[] = {'a',     0xE9,   0x301,  0x4E2D, 0x3042, 0xAC00, 0xFF21,
                                          0x1F600, 0x200D, 0xFE0F, 0x0410, 0x05D0, 0x0915};
        int agree = 1;
        for (size_t i = 0; i < sizeof(sample) / sizeof(sample[0]); i++)
            if (wcwidth((wchar_t)sample[i]) != wrap_wcwidth(sample[i])) {
                diag("U+%04X libc %d ours %d", (unsigned)sample[i], wcwidth((wchar_t)sample[i]),
                     wrap_wcwidth(sample[i]));
                agree = 0;
            }
        ok(agree, "agrees with the C library's wcwidth on settled code points");
        int mism = 0;
        for (uint32_t cp = 0; cp < 0x40000; cp++) {
            int g = (cp >= 0xD800 && cp <= 0xDFFF) ? -1 : wcwidth((wchar_t)cp);
            if (g >= 0 && g != wrap_wcwidth(cp))
                mism++;
        }
        diag("code points where the C library (other Unicode version) disagrees: %d", mism);
        setlocale(LC_CTYPE, "C");
    } else {
        skip("no UTF-8 locale to compare with");
    }
}

static void test_str_width(void)
{
    ok(strw("") == 0, "empty string width 0");
    ok(strw("hello") == 5, "ASCII width");
    ok(strw("na\xC3\xAFve") == 5, "precomposed Latin");
    ok(strw("e\xCC\x81") == 1, "e + combining acute = 1");
    ok(strw("a\xCC\x81\xCC\xA7") == 1, "two combining marks = 1");
    ok(strw("\xE4\xB8\xAD\xE6\x96\x87") == 4, "two CJK = 4");
    ok(strw("\xF0\x9F\x98\x80") == 2, "emoji = 2");
    ok(strw(FAMILY) == 6, "ZWJ family = sum of its parts (wcwidth) = 6");
    ok(strw(THUMB_TONE) == 4, "emoji + skin tone = 4 (wcwidth)");
    ok(strw(FLAG_FR) == 2, "regional-indicator flag = 2");
    ok(strw("\xE2\x9D\xA4\xEF\xB8\x8F") == 1, "heart + VS16 = 1 (wcwidth)");
    ok(strw("a\x01z") == 3, "control byte = 1 (drawn as a picture)");
    ok(strw("\x1b[31m") == 5, "escape sequence is shown, not obeyed");
    ok(strw("a\xFF\xFEz") == 4, "invalid bytes = 1 each");
    ok(strw("\xE4\xB8") == 2, "truncated CJK = 2 replacement chars");
    ok(strw("a\tb") == 9, "tab to column 8");
    ok(wrap_str_width("a\tb", 3, 3) == 6, "tab counted from the tab origin");
    ok(wrap_str_width("\t", 1, 8) == 8 && wrap_str_width("\t", 1, 7) == 1, "tab at stops");
}

static void test_cluster(void)
{
    int w;
    size_t n;

    n = wrap_cluster("e\xCC\x81x", 4, 0, &w);
    ok(n == 3 && w == 1, "cluster: base + combining");
    n = wrap_cluster(FAMILY, strlen(FAMILY), 0, &w);
    ok(n == strlen(FAMILY) && w == 6, "cluster: whole ZWJ sequence");
    n = wrap_cluster(THUMB_TONE "x", strlen(THUMB_TONE) + 1, 0, &w);
    ok(n == strlen(THUMB_TONE) && w == 4, "cluster: emoji + modifier");
    n = wrap_cluster(FLAG_FR FLAG_DE, 16, 0, &w);
    ok(n == 8 && w == 2, "cluster: one flag = one pair of indicators");
    n = wrap_cluster("\xCC\x81"
                     "a",
                     3, 0, &w);
    ok(n == 2 && w == 0, "cluster: orphan mark stands alone with width 0");
    n = wrap_cluster("\x1b\xCC\x81", 3, 0, &w);
    ok(n == 1 && w == 1, "cluster: a control never takes marks");
    n = wrap_cluster("\t", 1, 5, &w);
    ok(n == 1 && w == 3, "cluster: tab width depends on the column");
}

static int valid_safe_utf8(const char *s, size_t n)
{
    size_t i = 0, u;
    while (i < n) {
        uint32_t cp = wrap_decode(s + i, n - i, &u);
        if (cp == 0xFFFD && u == 1 && (unsigned char)s[i] != 0xEF)
            return 0;
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0x202E)
            return 0;
        i += u;
    }
    return 1;
}

static void test_sanitize(void)
{
    char out[256];
    size_t n;

    n = wrap_sanitize("\x1b[31mred", 8, 0, out, sizeof(out));
    ok(n == 10 && memcmp(out, "\xE2\x90\x9B[31mred", 10) == 0, "ESC drawn as U+241B");
    n = wrap_sanitize("a\tb", 3, 3, out, sizeof(out));
    ok(n == 6 && strcmp(out, "a    b") == 0, "tab expanded from column 3");
    n = wrap_sanitize("\xFF", 1, 0, out, sizeof(out));
    ok(n == 3 && strcmp(out, "\xEF\xBF\xBD") == 0, "invalid byte drawn as U+FFFD");
    n = wrap_sanitize("\xC2\x85", 2, 0, out, sizeof(out));
    ok(n == 3 && strcmp(out, "\xEF\xBF\xBD") == 0, "C1 control drawn as U+FFFD");
    n = wrap_sanitize("a\xE2\x80\xAE"
                      "b",
                      5, 0, out, sizeof(out));
    ok(n == 2 && strcmp(out, "ab") == 0, "bidi override dropped");
    n = wrap_sanitize("\x7f", 1, 0, out, sizeof(out));
    ok(n == 3 && strcmp(out, "\xE2\x90\xA1") == 0, "DEL drawn as U+2421");
    n = wrap_sanitize(FAMILY, strlen(FAMILY), 0, out, sizeof(out));
    ok(n == strlen(FAMILY) && strcmp(out, FAMILY) == 0, "ZWJ sequence passes unchanged");
    n = wrap_sanitize("\xE4\xB8\xAD\xE6\x96\x87", 6, 0, out, 5);
    ok(n == 3 && strcmp(out, "\xE4\xB8\xAD") == 0, "short buffer: whole characters only");
    n = wrap_sanitize("abc", 3, 0, out, 0);
    ok(n == 0, "zero-size buffer: nothing written");

    /* Random bytes: output is safe UTF-8 of the same width. */
    unsigned seed = 7;
    int good = 1, samew = 1;
    for (int t = 0; t < 2000; t++) {
        char in[24], o[8 * 24 + 1];
        size_t len = (size_t)(t % 24);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = (char)(seed >> 16);
        }
        int col = t % 11;
        size_t m = wrap_sanitize(in, len, col, o, sizeof(o));
        good &= valid_safe_utf8(o, m);
        samew &= wrap_str_width(o, m, col) == wrap_str_width(in, len, col);
    }
    ok(good, "sanitized random bytes are valid UTF-8 without controls");
    ok(samew, "sanitized output takes the columns the input was measured at");
}

static void test_fit(void)
{
    int c;
    size_t n;

    n = wrap_fit("\xE4\xB8\xAD\xE6\x96\x87"
                 "ab",
                 8, 0, 3, &c);
    ok(n == 3 && c == 2, "fit: a wide char that would cross the limit stays out");
    n = wrap_fit("abcdef", 6, 0, 4, &c);
    ok(n == 4 && c == 4, "fit: ASCII prefix");
    n = wrap_fit("e\xCC\x81"
                 "e\xCC\x81",
                 6, 0, 1, &c);
    ok(n == 3 && c == 1, "fit: marks stay with their base");
    n = wrap_fit(FAMILY, strlen(FAMILY), 0, 5, &c);
    ok(n == 0 && c == 0, "fit: a ZWJ sequence is not cut");
    n = wrap_fit("a\tb", 3, 0, 8, &c);
    ok(n == 2 && c == 8, "fit: tab width from col");
}

/* Format lines as "text|text|..." for exact comparisons. */
static const char *wrapped(const char *s, int wf, int wr)
{
    static char buf[1024];
    struct wrap_lines l = {0};
    size_t o = 0;

    if (wrap_paragraph(s, strlen(s), wf, wr, &l) != STATUS_OK)
        return "<error>";
    for (size_t i = 0; i < l.n; i++) {
        size_t len = l.v[i].end - l.v[i].start;
        if (i)
            buf[o++] = '|';
        memcpy(buf + o, s + l.v[i].start, len);
        o += len;
    }
    buf[o] = '\0';
    wrap_lines_free(&l);
    return buf;
}

/* s with control characters escaped, for test names (TAP lines must not break). */
static const char *esc(const char *s)
{
    static char buf[4][256];
    static int k;
    char *b = buf[k++ & 3];
    size_t o = 0;
    for (; *s && o < sizeof(buf[0]) - 5; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7F)
            o += (size_t)snprintf(b + o, 5, "\\x%02x", c);
        else
            b[o++] = (char)c;
    }
    b[o] = '\0';
    return b;
}

static void check_wrap(const char *s, int wf, int wr, const char *want)
{
    const char *got = wrapped(s, wf, wr);
    if (!ok(strcmp(got, want) == 0, "wrap \"%s\" at %d/%d", esc(s), wf, wr))
        diag("got  \"%s\" want \"%s\"", esc(got), esc(want));
}

static void test_wrap_cases(void)
{
    check_wrap("the quick brown fox", 10, 10, "the quick|brown fox");
    check_wrap("the quick brown fox", 9, 9, "the quick|brown fox");
    check_wrap("the quick brown fox", 8, 8, "the|quick|brown|fox");
    check_wrap("the quick brown fox", 100, 100, "the quick brown fox");
    check_wrap("abcdefghij", 4, 4, "abcd|efgh|ij");
    check_wrap("hanging indent here", 7, 12, "hanging|indent here");
    check_wrap("a  b", 1, 1, "a|b");
    check_wrap("word   ", 4, 4, "word");
    check_wrap("word   \nnext", 4, 4, "word|next");
    check_wrap("well-known words", 6, 6, "well-|known|words");
    check_wrap("--flag", 3, 3, "--f|lag");
    check_wrap("a\nb\n", 10, 10, "a|b|");
    check_wrap("", 10, 10, "");
    check_wrap("\n\n", 10, 10, "||");
    check_wrap("x\r\ny", 10, 10, "x|y");
    check_wrap("  indented\n  again", 20, 20, "  indented|  again");
    check_wrap("aaaa bbbb", 4, 4, "aaaa|bbbb");
    /* CJK breaks between ideographs, but not before closing punctuation */
    check_wrap("\xE4\xB8\xAD\xE6\x96\x87\xE4\xB8\xAD\xE6\x96\x87", 5, 5,
               "\xE4\xB8\xAD\xE6\x96\x87|\xE4\xB8\xAD\xE6\x96\x87");
    check_wrap("\xE4\xB8\xAD\xE6\x96\x87\xE3\x80\x82\xE4\xB8\xAD", 4, 4,
               "\xE4\xB8\xAD|\xE6\x96\x87\xE3\x80\x82|\xE4\xB8\xAD");
    check_wrap("ab\xE4\xB8\xAD", 3, 3, "ab|\xE4\xB8\xAD");
    check_wrap(FAMILY FAMILY, 6, 6, FAMILY "|" FAMILY);
    check_wrap(FAMILY, 4, 4,
               "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D|"
               "\xF0\x9F\x91\xA7");
    check_wrap("e\xCC\x81"
               "e\xCC\x81"
               "e\xCC\x81",
               2, 2,
               "e\xCC\x81"
               "e\xCC\x81|e\xCC\x81");
    check_wrap("\xE4\xB8\xAD", 1, 1, "\xE4\xB8\xAD");
    check_wrap("\tx", 4, 4, "x");

    struct wrap_lines l = {0};
    ok(wrap_paragraph("abc", 3, 0, 5, &l) == STATUS_INVALID, "width 0 is invalid");
    ok(wrap_paragraph("a b\nc", 5, 5, 5, &l) == STATUS_OK && l.n == 2 &&
           l.v[0].brk == WRAP_BREAK_HARD && l.v[1].brk == WRAP_BREAK_END,
       "break kinds: hard then end");
    l.n = 0;
    ok(wrap_paragraph("abcdef gh", 9, 4, 4, &l) == STATUS_OK && l.n == 3 &&
           l.v[0].brk == WRAP_BREAK_FORCED && l.v[1].brk == WRAP_BREAK_SOFT && l.v[0].width == 4 &&
           l.v[1].width == 2 && l.v[2].width == 2,
       "break kinds and widths: forced, soft");
    l.n = 0;
    ok(wrap_paragraph("a\tb", 3, 20, 20, &l) == STATUS_OK && l.n == 1 && l.v[0].width == 9,
       "tab width in a line");
    l.n = 0;
    ok(wrap_paragraph("\xE4\xB8\xAD", 3, 1, 1, &l) == STATUS_OK && l.n == 1 && l.v[0].width == 2,
       "a wide char at width 1 goes alone (the one overflow)");
    wrap_lines_free(&l);
    ok(l.v == NULL && l.n == 0, "wrap_lines_free resets");
}

static void test_locate(void)
{
    const char *s = "hello big world\nnext";
    struct wrap_lines l = {0};
    size_t row;
    int col;

    wrap_paragraph(s, strlen(s), 9, 9, &l); /* "hello big" | "world" | "next" */
    ok(l.n == 3, "locate: 3 lines");
    ok(wrap_locate(&l, s, 0, &row, &col) == 0 && row == 0 && col == 0, "locate: start");
    wrap_locate(&l, s, 6, &row, &col);
    ok(row == 0 && col == 6, "locate: inside the first line");
    wrap_locate(&l, s, 9, &row, &col);
    ok(row == 0 && col == 9, "locate: the dropped space after 'big' stays on its line");
    wrap_locate(&l, s, 10, &row, &col);
    ok(row == 1 && col == 0, "locate: first byte of the second line");
    wrap_locate(&l, s, 15, &row, &col);
    ok(row == 1 && col == 5, "locate: on the newline: end of its line");
    wrap_locate(&l, s, 16, &row, &col);
    ok(row == 2 && col == 0, "locate: after the newline");
    wrap_locate(&l, s, 99, &row, &col);
    ok(row == 2 && col == 4, "locate: past the end: end of the last line");
    l.n = 0;
    ok(wrap_locate(&l, s, 0, &row, &col) == -1, "locate: no lines");
    const char *c = "\xE4\xB8\xAD\xE6\x96\x87\xE4\xB8\xAD";
    wrap_paragraph(c, strlen(c), 4, 4, &l);
    wrap_locate(&l, c, 3, &row, &col);
    ok(row == 0 && col == 2, "locate: after a wide character");
    wrap_locate(&l, c, 6, &row, &col);
    ok(row == 1 && col == 0, "locate: wide character on the next line");
    wrap_lines_free(&l);
}

// ---- randomised invariants ------------------------------------------------------------------

static const char *const pieces[] = {
    "the",
    "quick",
    "brown",
    "fox",
    "a",
    "supercalifragilistic",
    " ",
    " ",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "-",
    "well-known",
    "\xE4\xB8\xAD",
    "\xE6\x96\x87\xE5\xAD\x97",
    "\xE3\x80\x82",
    "\xF0\x9F\x98\x80",
    FAMILY,
    THUMB_TONE,
    FLAG_FR,
    "e\xCC\x81",
    "\xCC\x81",
    "\x1b",
    "\x01",
    "\x7f",
    "\xFF",
    "\xE4\xB8",
    "\xC2\x85",
    "\xE2\x80\x8D",
    "\xEF\xBC\xA1",
    "na\xC3\xAFve",
};

static size_t gen_text(char *buf, size_t cap, unsigned *seed)
{
    size_t o = 0;
    int k;
    *seed = *seed * 1103515245u + 12345u;
    k = (int)((*seed >> 16) % 40);
    for (int i = 0; i < k; i++) {
        *seed = *seed * 1103515245u + 12345u;
        const char *p = pieces[(*seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
        size_t len = strlen(p);
        if (o + len >= cap)
            break;
        memcpy(buf + o, p, len);
        o += len;
    }
    return o;
}

/* Mark cluster starts of s (as the wrapper sees them) in b[0..n]. */
static void cluster_starts(const char *s, size_t n, unsigned char *b)
{
    size_t i = 0;
    int w;
    memset(b, 0, n + 1);
    while (i < n) {
        b[i] = 1;
        i += wrap_cluster(s + i, n - i, 0, &w);
    }
    b[n] = 1;
}

static void cp_starts(const char *s, size_t n, unsigned char *b)
{
    size_t i = 0, u;
    memset(b, 0, n + 1);
    while (i < n) {
        b[i] = 1;
        wrap_decode(s + i, n - i, &u);
        i += u;
    }
    b[n] = 1;
}

static int only_gap(const char *s, size_t a, size_t b, int *newlines)
{
    *newlines = 0;
    for (size_t i = a; i < b; i++) {
        if (s[i] == '\n')
            (*newlines)++;
        else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    }
    return 1;
}

/* Clear *flag and, the first time, show the text that broke the invariant. */
static void failed(int *flag, const char *what, const char *s, size_t n, int width)
{
    char b[600];
    size_t o = 0;
    if (!*flag)
        return;
    *flag = 0;
    for (size_t i = 0; i < n && o < sizeof(b) - 5; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7F)
            o += (size_t)snprintf(b + o, 5, "\\x%02x", c);
        else
            b[o++] = (char)c;
    }
    b[o] = '\0';
    diag("%s at width %d: \"%s\"", what, width, b);
}

static void test_wrap_random(void)
{
    static const int widths[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 20, 33, 80};
    char text[512];
    unsigned char cl[513], cps[513];
    unsigned seed = 12345;
    struct wrap_lines l = {0};

    for (size_t wi = 0; wi < sizeof(widths) / sizeof(widths[0]); wi++) {
        int W = widths[wi], Wf = W > 3 ? W - 2 : W;
        int fits = 1, widths_ok = 1, cp_ok = 1, cl_ok = 1, rebuild = 1, greedy = 1, lead = 1;
        for (int t = 0; t < 300; t++) {
            size_t n = gen_text(text, sizeof(text), &seed);
            int hard = 0, nl_total = 0, nl;
            l.n = 0;
            if (wrap_paragraph(text, n, Wf, W, &l) != STATUS_OK) {
                fits = 0;
                continue;
            }
            cluster_starts(text, n, cl);
            cp_starts(text, n, cps);
            for (size_t i = 0; i < n; i++)
                nl_total += text[i] == '\n';
            if (!only_gap(text, 0, l.v[0].start, &nl) || nl)
                failed(&rebuild, "text before the first line", text, n, W);
            for (size_t k = 0; k < l.n; k++) {
                const struct wrap_line *ln = &l.v[k];
                int lim = k == 0 ? Wf : W;
                int w = wrap_str_width(text + ln->start, ln->end - ln->start, 0);
                if (w != ln->width)
                    failed(&widths_ok, "width", text, n, W);
                /* only a lone cluster may overflow (a wide char at width 1) */
                if (ln->width > lim &&
                    !(ln->end > ln->start &&
                      ln->end - ln->start ==
                          wrap_cluster(text + ln->start, ln->end - ln->start, 0, &w)))
                    failed(&fits, "overflow", text, n, W);
                if (!cps[ln->start] || !cps[ln->end])
                    failed(&cp_ok, "UTF-8 split", text, n, W);
                /* a cluster is split only when it alone is wider than the line */
                if (!cl[ln->end]) {
                    size_t c0 = ln->end;
                    int cw;
                    while (!cl[c0])
                        c0--;
                    wrap_cluster(text + c0, n - c0, 0, &cw);
                    if (cw <= lim)
                        failed(&cl_ok, "cluster split", text, n, W);
                }
                hard += ln->brk == WRAP_BREAK_HARD;
                if (k + 1 < l.n) {
                    if (!only_gap(text, ln->end, l.v[k + 1].start, &nl) || nl > 1 ||
                        (nl == 1) != (ln->brk == WRAP_BREAK_HARD))
                        failed(&rebuild, "gap between lines", text, n, W);
                    if (ln->brk == WRAP_BREAK_FORCED && l.v[k + 1].start == ln->end &&
                        cl[ln->end]) {
                        int cw;
                        wrap_cluster(text + ln->end, n - ln->end, ln->width, &cw);
                        if (ln->width + cw <= lim)
                            failed(&greedy, "not greedy", text, n, W);
                    }
                    size_t b = l.v[k + 1].start;
                    if (ln->brk == WRAP_BREAK_SOFT && b < n &&
                        (text[b] == ' ' || text[b] == '\t') && cl[b + 1])
                        failed(&lead, "leading blank", text, n, W);
                } else if (!only_gap(text, ln->end, n, &nl) || nl) {
                    failed(&rebuild, "text after the last line", text, n, W);
                }
            }
            if (hard != nl_total)
                failed(&rebuild, "hard breaks != newlines", text, n, W);
        }
        ok(fits, "random texts at width %d: every line fits", W);
        ok(widths_ok, "random texts at width %d: reported widths are exact", W);
        ok(cp_ok, "random texts at width %d: no UTF-8 sequence split", W);
        ok(cl_ok, "random texts at width %d: no cluster split unless wider than the line", W);
        ok(rebuild, "random texts at width %d: offsets rebuild the text", W);
        ok(greedy, "random texts at width %d: forced breaks are greedy", W);
        ok(lead, "random texts at width %d: soft-wrapped lines start with no blank", W);
    }
    wrap_lines_free(&l);
}

int main(void)
{
    test_decode();
    test_cp_width();
    test_str_width();
    test_cluster();
    test_sanitize();
    test_fit();
    test_wrap_cases();
    test_locate();
    test_wrap_random();
    return done_testing();
}
