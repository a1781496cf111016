/*
 * view.h — everything kfchat draws: the transcript (Markdown replies, plain user text, notices)
 * shaded by the key-token view, the key-token panel (legend, budget bar, per-layer retention,
 * the selected token's scores), the status line, the input line, the help screen and the list
 * pane (/sessions, /search).
 *
 * The view owns the transcript's display state: per message its text, its token spans (byte
 * offset → absolute context position, recorded by the engine worker) and its wrapped lines,
 * re-rendered only when the text or the width changes.  Drawing goes to curses' stdscr and is
 * batched: view_draw() redraws what is dirty and ends in one refresh.
 *
 * UI thread only.  Positions: token positions are those of engine_n_past (0-based).
 */
#ifndef KF_UI_VIEW_H
#define KF_UI_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "kvshade.h"

enum view_role {
    VIEW_USER,
    VIEW_ASSISTANT,
    VIEW_SYSTEM,
    VIEW_NOTICE, /* command output, hints: not part of the conversation */
    VIEW_ERROR,
};

/* What the status line shows; strings are borrowed for the next view_draw(). */
struct view_status {
    const char *model;    /* model name */
    const char *policy;   /* KV policy name */
    const char *state;    /* "loading", "reading", "generating", "ready", ... */
    int kv_budget;        /* entries per layer and head (0: unbounded) */
    size_t kv_used, kv_full, kv_budget_bytes;
    int n_past, n_ctx;
    double prompt_tps, gen_tps;
    size_t rss;
    double progress;      /* 0..1 shown as a bar before everything else; < 0: none */
    const char *note;     /* a transient one-line message, or NULL */
};

struct view;

struct view *view_new(void);
void view_free(struct view *v);

// ---- transcript ---------------------------------------------------------------------------

/* Add a message; returns its index, or -1 on OOM. */
int view_add(struct view *v, enum view_role role, const char *text, size_t n);
/* Append streamed bytes to message i; pos ≥ 0 is the context position of the token they
 * came from (its span starts at the first appended byte). */
void view_append(struct view *v, int i, const char *s, size_t n, int pos);
/* Token spans of message i: token k starts at byte off[k] and sits at position pos[k]
 * (off ascending).  Replaces what the message had. */
void view_set_tokens(struct view *v, int i, const int *off, const int *pos, int n);
/* Drop messages i.. (regenerate, edit); view_clear drops all. */
void view_truncate(struct view *v, int i);
void view_clear(struct view *v);
int view_n_msgs(const struct view *v);
enum view_role view_msg_role(const struct view *v, int i);
const char *view_msg_text(const struct view *v, int i, size_t *len);

// ---- navigation ---------------------------------------------------------------------------

void view_scroll(struct view *v, int lines);
void view_page(struct view *v, int pages);
void view_scroll_end(struct view *v);

// ---- key-token view -----------------------------------------------------------------------

/* (Re)create the shading state for a model of n_layer layers; NULL on OOM.  The caller feeds
 * it (kvshade_begin / kvshade_add_trace) and then calls view_touch(). */
struct kvshade *view_kv_reset(struct view *v, int n_layer);
struct kvshade *view_kvshade(struct view *v);
void view_kv_toggle(struct view *v);
int view_kv_on(const struct view *v);
/* Layer shown: delta steps through all, 0, 1, ... */
void view_kv_layer(struct view *v, int delta);
/* Move the token cursor by delta positions (INT_MAX / INT_MIN: the last / first token). */
void view_kv_cursor(struct view *v, int delta);

// ---- overlays -----------------------------------------------------------------------------

void view_help(struct view *v, int on);
int view_help_on(const struct view *v);
/* The list pane: title, n items (copied), the selected one; n < 0 closes it. */
void view_list(struct view *v, const char *title, const char *const *items, int n, int sel);
int view_list_on(const struct view *v);

// ---- drawing ------------------------------------------------------------------------------

void view_set_status(struct view *v, const struct view_status *st);
/* Everything must be drawn again (new data, resize, SIGCONT). */
void view_touch(struct view *v);
int view_dirty(const struct view *v);
/* Draw: everything if dirty, else only the input line if it changed.  Ends in doupdate(). */
void view_draw(struct view *v);

#endif
