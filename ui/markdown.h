/*
 * markdown.h — render an assistant reply (Markdown) into styled, wrapped screen lines.
 *
 * The renderer owns a copy of the text and produces display lines made of runs; a run is either
 * a span of the source (so a token's bytes map to the cells that show them) or a decoration
 * (bullet, quote bar, code margin, truncation marker).  Markup characters (**, `, #, >) are
 * hidden: no run covers them.
 *
 * What is understood, a pragmatic subset of CommonMark/GFM chosen for chat output:
 *   - fenced code blocks (``` or ~~~, 3+, info string shown as a label): set apart by a left
 *     margin and UI_STYLE_CODE; code lines are never wrapped — a line too long is cut and ends
 *     in a truncation marker.  An unclosed fence makes the rest of the text code, which is what
 *     a reply that is still streaming needs;
 *   - ATX headings (# .. ######), thematic breaks (---, ***, ___), block quotes (> nested),
 *     bullet (- * +) and ordered (1. 1)) lists, nested by indentation, with a hanging indent;
 *   - inline: `code`, **strong**, __strong__, *emphasis*, _emphasis_ (nested, with CommonMark's
 *     flanking rules and rule of three), backslash escapes.
 *   - every source newline is a line break (as chat UIs do), and consecutive blank lines show
 *     as one.  Not understood: setext headings, tables, links (shown as typed), HTML, indented
 *     code blocks (4-space indentation means list nesting in chat output far more often).
 *
 * Streaming: each source line renders from the parser state after the previous line and the
 * line itself, never from what follows.  The renderer therefore keeps the state after the last
 * complete line; when the text grows, only the unfinished last line and the new text are
 * rendered again, and lines already shown never change (tests check both).
 *
 * Lines and runs returned are borrowed: valid until the next call that changes the text or
 * the width.  One renderer per message; not thread-safe.
 */
#ifndef KF_UI_MARKDOWN_H
#define KF_UI_MARKDOWN_H

#include <stddef.h>
#include <stdint.h>

#include "style.h"

enum md_run_kind {
    MD_RUN_TEXT, /* source bytes [start, start + len) */
    MD_RUN_LIT,  /* the constant UTF-8 string lit */
    MD_RUN_FILL, /* the one-glyph string lit repeated width times */
};

struct md_run {
    int kind;          /* enum md_run_kind */
    int style;         /* enum ui_style */
    unsigned flags;    /* UI_FLAG_* */
    int col, width;    /* columns the run covers on its line */
    size_t start, len; /* MD_RUN_TEXT: source bytes */
    const char *lit;   /* MD_RUN_LIT, MD_RUN_FILL: static text, never freed */
};

enum md_line_kind {
    MD_LINE_TEXT,    /* paragraph, list item, quote */
    MD_LINE_BLANK,   /* empty line between blocks */
    MD_LINE_HEADING, /* level in md_line.level */
    MD_LINE_RULE,    /* thematic break */
    MD_LINE_CODE,    /* a code line: the curses layer paints the rest of the row as code too */
    MD_LINE_FENCE,   /* the opening (label) or closing line of a code block (also code-painted) */
};

struct md_line {
    size_t run0; /* first run: markdown_runs(md) + run0 */
    int n_runs;
    int width;                 /* columns used (≤ the render width) */
    int kind;                  /* enum md_line_kind */
    int level;                 /* heading level 1..6; 0 otherwise */
    int tab_origin;            /* tabs in TEXT runs count from this column (wrap_sanitize) */
    size_t src_start, src_end; /* the source line this display line belongs to (no newline) */
};

struct markdown;

/* New empty renderer for the given width (≥ 1); ascii: decorations in ASCII only. NULL on OOM. */
struct markdown *markdown_new(int width, int ascii);
void markdown_free(struct markdown *md);

/* Change the width; everything is rendered again at the next markdown_render(). */
void markdown_set_width(struct markdown *md, int width);

/* Append streamed text.  STATUS_OK or STATUS_NOMEM (the text is then unchanged). */
int markdown_append(struct markdown *md, const char *s, size_t n);

/*
 * Replace the text.  When the new text starts with the old one (a re-sent, longer reply) the
 * rendered prefix is kept, as with append.  STATUS_OK or STATUS_NOMEM.
 */
int markdown_set_text(struct markdown *md, const char *s, size_t n);

/* The text as stored (borrowed); *len gets its length. */
const char *markdown_text(const struct markdown *md, size_t *len);

/*
 * Bring the lines up to date with the text: from the state saved after the last complete line,
 * or from the start after a width change.  STATUS_OK or STATUS_NOMEM (then call again later;
 * the lines are empty meanwhile).
 */
int markdown_render(struct markdown *md);

size_t markdown_n_lines(const struct markdown *md);
const struct md_line *markdown_line(const struct markdown *md, size_t i);
const struct md_run *markdown_runs(const struct markdown *md);

/* Source bytes the last markdown_render() parsed (the cost of one streaming update). */
size_t markdown_last_parsed(const struct markdown *md);

/*
 * Plain text of display line i as drawn (decorations included, source spans sanitized with
 * wrap_sanitize, gaps as spaces), NUL-terminated, for tests and copying; returns its length
 * in bytes, truncated to outcap - 1.
 */
size_t markdown_line_text(const struct markdown *md, size_t i, char *out, size_t outcap);

#endif
