/*
 * scroll.h — the scroll position of a transcript of wrapped display lines.
 *
 * The view shows `rows` lines starting at `top`.  While following, the view sticks to the tail:
 * new lines (a streaming reply) scroll it along.  Scrolling up stops following; getting back to
 * the bottom — by scrolling, paging or scroll_end — follows again, as chat views do.  A resize
 * or a shrinking transcript clamps top into range; a view that ends up at the bottom follows.
 *
 * Line counts are display lines after wrapping; when the width changes, the caller maps its
 * anchor (the source offset of the top line) to the new line index and calls scroll_set_top.
 */
#ifndef KF_UI_SCROLL_H
#define KF_UI_SCROLL_H

struct scroll;

/* A new scroll state: empty transcript, zero rows, following.  NULL on OOM. */
struct scroll *scroll_new(void);
void scroll_free(struct scroll *s);

void scroll_set_rows(struct scroll *s, int rows);   /* view height (negative = 0) */
void scroll_set_total(struct scroll *s, int total); /* display lines in the transcript */
void scroll_by(struct scroll *s, int delta);        /* lines; negative = up (older) */
void scroll_page(struct scroll *s, int pages);      /* pages of rows - 1 lines (at least 1) */
void scroll_home(struct scroll *s);                 /* first line; stops following */
void scroll_end(struct scroll *s);                  /* the tail; follows */
void scroll_set_top(struct scroll *s, int top);     /* e.g. an anchor after re-wrapping */

int scroll_top(const struct scroll *s); /* first visible line */
int scroll_rows(const struct scroll *s);
int scroll_total(const struct scroll *s);
int scroll_following(const struct scroll *s);
int scroll_below(const struct scroll *s); /* lines after the view ("12 more below") */

#endif
