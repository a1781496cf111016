/*
 * session.h — one conversation: its transcript (the current branch of the store's message tree),
 * the engine state that goes with it, and the turn protocol.  Used by the line-mode chat and by
 * the TUI's engine worker; the UI never touches the engine or the store directly for a turn.
 *
 * Persistence is optional: with store == NULL the session lives in memory only.  With a store,
 * every message is committed when its turn ends (the user's at once, the reply when it ends,
 * stopped or not) and a snapshot of the engine state (engine_state_save, taken after the reply
 * is closed) is stored with the assistant message, so that session_open can continue exactly
 * where the conversation stopped without re-processing it.  If the snapshot is missing, or the
 * model file, context size or KV policy changed, the transcript is re-processed instead and
 * session_resume_note() says why.  A resumed branch may end with a user message whose reply was
 * lost (killed mid-reply): it stays the last message (the note says so); session_reply answers
 * it, or session_user adds the next message after it.
 *
 * Regenerate and edit rebuild the engine state of the earlier turn (from the store's snapshot,
 * else from one kept in memory, else by re-processing) but keep the sampler's RNG going, so that
 * a regenerated reply differs unless sampling is greedy.  Memory keeps the snapshots of the last
 * two replies only where the store does not have them (a memory-only session, a failed write):
 * each is as large as the KV cache's entries in use, and a chat's memory should be the cache's.
 *
 * Threading: all calls on one session from one thread at a time (the engine worker).  The
 * cancel flag may be set from any thread or a signal handler.
 */
#ifndef KF_SESSION_H
#define KF_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

struct store;
struct session;

struct session_opts {
    const char *name;     /* continue the session of this name, or create it; NULL: unnamed */
    int64_t resume_id;    /* continue this session id (0: none); wins over name */
    const char *system;   /* system prompt of a new session (NULL: none) */
    int n_predict;        /* max tokens per reply; -1: until a stop token or the context ends */
    /* Added for persistence (both optional, NULL by default): */
    const struct sampler_params *sampling; /* what s was made with: recorded (as JSON, with the
                                            * seed in use) with each reply */
    const char *settings; /* JSON stored as the session's settings (the application's; kfchat
                           * keeps what --resume needs to reopen the model and sampler) */
};

enum session_resume {
    SESSION_NEW,          /* a new conversation */
    SESSION_RESTORED,     /* continued from a snapshot: nothing was re-processed */
    SESSION_REPROCESSED,  /* continued by re-processing the transcript (see the note) */
};

/* Receives each piece of the reply as it is generated (raw bytes, may split UTF-8);
 * return nonzero to stop generating. */
typedef int (*session_piece_fn)(void *ud, const char *piece, int len, int32_t token);
/* Progress of a long prompt (done of total tokens). */
typedef void (*session_progress_fn)(void *ud, int done, int total);

/*
 * Open a conversation on engine e (which must have an empty context) with sampler s.  Errors
 * (one line in err): unknown session id/name when resuming by id, store failures.  Takes no
 * ownership of e, s or st.
 */
int session_open(struct session **out, struct engine *e, struct sampler *s, struct store *st,
                 const struct session_opts *o, char *err, size_t errlen);
void session_close(struct session *ss);
const char *session_errmsg(const struct session *ss);

int64_t session_id(const struct session *ss); /* 0: no store, or unnamed and nothing saved yet */
const char *session_name(const struct session *ss);    /* NULL if unnamed */
enum session_resume session_resume_kind(const struct session *ss);
const char *session_resume_note(const struct session *ss); /* "" or one line */

/* The current branch, oldest first (system, user, assistant, ...); borrowed until the next call. */
size_t session_n_msgs(const struct session *ss);
const struct chat_msg *session_msgs(const struct session *ss);
/* Absolute token position where message i starts in the context (for the key-token view).
 * A user message's span includes the generation prompt after it and a reply's its closing
 * text, so that message i occupies [pos(i), pos(i + 1)).  i >= n: the current end. */
int session_msg_pos(const struct session *ss, size_t i);
/* The store's id of message i (0: not saved yet, or no store). */
int64_t session_msg_id(const struct session *ss, size_t i);

/*
 * One turn: session_user adds the user's text (committed at once) and evaluates it (with the
 * generation prompt); session_reply then generates the reply, streaming pieces to on_piece,
 * until a stop token, n_predict, a full context, *cancel or on_piece's request, and commits it
 * (with a snapshot).  Returns STATUS_OK, STATUS_STOPPED (the partial reply is kept) or
 * STATUS_CONTEXT_FULL (likewise), or an error.
 */
int session_user(struct session *ss, const char *text, const volatile int *cancel,
                 session_progress_fn progress, void *ud);
int session_reply(struct session *ss, session_piece_fn on_piece, void *ud,
                  const volatile int *cancel);

/* Regenerate the last reply (a new branch beside the old one): the user turn is kept. */
int session_regen(struct session *ss, session_piece_fn on_piece, void *ud,
                  const volatile int *cancel);
/* Replace the last user message by text (a new branch) and answer it again. */
int session_edit_last(struct session *ss, const char *text, session_piece_fn on_piece, void *ud,
                      const volatile int *cancel);
/* Start a new session from the current turn (a copy of the branch); this session switches to it. */
int session_fork(struct session *ss, const char *name);
int session_rename(struct session *ss, const char *name);

/*
 * Go on with other settings: engine e (a fresh one, with an empty context, or the session's own)
 * and sampler s (the caller has already loaded the old sampler's state into it, so the RNG and
 * penalties continue; sampling: what s was made with, recorded with later replies).  The
 * transcript stays as it is, with or without a store, and a new engine is brought to its end by
 * re-processing it now (progress reported; *cancel stops it, and the next turn catches up).
 * The store's session goes on and records the new settings at its next commit.  *replayed
 * gets the number of messages re-processed.  The old engine and sampler are no longer used.
 */
int session_rebind(struct session *ss, struct engine *e, struct sampler *s,
                   const struct sampler_params *sampling, const volatile int *cancel,
                   session_progress_fn progress, void *ud, size_t *replayed);

/* Speed of the last turn: prompt and generation tokens per second (0 if none). */
double session_prompt_tps(const struct session *ss);
double session_gen_tps(const struct session *ss);

#endif
