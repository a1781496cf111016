/*
 * test_layout.c — screen layout (ui/layout.c), status line fitting, and transcript scrolling
 * (ui/scroll.c).
 *
 * Named sizes pin the rectangles users see (80×24, 120×40, 60×20, 40×12, 39×11, 20×5, 1×1);
 * a sweep over every size up to 200×80 checks that the parts tile the screen without overlap
 * and that nothing ever leaves it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "layout.h"
#include "scroll.h"
#include "tap.h"
#include "wrap.h"

static int req_eq(struct ui_rect r, int y, int x, int h, int w)
{
    return r.y == y && r.x == x && r.h == h && r.w == w;
}

static struct layout lay(int cols, int lines, int input, int panel, int help)
{
    struct layout_req q = {lines, cols, input, panel, help};
    struct layout l;
    layout_compute(&q, &l);
    return l;
}

static void test_named_sizes(void)
{
    struct layout l;
    char buf[128];

    l = lay(80, 24, 1, 0, 0);
    ok(!l.too_small && req_eq(l.transcript, 0, 0, 22, 80) && req_eq(l.status, 22, 0, 1, 80) &&
           req_eq(l.input, 23, 0, 1, 80) && l.panel_kind == LAYOUT_PANEL_NONE,
       "80x24: transcript, status, input");
    ok(l.status_level == LAYOUT_STATUS_MEDIUM, "80x24: medium status");
    l = lay(80, 24, 1, 1, 0);
    ok(l.panel_kind == LAYOUT_PANEL_RIGHT && req_eq(l.panel, 0, 54, 22, 26) &&
           req_eq(l.transcript, 0, 0, 22, 54) && req_eq(l.status, 22, 0, 1, 80),
       "80x24 + panel: right panel 26 wide");
    l = lay(120, 40, 1, 1, 0);
    ok(l.panel_kind == LAYOUT_PANEL_RIGHT && req_eq(l.panel, 0, 84, 38, 36) &&
           req_eq(l.transcript, 0, 0, 38, 84) && l.status_level == LAYOUT_STATUS_FULL,
       "120x40 + panel: right panel 36 wide, full status");
    l = lay(200, 60, 1, 1, 0);
    ok(l.panel.w == 40, "200x60: panel width capped at 40");
    l = lay(60, 20, 1, 1, 0);
    ok(l.panel_kind == LAYOUT_PANEL_BOTTOM && req_eq(l.transcript, 0, 0, 12, 60) &&
           req_eq(l.panel, 12, 0, 6, 60) && req_eq(l.status, 18, 0, 1, 60) &&
           req_eq(l.input, 19, 0, 1, 60),
       "60x20 + panel: bottom panel");
    l = lay(60, 19, 1, 1, 0);
    ok(l.panel_kind == LAYOUT_PANEL_NONE && l.panel_hidden && l.transcript.h == 17,
       "60x19 + panel: hidden, transcript keeps the rows");
    l = lay(40, 12, 1, 1, 0);
    ok(!l.too_small && l.panel_kind == LAYOUT_PANEL_NONE && l.panel_hidden &&
           req_eq(l.transcript, 0, 0, 10, 40) && req_eq(l.status, 10, 0, 1, 40) &&
           req_eq(l.input, 11, 0, 1, 40) && l.status_level == LAYOUT_STATUS_SHORT,
       "40x12: smallest full layout, panel hidden, short status");
    l = lay(40, 12, 5, 0, 0);
    ok(req_eq(l.input, 7, 0, 5, 40) && l.transcript.h == 6, "40x12: input grows to 5 rows");
    l = lay(39, 11, 1, 1, 0);
    ok(l.too_small && req_eq(l.message, 0, 0, 11, 39) && req_eq(l.transcript, 0, 0, 0, 0) &&
           req_eq(l.input, 0, 0, 0, 0),
       "39x11: too small");
    ok(lay(39, 12, 1, 0, 0).too_small && lay(40, 11, 1, 0, 0).too_small,
       "one column or one row short is too small");
    l = lay(20, 5, 1, 1, 1);
    ok(l.too_small && req_eq(l.message, 0, 0, 5, 20) && req_eq(l.help, 0, 0, 0, 0),
       "20x5: too small, no help box");
    l = lay(1, 1, 1, 0, 0);
    ok(l.too_small && req_eq(l.message, 0, 0, 1, 1), "1x1: too small");
    l = lay(0, 0, 1, 0, 0);
    ok(l.too_small && req_eq(l.message, 0, 0, 0, 0), "0x0: empty message");
    l = lay(-3, -7, -1, 1, 1);
    ok(l.too_small && l.message.h == 0 && l.message.w == 0, "negative size: empty");

    l = lay(80, 24, 3, 0, 0);
    ok(req_eq(l.input, 21, 0, 3, 80) && req_eq(l.status, 20, 0, 1, 80) && l.transcript.h == 20,
       "80x24: 3-line input");
    ok(lay(80, 24, 9, 0, 0).input.h == 5, "input capped at 5 rows");
    ok(lay(80, 24, 0, 0, 0).input.h == 1, "input at least 1 row");
    l = lay(80, 24, 1, 0, 1);
    ok(req_eq(l.help, 1, 4, 22, 72), "80x24: help box centred, 72x22");
    l = lay(40, 12, 1, 0, 1);
    ok(req_eq(l.help, 1, 2, 10, 36), "40x12: help box 36x10");
    ok(lay(80, 24, 1, 0, 0).help.w == 0, "no help box unless asked");

    ok(!strcmp(layout_too_small_text(39, 11, buf, sizeof(buf)),
               "terminal too small: 39x11, need 40x12"),
       "too-small text at 39 columns");
    ok(!strcmp(layout_too_small_text(25, 5, buf, sizeof(buf)), "too small: need 40x12"),
       "too-small text at 25 columns");
    ok(!strcmp(layout_too_small_text(20, 5, buf, sizeof(buf)), "too small"),
       "too-small text at 20 columns");
    ok(!strcmp(layout_too_small_text(1, 1, buf, sizeof(buf)), "!"), "too-small text at 1x1");
    ok(!strcmp(layout_too_small_text(0, 0, buf, sizeof(buf)), ""), "too-small text at 0x0");
    int fits = 1;
    for (int c = -2; c < 100; c++)
        if ((int)strlen(layout_too_small_text(c, 3, buf, sizeof(buf))) > (c < 0 ? 0 : c))
            fits = 0;
    ok(fits, "too-small text always fits the width");
}

static int inside(struct ui_rect r, int lines, int cols)
{
    return r.h >= 0 && r.w >= 0 &&
           (r.h == 0 || r.w == 0 ||
            (r.y >= 0 && r.x >= 0 && r.y + r.h <= lines && r.x + r.w <= cols));
}

static int overlap(struct ui_rect a, struct ui_rect b)
{
    if (!a.h || !a.w || !b.h || !b.w)
        return 0;
    return a.y < b.y + b.h && b.y < a.y + a.h && a.x < b.x + b.w && b.x < a.x + a.w;
}

static void test_sweep(void)
{
    int in_screen = 1, disjoint = 1, tiles = 1, minimum = 1, small = 1, steady = 1, help_ok = 1;
    for (int lines = -1; lines <= 80; lines++) {
        for (int cols = -1; cols <= 200; cols++) {
            int kind0 = -1;
            for (int input = 0; input <= 7; input++) {
                for (int panel = 0; panel <= 1; panel++) {
                    struct layout l = lay(cols, lines, input, panel, panel);
                    struct ui_rect parts[4] = {l.transcript, l.panel, l.status, l.input};
                    int area = 0;
                    if (l.too_small != (cols < 40 || lines < 12))
                        small = 0;
                    if (!inside(l.message, lines < 0 ? 0 : lines, cols < 0 ? 0 : cols) ||
                        !inside(l.help, lines, cols))
                        in_screen = 0;
                    for (int i = 0; i < 4; i++) {
                        if (!inside(parts[i], lines, cols))
                            in_screen = 0;
                        area += parts[i].h * parts[i].w;
                        for (int j = 0; j < i; j++)
                            if (overlap(parts[i], parts[j]))
                                disjoint = 0;
                    }
                    if (l.too_small)
                        continue;
                    if (area != lines * cols)
                        tiles = 0;
                    if (l.transcript.h < LAYOUT_TRANSCRIPT_MIN || l.transcript.w < 40 ||
                        l.status.h != 1 || l.input.h < 1 || l.input.h > LAYOUT_INPUT_MAX)
                        minimum = 0;
                    if (panel && (l.panel_kind == LAYOUT_PANEL_NONE) != l.panel_hidden)
                        steady = 0;
                    if (!panel && (l.panel_kind != LAYOUT_PANEL_NONE || l.panel_hidden))
                        steady = 0;
                    if (panel) { /* the panel does not come and go as the input grows */
                        if (kind0 < 0)
                            kind0 = l.panel_kind;
                        else if (kind0 != l.panel_kind)
                            steady = 0;
                    }
                    if (panel && (l.help.w < 1 || l.help.h < 1))
                        help_ok = 0;
                }
            }
        }
    }
    ok(small, "sweep: too_small exactly below 40x12");
    ok(in_screen, "sweep: every rectangle stays on the screen");
    ok(disjoint, "sweep: transcript, panel, status and input never overlap");
    ok(tiles, "sweep: they cover the whole screen");
    ok(minimum, "sweep: transcript >= 4 rows and 40 columns, 1 status row, 1..5 input rows");
    ok(steady, "sweep: panel shown or reported hidden, independent of the input rows");
    ok(help_ok, "sweep: the help box is never empty when asked for");
}

static void test_status_fit(void)
{
    const struct layout_seg segs[] = {
        {"llama-3.2-1b", 0},
        {"keyformer", 3},
        {"KV 12.3 MiB / 32.0 MiB (saved 41%)", 1},
        {"ctx 1234/4096", 2},
        {"42.0 tok/s", 2},
        {NULL, 5},
        {"", 0},
    };
    const int n = (int)(sizeof(segs) / sizeof(segs[0]));
    const char *sep = " \xE2\x94\x82 ";
    char out[256];
    unsigned char keep[8];
    int w;

    w = layout_status_fit(segs, n, sep, 200, 0, out, sizeof(out), keep);
    ok(w == wrap_str_width(out, strlen(out), 0) && keep[0] && keep[1] && keep[2] && keep[3] &&
           keep[4] && !keep[5] && !keep[6],
       "wide: every segment, empty ones skipped (%d cols)", w);
    ok(!strcmp(out, "llama-3.2-1b \xE2\x94\x82 keyformer \xE2\x94\x82 KV 12.3 MiB / 32.0 MiB "
                    "(saved 41%) \xE2\x94\x82 ctx 1234/4096 \xE2\x94\x82 42.0 tok/s"),
       "wide: joined with the separator");
    w = layout_status_fit(segs, n, sep, 80, 0, out, sizeof(out), keep);
    ok(w <= 80 && !keep[1] && keep[0] && keep[2] && keep[3] && keep[4],
       "80 columns: the policy (prio 3) goes first");
    w = layout_status_fit(segs, n, sep, 70, 0, out, sizeof(out), keep);
    ok(w <= 70 && !keep[4] && keep[3] && keep[2], "70 columns: then the rightmost prio-2 one");
    w = layout_status_fit(segs, n, sep, 40, 0, out, sizeof(out), keep);
    ok(w <= 40 && !keep[3] && !keep[4] && keep[0] && !strcmp(out, "llama-3.2-1b"),
       "40 columns: budget dropped too (\"%s\")", out);
    w = layout_status_fit(segs, n, sep, 8, 0, out, sizeof(out), keep);
    ok(w == 8 && !strcmp(out, "llama-3\xE2\x80\xA6"), "8 columns: the essential one cut with …");
    w = layout_status_fit(segs, n, sep, 8, 1, out, sizeof(out), keep);
    ok(w == 8 && !strcmp(out, "llama-3~"), "ASCII cut marker");
    w = layout_status_fit(segs, n, sep, 0, 0, out, sizeof(out), keep);
    ok(w == 0 && out[0] == '\0', "0 columns: empty");
    int fits = 1;
    for (int width = 0; width <= 120; width++) {
        w = layout_status_fit(segs, n, sep, width, 0, out, sizeof(out), NULL);
        if (w > width || wrap_str_width(out, strlen(out), 0) != w)
            fits = 0;
    }
    ok(fits, "every width 0..120: the line fits and its width is reported exactly");
    const struct layout_seg wide[] = {{"\xE4\xB8\xAD\xE6\x96\x87\xE6\xA8\xA1\xE5\x9E\x8B", 0}};
    w = layout_status_fit(wide, 1, sep, 5, 0, out, sizeof(out), NULL);
    ok(w == 5 && !strcmp(out, "\xE4\xB8\xAD\xE6\x96\x87\xE2\x80\xA6"),
       "CJK segment cut between characters");
}

static void test_scroll(void)
{
    struct scroll *s = scroll_new();

    ok(s && scroll_following(s) && scroll_top(s) == 0, "new: following, top 0");
    scroll_set_rows(s, 10);
    scroll_set_total(s, 5);
    ok(scroll_top(s) == 0 && scroll_below(s) == 0, "short transcript: top 0");
    scroll_set_total(s, 25);
    ok(scroll_top(s) == 15 && scroll_following(s), "growing while following: view at the tail");
    scroll_by(s, -3);
    ok(scroll_top(s) == 12 && !scroll_following(s) && scroll_below(s) == 3,
       "scroll up 3: stops following, 3 lines below");
    scroll_set_total(s, 40);
    ok(scroll_top(s) == 12 && scroll_below(s) == 18, "growing while scrolled up: view stays");
    scroll_page(s, -1);
    ok(scroll_top(s) == 3, "page up: rows - 1 lines");
    scroll_page(s, -5);
    ok(scroll_top(s) == 0 && !scroll_following(s), "page up past the start: clamped at 0");
    scroll_page(s, 1);
    ok(scroll_top(s) == 9, "page down");
    scroll_by(s, 1000);
    ok(scroll_top(s) == 30 && scroll_following(s), "scrolling to the bottom follows again");
    scroll_set_total(s, 45);
    ok(scroll_top(s) == 35, "and the tail is followed");
    scroll_home(s);
    ok(scroll_top(s) == 0 && !scroll_following(s), "home: top, not following");
    scroll_end(s);
    ok(scroll_top(s) == 35 && scroll_following(s), "end: tail, following");
    scroll_by(s, -20);
    scroll_set_rows(s, 20);
    ok(scroll_top(s) == 15 && !scroll_following(s), "resize taller while scrolled up: top kept");
    scroll_set_rows(s, 40);
    ok(scroll_top(s) == 5 && scroll_following(s), "resize so the bottom shows: clamp, follow");
    scroll_set_rows(s, 10);
    ok(scroll_top(s) == 35, "resize smaller while following: still at the tail");
    scroll_by(s, -30);
    scroll_set_total(s, 8);
    ok(scroll_top(s) == 0 && scroll_following(s), "transcript shrinks (cleared): clamp, follow");
    scroll_set_total(s, 100);
    scroll_set_top(s, 50);
    ok(scroll_top(s) == 50 && !scroll_following(s), "set_top (anchor after re-wrap)");
    scroll_set_top(s, 500);
    ok(scroll_top(s) == 90 && scroll_following(s), "set_top past the end: tail, follow");
    scroll_set_top(s, -5);
    ok(scroll_top(s) == 0, "set_top negative: 0");
    scroll_set_rows(s, 0);
    ok(scroll_top(s) == 0 || scroll_top(s) <= scroll_total(s), "zero rows: valid top");
    scroll_set_rows(s, 1);
    scroll_end(s);
    scroll_page(s, -1);
    ok(scroll_top(s) == 98, "one-row view: a page is one line");
    scroll_by(s, -2000000000);
    scroll_by(s, -2000000000);
    ok(scroll_top(s) == 0, "huge deltas do not overflow");
    scroll_page(s, 2000000000);
    ok(scroll_top(s) == 99 && scroll_following(s), "huge page count clamps to the tail");

    /* invariant under a random walk */
    unsigned seed = 3;
    int inv = 1;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        int op = (int)((seed >> 16) % 7), arg = (int)((seed >> 8) % 61) - 30;
        switch (op) {
        case 0:
            scroll_set_rows(s, arg + 10);
            break;
        case 1:
            scroll_set_total(s, scroll_total(s) + arg);
            break;
        case 2:
            scroll_by(s, arg);
            break;
        case 3:
            scroll_page(s, arg % 3);
            break;
        case 4:
            scroll_home(s);
            break;
        case 5:
            scroll_end(s);
            break;
        default:
            scroll_set_top(s, arg * 3);
            break;
        }
        int m = scroll_total(s) > scroll_rows(s) ? scroll_total(s) - scroll_rows(s) : 0;
        if (scroll_top(s) < 0 || scroll_top(s) > m || (scroll_following(s) && scroll_top(s) != m))
            inv = 0;
    }
    ok(inv, "random operations: 0 <= top <= max, following implies at the tail");
    scroll_free(s);
}

int main(void)
{
    test_named_sizes();
    test_sweep();
    test_status_fit();
    test_scroll();
    return done_testing();
}
