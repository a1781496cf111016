/*
 * scroll.c — follow-tail scrolling over wrapped lines (see scroll.h).
 *
 * Invariant after every call: 0 <= top <= max_top = max(0, total - rows), and following implies
 * top == max_top.  Following is a state, not derived from top == max_top, because a transcript
 * that grows while the user reads older lines must not drag the view along.
 */
#include "config.h"
#include "scroll.h"

#include <stdlib.h>

struct scroll {
    int total;     /* display lines */
    int rows;      /* view height */
    int top;       /* first visible line */
    int following; /* stick to the tail */
};

struct scroll *scroll_new(void)
{
    struct scroll *s = calloc(1, sizeof(*s));
    if (s)
        s->following = 1;
    return s;
}

void scroll_free(struct scroll *s)
{
    free(s);
}

static int max_top(const struct scroll *s)
{
    return s->total > s->rows ? s->total - s->rows : 0;
}

/* Restore the invariant; reaching the bottom resumes following. */
static void scroll_fix(struct scroll *s)
{
    int m = max_top(s);
    if (s->following || s->top >= m) {
        s->top = m;
        s->following = 1;
    }
    if (s->top < 0)
        s->top = 0;
}

void scroll_set_rows(struct scroll *s, int rows)
{
    s->rows = rows < 0 ? 0 : rows;
    scroll_fix(s);
}

void scroll_set_total(struct scroll *s, int total)
{
    s->total = total < 0 ? 0 : total;
    scroll_fix(s);
}

void scroll_by(struct scroll *s, int delta)
{
    long t = (long)s->top + delta; /* no int overflow on large deltas */
    int m = max_top(s);

    if (delta < 0 && m > 0 && t < m)
        s->following = 0;
    s->top = t < 0 ? 0 : t > m ? m : (int)t;
    scroll_fix(s);
}

void scroll_page(struct scroll *s, int pages)
{
    int step = s->rows > 1 ? s->rows - 1 : 1; /* keep one line of context */
    long d = (long)step * pages;
    scroll_by(s, d < -1000000000L ? -1000000000 : d > 1000000000L ? 1000000000 : (int)d);
}

void scroll_home(struct scroll *s)
{
    s->top = 0;
    s->following = 0;
    scroll_fix(s);
}

void scroll_end(struct scroll *s)
{
    s->following = 1;
    scroll_fix(s);
}

void scroll_set_top(struct scroll *s, int top)
{
    int m = max_top(s);
    s->top = top < 0 ? 0 : top > m ? m : top;
    s->following = 0;
    scroll_fix(s);
}

int scroll_top(const struct scroll *s)
{
    return s->top;
}

int scroll_rows(const struct scroll *s)
{
    return s->rows;
}

int scroll_total(const struct scroll *s)
{
    return s->total;
}

int scroll_following(const struct scroll *s)
{
    return s->following;
}

int scroll_below(const struct scroll *s)
{
    int b = s->total - s->top - s->rows;
    return b > 0 ? b : 0;
}
