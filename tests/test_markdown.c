/*
 * test_markdown.c — the reply renderer (ui/markdown.c) and the style table (ui/style.c).
 *
 * Cases compare the drawn text of each display line ("┌─ python", "• item") and, where the
 * look matters, the style and flags of the run that shows a given source span.  A corpus is then
 * streamed in chunks of every size to check that incremental rendering equals rendering from
 * scratch, that lines already shown never change, and that an update only re-parses the
 * unfinished last line; and rendered at many widths to check geometry invariants.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "markdown.h"
#include "status.h"
#include "style.h"
#include "tap.h"
#include "wrap.h"

static char out_buf[8192];

/* All display lines of text at width, joined by '\n'. */
static const char *render(const char *text, int width, int ascii)
{
    struct markdown *md = markdown_new(width, ascii);
    size_t o = 0;

    if (!md || markdown_set_text(md, text, strlen(text)) || markdown_render(md)) {
        markdown_free(md);
        return "<error>";
    }
    out_buf[0] = '\0';
    for (size_t i = 0; i < markdown_n_lines(md); i++) {
        if (i)
            out_buf[o++] = '\n';
        o += markdown_line_text(md, i, out_buf + o, sizeof(out_buf) - o);
    }
    markdown_free(md);
    return out_buf;
}

static const char *esc(const char *s)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    size_t o = 0;
    for (; *s && o < sizeof(buf[0]) - 5; s++) {
        if (*s == '\n') {
            b[o++] = '\\';
            b[o++] = 'n';
        } else {
            b[o++] = *s;
        }
    }
    b[o] = '\0';
    return b;
}

static void check(const char *text, int width, const char *want)
{
    const char *got = render(text, width, 0);
    if (!ok(strcmp(got, want) == 0, "render \"%s\" @%d", esc(text), width))
        diag("got  \"%s\"\n# want \"%s\"", esc(got), esc(want));
}

/* The run showing the source bytes of needle (first occurrence), or NULL. */
static const struct md_run *run_of_text(const struct markdown *md, const char *needle)
{
    size_t len;
    const char *t = markdown_text(md, &len);
    const char *p = strstr(t, needle);
    if (!p)
        return NULL;
    size_t off = (size_t)(p - t);
    for (size_t i = 0; i < markdown_n_lines(md); i++) {
        const struct md_line *l = markdown_line(md, i);
        for (int r = 0; r < l->n_runs; r++) {
            const struct md_run *run = markdown_runs(md) + l->run0 + r;
            if (run->kind == MD_RUN_TEXT && run->start <= off && off < run->start + run->len)
                return run;
        }
    }
    return NULL;
}

static struct markdown *rendered(const char *text, int width)
{
    struct markdown *md = markdown_new(width, 0);
    if (md && (markdown_set_text(md, text, strlen(text)) || markdown_render(md))) {
        markdown_free(md);
        md = NULL;
    }
    return md;
}

static void test_inline(void)
{
    struct markdown *md;
    const struct md_run *r;

    check("hello world foo", 11, "hello world\nfoo");
    check("a **b** c", 20, "a b c");
    md = rendered("a **bold** c", 20);
    r = run_of_text(md, "bold");
    ok(r && r->flags == UI_FLAG_BOLD && r->style == UI_STYLE_NORMAL && r->start == 4 &&
           r->len == 4 && r->col == 2,
       "**bold**: bold flag, source span and column");
    r = run_of_text(md, " c");
    ok(r && r->flags == 0 && r->col == 6, "text after bold is plain, markers hidden");
    markdown_free(md);

    md = rendered("x *em* _em2_ y", 20);
    r = run_of_text(md, "em*");
    ok(r && r->flags == UI_FLAG_EMPH && r->len == 2, "*emphasis*");
    r = run_of_text(md, "em2");
    ok(r && r->flags == UI_FLAG_EMPH && r->len == 3, "_emphasis_");
    markdown_free(md);

    check("snake_case_name stays", 30, "snake_case_name stays");
    check("2*3*4", 10, "234");
    check("a * b * c", 20, "a * b * c");
    check("**not closed", 20, "**not closed");
    check("*a **b** c*", 20, "a b c");
    md = rendered("*a **b** c*", 20);
    r = run_of_text(md, "b**");
    ok(r && r->flags == (UI_FLAG_BOLD | UI_FLAG_EMPH), "nested: strong inside emphasis");
    r = run_of_text(md, "a ");
    ok(r && r->flags == UI_FLAG_EMPH, "nested: outer emphasis only");
    markdown_free(md);
    md = rendered("***both*** x", 20);
    r = run_of_text(md, "both");
    ok(r && r->flags == (UI_FLAG_BOLD | UI_FLAG_EMPH) && r->len == 4, "***both***");
    markdown_free(md);
    check("***both*** x", 20, "both x");
    check("**bold *both* bold**", 30, "bold both bold");
    check("__strong__ and _em_", 30, "strong and em");
    check("*foo**bar*", 20, "foo**bar");                   /* rule of three */
    check("foo******bar*********baz", 40, "foobar***baz"); /* multiples of three match */
    md = rendered("foo******bar*********baz", 40);
    r = run_of_text(md, "bar");
    ok(r && r->flags == UI_FLAG_BOLD && r->len == 3, "six and nine stars: strong");
    markdown_free(md);

    md = rendered("use `x*y*z` now", 20);
    r = run_of_text(md, "x*y");
    ok(r && r->style == UI_STYLE_CODE_INLINE && r->flags == 0 && r->len == 5,
       "inline code: code style, no emphasis inside");
    markdown_free(md);
    check("use `x*y*z` now", 20, "use x*y*z now");
    check("``a`b``", 20, "a`b");
    check("`` `tick` ``", 20, "`tick`");
    check("`unclosed code", 20, "`unclosed code");
    check("\\*not em\\*", 20, "*not em*");
    check("a\\_b\\_c", 20, "a_b_c");
    md = rendered("**b `c` b**", 20);
    r = run_of_text(md, "c`");
    ok(r && r->style == UI_STYLE_CODE_INLINE && r->flags == UI_FLAG_BOLD,
       "code inside bold: code style, bold flag");
    markdown_free(md);
}

static void test_blocks(void)
{
    struct markdown *md;
    const struct md_line *l;

    check("# Title", 20, "Title");
    md = rendered("# Title\n###### six\n#tag", 20);
    l = markdown_line(md, 0);
    ok(l && l->kind == MD_LINE_HEADING && l->level == 1, "heading kind and level 1");
    l = markdown_line(md, 1);
    ok(l && l->kind == MD_LINE_HEADING && l->level == 6, "heading level 6");
    l = markdown_line(md, 2);
    ok(l && l->kind == MD_LINE_TEXT, "#tag is a paragraph");
    const struct md_run *r = run_of_text(md, "Title");
    ok(r && r->style == UI_STYLE_HEADING && (r->flags & UI_FLAG_BOLD), "heading style, bold");
    markdown_free(md);
    check("## closing ##", 20, "closing");
    check("# C# rocks", 20, "C# rocks");

    check("---", 10,
          "\xE2\x94\x80\xE2\x94\x80\xE2\x94\x80\xE2\x94\x80\xE2\x94\x80"
          "\xE2\x94\x80\xE2\x94\x80\xE2\x94\x80\xE2\x94\x80\xE2\x94\x80");
    md = rendered("text\n* * *", 12);
    l = markdown_line(md, 1);
    ok(l && l->kind == MD_LINE_RULE && l->width == 12, "thematic break fills the width");
    markdown_free(md);

    check("- a\n- b", 20, "\xE2\x80\xA2 a\n\xE2\x80\xA2 b");
    check("- a\n  - b\n    - c", 20, "\xE2\x80\xA2 a\n  \xE2\x97\xA6 b\n    \xE2\x96\xAA c");
    check("1. one\n2. two", 20, "1. one\n2. two");
    check("10. ten\n    more", 20, "10. ten\n    more");
    check("- long text that wraps", 12, "\xE2\x80\xA2 long text\n  that wraps");
    check("1. a\n   - b", 20, "1. a\n   \xE2\x97\xA6 b");
    check("- item\n  more", 20, "\xE2\x80\xA2 item\n  more");
    check("- item\nlazy", 20, "\xE2\x80\xA2 item\n  lazy");
    check("- item\n\nafter", 20, "\xE2\x80\xA2 item\n\nafter");
    check("- item\n\n  inside", 20, "\xE2\x80\xA2 item\n\n  inside");
    check("* star\n+ plus", 20, "\xE2\x80\xA2 star\n\xE2\x80\xA2 plus");
    check("-not a list", 20, "-not a list");
    md = rendered("1. one", 20);
    r = run_of_text(md, "1.");
    ok(r && r->style == UI_STYLE_BULLET && r->start == 0 && r->len == 2,
       "ordered marker is source text in bullet style");
    markdown_free(md);

    check("> quoted text", 20, "\xE2\x94\x82 quoted text");
    check(">> deep", 20, "\xE2\x94\x82 \xE2\x94\x82 deep");
    check("> - item", 20, "\xE2\x94\x82 \xE2\x80\xA2 item");
    check("> quote that wraps around", 14, "\xE2\x94\x82 quote that\n\xE2\x94\x82 wraps around");
    md = rendered("> q", 20);
    r = run_of_text(md, "q");
    ok(r && r->style == UI_STYLE_QUOTE && markdown_runs(md)[0].style == UI_STYLE_QUOTE_BAR,
       "quote styles");
    markdown_free(md);

    check("a\n\n\n\nb", 20, "a\n\nb");
    check("\n\nstart", 20, "start");
    check("a\r\nb", 20, "a\nb");
    check("", 20, "");
}

static void test_code(void)
{
    struct markdown *md;
    const struct md_line *l;
    const struct md_run *r;

    check("```python\ndef f():\n    return 1\n```", 30,
          "\xE2\x94\x8C\xE2\x94\x80 python\n\xE2\x94\x82 def f():\n\xE2\x94\x82     return 1\n"
          "\xE2\x94\x94\xE2\x94\x80");
    md = rendered("```python\ndef f():\n```\nafter", 30);
    ok(markdown_n_lines(md) == 4, "code block: 4 display lines");
    l = markdown_line(md, 0);
    ok(l && l->kind == MD_LINE_FENCE, "opening fence line kind");
    l = markdown_line(md, 1);
    ok(l && l->kind == MD_LINE_CODE && l->tab_origin == 2, "code line kind, tab origin");
    l = markdown_line(md, 3);
    ok(l && l->kind == MD_LINE_TEXT, "text after the closing fence");
    r = run_of_text(md, "python");
    ok(r && r->style == UI_STYLE_CODE_LABEL, "language label style");
    r = run_of_text(md, "def");
    ok(r && r->style == UI_STYLE_CODE && r->col == 2, "code style and left margin");
    markdown_free(md);

    check("```\n**x** `y`\n```", 20,
          "\xE2\x94\x8C\xE2\x94\x80\n\xE2\x94\x82 **x** `y`\n"
          "\xE2\x94\x94\xE2\x94\x80");
    check("```\n0123456789abcdefghij\n```", 12,
          "\xE2\x94\x8C\xE2\x94\x80\n\xE2\x94\x82 012345678\xE2\x86\x92\n\xE2\x94\x94\xE2\x94\x80");
    md = rendered("```\n0123456789abcdefghij\n```", 12);
    l = markdown_line(md, 1);
    ok(l && l->width == 12, "truncated code line fills exactly the width");
    r = l ? markdown_runs(md) + l->run0 + l->n_runs - 1 : NULL;
    ok(r && r->style == UI_STYLE_CODE_TRUNC && r->col == 11, "truncation marker at the edge");
    markdown_free(md);
    check("```\n\xE4\xB8\xAD\xE4\xB8\xAD\xE4\xB8\xAD\xE4\xB8\xAD\xE4\xB8\xAD\n```", 10,
          "\xE2\x94\x8C\xE2\x94\x80\n\xE2\x94\x82 \xE4\xB8\xAD\xE4\xB8\xAD\xE4\xB8\xAD "
          "\xE2\x86\x92\n\xE2\x94\x94\xE2\x94\x80");
    check("```\nunterminated\n# not a heading\n- nor a list", 30,
          "\xE2\x94\x8C\xE2\x94\x80\n\xE2\x94\x82 unterminated\n\xE2\x94\x82 # not a heading\n"
          "\xE2\x94\x82 - nor a list");
    check("~~~\n```\n~~~", 20,
          "\xE2\x94\x8C\xE2\x94\x80\n\xE2\x94\x82 ```\n\xE2\x94\x94\xE2\x94\x80");
    check("````\n```\n````", 20,
          "\xE2\x94\x8C\xE2\x94\x80\n\xE2\x94\x82 ```\n\xE2\x94\x94\xE2\x94\x80");
    check("- item\n  ```\n  code\n  ```", 20,
          "\xE2\x80\xA2 item\n  \xE2\x94\x8C\xE2\x94\x80\n  \xE2\x94\x82 code\n  "
          "\xE2\x94\x94\xE2\x94\x80");
    check("```sh\n\tx\n```", 20,
          "\xE2\x94\x8C\xE2\x94\x80 sh\n\xE2\x94\x82         x\n"
          "\xE2\x94\x94\xE2\x94\x80");
    check("```a`b\n", 20, "```a`b");
    check("> ```\n> code\n> ```", 20,
          "\xE2\x94\x82 \xE2\x94\x8C\xE2\x94\x80\n\xE2\x94\x82 \xE2\x94\x82 code\n"
          "\xE2\x94\x82 \xE2\x94\x94\xE2\x94\x80");
    check("```\ncode\n```", 20, render("```\ncode\n```", 20, 0)); /* idempotent */
    const char *a = render("```c\nint x;\n```\n> q\n- l\n---", 20, 1);
    int ascii_only = 1;
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p >= 0x80)
            ascii_only = 0;
    ok(ascii_only && strstr(a, "+- c") && strstr(a, "| int x;") && strstr(a, "* l"),
       "ASCII decorations");
}

// ---- streaming and invariants ----------------------------------------------------------------

static const char *const corpus[] = {
    "Here is **some** text with *emphasis* and `code`.\n\n```python\ndef f(x):\n    return x * "
    "2  # a comment that is long enough to be truncated at narrow widths\n```\nDone.\n",
    "# Heading\n\n1. first item that is rather long and wraps\n2. second\n   - nested *one*\n"
    "   - nested two\n\n> a quote with **bold\n> continued** text\n\n---\nend",
    "\xE4\xB8\xAD\xE6\x96\x87\xE6\xB5\x8B\xE8\xAF\x95\xEF\xBC\x8C\xE8\xBF\x99\xE6\x98\xAF"
    "\xE4\xB8\x80\xE4\xB8\xAA\xE5\xBE\x88\xE9\x95\xBF\xE7\x9A\x84\xE5\x8F\xA5\xE5\xAD\x90\xE3\x80"
    "\x82 \xF0\x9F\x98\x80\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91"
    "\xA7 caf\xC3\xA9 e\xCC\x81\n- \xE5\x88\x97\xE8\xA1\xA8\n",
    "```\nunterminated fence\nwith lines\n  and indentation\n",
    "text\r\nwith crlf\r\n```\r\ncode\r\n```\r\n",
    "a\tb\tc\n```\n\tindented\ttabs\n```\n\x1b[31mescape\x1b[0m \xFF invalid\n",
    "* a\n  * b\n    * c\n      * d\n        * e\n          * f\n            * g deep nesting "
    "here\n",
    ">>> deep quote with text that goes on\n> - list in quote\n",
};

static int lines_equal(const struct markdown *a, size_t ia, const struct markdown *b, size_t ib)
{
    const struct md_line *x = markdown_line(a, ia), *y = markdown_line(b, ib);
    if (!x || !y || x->n_runs != y->n_runs || x->width != y->width || x->kind != y->kind ||
        x->level != y->level || x->tab_origin != y->tab_origin || x->src_start != y->src_start ||
        x->src_end != y->src_end)
        return 0;
    for (int r = 0; r < x->n_runs; r++) {
        const struct md_run *p = markdown_runs(a) + x->run0 + r,
                            *q = markdown_runs(b) + y->run0 + r;
        if (p->kind != q->kind || p->style != q->style || p->flags != q->flags ||
            p->col != q->col || p->width != q->width ||
            (p->kind == MD_RUN_TEXT && (p->start != q->start || p->len != q->len)) ||
            (p->kind != MD_RUN_TEXT && strcmp(p->lit, q->lit)))
            return 0;
    }
    return 1;
}

static void test_streaming(void)
{
    static const int chunks[] = {1, 2, 3, 5, 8, 64};
    for (size_t c = 0; c < sizeof(corpus) / sizeof(corpus[0]); c++) {
        const char *text = corpus[c];
        size_t n = strlen(text);
        int same = 1, stable = 1, cheap = 1;
        for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
            struct markdown *live = markdown_new(24, 0), *final = rendered(text, 24);
            size_t pos = 0;
            while (pos < n) {
                size_t step = chunks[k] < (int)(n - pos) ? (size_t)chunks[k] : n - pos;
                /* where the unfinished line started before this chunk */
                size_t line0 = pos;
                while (line0 > 0 && text[line0 - 1] != '\n')
                    line0--;
                markdown_append(live, text + pos, step);
                pos += step;
                markdown_render(live);
                if (markdown_last_parsed(live) > pos - line0)
                    cheap = 0;
                /* equal to a fresh render of the same prefix */
                struct markdown *fresh = markdown_new(24, 0);
                markdown_set_text(fresh, text, pos);
                markdown_render(fresh);
                if (markdown_n_lines(fresh) != markdown_n_lines(live))
                    same = 0;
                for (size_t i = 0; same && i < markdown_n_lines(live); i++)
                    if (!lines_equal(live, i, fresh, i))
                        same = 0;
                markdown_free(fresh);
                /* lines of complete source lines are already final */
                size_t done = pos;
                while (done > 0 && text[done - 1] != '\n')
                    done--;
                for (size_t i = 0; i < markdown_n_lines(live); i++) {
                    const struct md_line *l = markdown_line(live, i);
                    if (l->src_end < done && !lines_equal(live, i, final, i))
                        stable = 0;
                }
            }
            markdown_free(live);
            markdown_free(final);
        }
        ok(same, "corpus %zu: streamed rendering equals a fresh render at every step", c);
        ok(stable, "corpus %zu: lines of complete source lines never change", c);
        ok(cheap, "corpus %zu: an update parses only the unfinished line and the new text", c);
    }
}

static void test_geometry(void)
{
    int widths_ok = 1, runs_ok = 1, src_ok = 1, rewidth = 1;
    for (size_t c = 0; c < sizeof(corpus) / sizeof(corpus[0]); c++) {
        size_t n = strlen(corpus[c]);
        struct markdown *resized = markdown_new(80, 0);
        markdown_set_text(resized, corpus[c], n);
        markdown_render(resized);
        for (int w = 1; w <= 90; w++) {
            struct markdown *md = rendered(corpus[c], w);
            for (size_t i = 0; md && i < markdown_n_lines(md); i++) {
                const struct md_line *l = markdown_line(md, i);
                int col = 0, sum = 0;
                if (l->width > w && w >= 2)
                    widths_ok = 0;
                for (int r = 0; r < l->n_runs; r++) {
                    const struct md_run *run = markdown_runs(md) + l->run0 + r;
                    if (run->col < col || run->width < 0)
                        runs_ok = 0;
                    if (run->kind == MD_RUN_TEXT) {
                        if (run->start + run->len > n || run->start < l->src_start ||
                            run->start + run->len > l->src_end)
                            src_ok = 0;
                        else if (wrap_str_width(corpus[c] + run->start, run->len,
                                                run->col - l->tab_origin) != run->width)
                            runs_ok = 0;
                    }
                    col = run->col + run->width;
                    sum = col;
                }
                if (sum != l->width)
                    runs_ok = 0;
            }
            markdown_set_width(resized, w);
            markdown_render(resized);
            if (md && markdown_n_lines(md) == markdown_n_lines(resized)) {
                for (size_t i = 0; i < markdown_n_lines(md); i++)
                    if (!lines_equal(md, i, resized, i))
                        rewidth = 0;
            } else {
                rewidth = 0;
            }
            markdown_free(md);
        }
        markdown_free(resized);
    }
    ok(widths_ok, "corpus at widths 2..90: no line wider than the width");
    ok(runs_ok, "corpus: runs ordered, widths exact and additive");
    ok(src_ok, "corpus: text runs inside their source line");
    ok(rewidth, "set_width re-renders exactly like a new renderer");

    /* set_text with other text: full re-render */
    struct markdown *md = rendered("**a** b\n- c", 20);
    markdown_set_text(md, "x", 1);
    markdown_render(md);
    char line[64];
    markdown_line_text(md, 0, line, sizeof(line));
    ok(markdown_n_lines(md) == 1 && strcmp(line, "x") == 0, "set_text with new text");
    markdown_set_text(md, "x **y**", 7);
    ok(markdown_render(md) == STATUS_OK && markdown_last_parsed(md) == 7,
       "set_text extending the text keeps the resume point (no complete line: from 0)");
    markdown_free(md);
}

/* Random Markdown-ish texts: geometry invariants and streaming equivalence. */
static void test_random(void)
{
    static const char *const bits[] = {
        "*",
        "**",
        "***",
        "_",
        "__",
        "`",
        "``",
        "```",
        "~~~",
        "\n",
        "\n\n",
        "> ",
        ">",
        "- ",
        "* ",
        "1. ",
        "10) ",
        "# ",
        "### ",
        "---",
        " ",
        "  ",
        "    ",
        "\t",
        "\\",
        "word",
        "longerword",
        "\xE4\xB8\xAD\xE6\x96\x87",
        "\xF0\x9F\x98\x80",
        "e\xCC\x81",
        "\r\n",
        "\x1b",
        "\xFF",
        "x",
        "y z",
    };
    const int nb = (int)(sizeof(bits) / sizeof(bits[0]));
    unsigned seed = 2024;
    int fits = 1, src = 1, same = 1;
    char text[600];

    for (int t = 0; t < 400; t++) {
        size_t n = 0;
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 16) % 60);
        for (int i = 0; i < k; i++) {
            seed = seed * 1103515245u + 12345u;
            const char *b = bits[(seed >> 16) % (unsigned)nb];
            size_t len = strlen(b);
            if (n + len >= sizeof(text))
                break;
            memcpy(text + n, b, len);
            n += len;
        }
        text[n] = '\0';
        int w = 2 + (int)((seed >> 8) % 50);
        struct markdown *md = markdown_new(w, t % 3 == 0), *live = markdown_new(w, t % 3 == 0);
        markdown_set_text(md, text, n);
        markdown_render(md);
        for (size_t i = 0; i < markdown_n_lines(md); i++) {
            const struct md_line *l = markdown_line(md, i);
            if (l->width > w)
                fits = 0;
            for (int r = 0; r < l->n_runs; r++) {
                const struct md_run *run = markdown_runs(md) + l->run0 + r;
                if (run->kind == MD_RUN_TEXT &&
                    (run->start < l->src_start || run->start + run->len > l->src_end))
                    src = 0;
            }
        }
        /* stream it in chunks of 1..7 bytes */
        for (size_t pos = 0; pos < n;) {
            size_t step = 1 + (size_t)(t % 7);
            if (step > n - pos)
                step = n - pos;
            markdown_append(live, text + pos, step);
            pos += step;
            markdown_render(live);
        }
        markdown_render(live);
        if (markdown_n_lines(live) != markdown_n_lines(md))
            same = 0;
        for (size_t i = 0; same && i < markdown_n_lines(md); i++)
            if (!lines_equal(live, i, md, i))
                same = 0;
        if (!same && t < 400) {
            diag("differs: \"%s\" @%d", esc(text), w);
            t = 400;
        }
        markdown_free(md);
        markdown_free(live);
    }
    ok(fits, "random Markdown: no line wider than the width");
    ok(src, "random Markdown: text runs inside their source line");
    ok(same, "random Markdown: streamed in chunks equals rendered at once");
}

static void test_style(void)
{
    struct ui_look l;

    ok(ui_style_use_colors(NULL, 256) == 1, "colours when the terminal has them");
    ok(ui_style_use_colors("1", 256) == 0, "NO_COLOR=1 disables colours");
    ok(ui_style_use_colors("", 256) == 1, "empty NO_COLOR is ignored (no-color.org)");
    ok(ui_style_use_colors(NULL, 2) == 0 && ui_style_use_colors(NULL, 0) == 0,
       "monochrome terminals get no colours");
    int mono_default = 1, names = 1;
    for (int s = 0; s < UI_STYLE_COUNT; s++) {
        l = ui_style_look((enum ui_style)s, 0, 0);
        if (l.fg != UI_COLOR_DEFAULT || l.bg != UI_COLOR_DEFAULT)
            mono_default = 0;
        const char *nm = ui_style_name((enum ui_style)s);
        if (!nm || !strcmp(nm, "?"))
            names = 0;
        for (int t = 0; t < s; t++)
            if (!strcmp(nm, ui_style_name((enum ui_style)t)))
                names = 0;
    }
    ok(mono_default, "monochrome looks use no colour");
    ok(names, "every style has a unique name");
    l = ui_style_look(UI_STYLE_NORMAL, UI_FLAG_BOLD | UI_FLAG_EMPH, 1);
    ok(l.attrs == (UI_ATTR_BOLD | UI_ATTR_ITALIC), "colour: bold + italic from flags");
    l = ui_style_look(UI_STYLE_NORMAL, UI_FLAG_EMPH, 0);
    ok(l.attrs == UI_ATTR_UNDERLINE, "monochrome: emphasis is underline");
    l = ui_style_look(UI_STYLE_KV_RECENT, UI_FLAG_BOLD, 0);
    ok(l.attrs == ui_style_look(UI_STYLE_KV_RECENT, 0, 0).attrs,
       "monochrome: flags do not change a key-token shade");
    l = ui_style_look((enum ui_style)999, UI_FLAG_BOLD, 1);
    ok(l.fg == UI_COLOR_DEFAULT && l.attrs == UI_ATTR_BOLD, "out-of-range style is normal");
    ok(!strcmp(ui_style_name((enum ui_style) - 1), "?"), "name of a bad style");
    l = ui_style_look(UI_STYLE_CODE_INLINE, 0, 0);
    ok(l.attrs != 0, "monochrome: inline code is marked by an attribute");
    l = ui_style_look(UI_STYLE_HEADING, 0, 0);
    ok(l.attrs & UI_ATTR_BOLD, "monochrome: headings bold");
}

int main(void)
{
    test_inline();
    test_blocks();
    test_code();
    test_streaming();
    test_geometry();
    test_random();
    test_style();
    return done_testing();
}
