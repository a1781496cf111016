/*
 * session_impl.h — what session.c (branch, engine and store sides, opening) and session_turn.c
 * (the turns) share: the session's state and the internal steps.  Private to the session.
 */
#ifndef KF_SESSION_IMPL_H
#define KF_SESSION_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"
#include "../data/store.h"

#ifndef HAVE_UI
/* Built without SQLite (--without-ui): sessions live in memory only and st is always NULL, so
 * none of these stand-ins for the store's functions is ever reached. */
static inline int store_unavailable(const void *s, ...)
{
    (void)s;
    return STATUS_UNSUPPORTED;
}
#define store_errmsg(s) ((void)(s), "")
#define store_is_readonly(s) ((void)(s), 1)
#define store_msg_insert(...) store_unavailable(__VA_ARGS__)
#define store_msg_latest_leaf(...) store_unavailable(__VA_ARGS__)
#define store_msg_path(...) store_unavailable(__VA_ARGS__)
#define store_msg_array_free(v, n) ((void)(v), (void)(n))
#define store_session_create(...) store_unavailable(__VA_ARGS__)
#define store_session_find(...) store_unavailable(__VA_ARGS__)
#define store_session_fork(...) store_unavailable(__VA_ARGS__)
#define store_session_get(...) store_unavailable(__VA_ARGS__)
#define store_session_rename(...) store_unavailable(__VA_ARGS__)
#define store_session_set_model(...) store_unavailable(__VA_ARGS__)
#define store_session_clear(r) ((void)(r))
#define store_snapshot_find(...) store_unavailable(__VA_ARGS__)
#define store_snapshot_get(...) store_unavailable(__VA_ARGS__)
#define store_snapshot_put(...) store_unavailable(__VA_ARGS__)
#define store_snapshot_clear(r) ((void)(r))
#endif

#define SNAP_FORMAT "kfchat-engine-1" /* tag of engine_state_save blobs in the store */

struct smsg {
    enum store_role role;
    char *text;
    int64_t id;    /* store id; 0 until committed */
    uint64_t uid;  /* identity within this object, never reused */
    int pos;       /* context position where the message starts */
    int n_tokens;  /* context positions it took: its turn, generation prompt / closing text */
};

struct snap {
    void *data;
    size_t len;
    size_t at;    /* engine state after msgs[0..at) (no generation prompt) */
    uint64_t uid; /* uid of msgs[at - 1] */
};

struct session {
    struct engine *e;
    struct sampler *s;
    struct store *st;
    int64_t id;
    char *name;
    char *settings;
    int meta_dirty; /* resumed: record the model and settings in use at the next commit */
    int n_predict;
    enum session_resume resume;
    struct smsg *m; /* the current branch */
    size_t n, cap;
    struct chat_msg *view; /* (cap) what session_msgs returns */
    uint64_t next_uid;
    size_t in_n; /* see the invariant above */
    uint64_t in_uid;
    int in_gen, in_ok;
    struct snap snap[2]; /* after the last two replies, where the store lacks them (session.h) */
    double prompt_tps, gen_tps;
    char sampler_json[512];
    char tmpl[64], kv_policy[64];
    int64_t kv_budget;
    char note[512];
    char err[512];
};

// ---- internal steps (session.c) -----------------------------------------------------------------

/* Set the session's error message and return st. */
int sess_fail(struct session *ss, int st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sess_engine_fail(struct session *ss, int st); /* the engine's message */
int64_t sess_now_ms(void);                        /* wall clock, for message timestamps */
double sess_now_s(void);                          /* monotonic, for rates */
char *sess_dup_str(const char *s);                /* strdup that passes NULL through */
int sess_msg_append(struct session *ss, enum store_role role, const char *text, size_t len);
void sess_msg_truncate(struct session *ss, size_t n);
/* The engine now holds msgs[0..n) (plus the generation prompt if gen). */
void sess_state_set(struct session *ss, size_t n, int gen);
/* Evaluate message i on top of msgs[0..i) as the first run did. */
int sess_push(struct session *ss, size_t i, int gen, const volatile int *cancel,
              session_progress_fn progress, void *ud);
/* Bring the engine to msgs[0..upto) (+ generation prompt): see session.c. */
int sess_ensure(struct session *ss, size_t upto, int gen, int keep_sampler,
                const volatile int *cancel, session_progress_fn progress, void *ud,
                size_t *replayed, char *why, size_t whylen);
int sess_create(struct session *ss);                                /* the store's record */
int sess_commit(struct session *ss, size_t last, int64_t created); /* save msgs[0..last] */
/* Snapshot the engine after msgs[0..n) into the store with message msg_id, or into memory
 * where there is no store (or no id) or the write fails (session.h says why not both). */
void sess_snap_save(struct session *ss, int64_t msg_id);
/* The sampler chain as JSON: what each reply records, so that it can be reproduced. */
void sess_sampler_json(char *buf, size_t n, const struct sampler_params *p, uint64_t seed);
/* Record the template and KV settings of ss->e (stored with each message). */
void sess_read_engine(struct session *ss);
/* Forget the snapshots kept in memory (they belong to an engine no longer used). */
void sess_snap_drop(struct session *ss);

#endif
