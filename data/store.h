/*
 * store.h — kfchat's session store: one SQLite database with sessions, their messages as a
 * tree (a regenerated or edited turn is a sibling branch; a fork is a new session copied from
 * a branch), how each reply was generated, full-text search, and engine snapshots for exact
 * resume.  The schema is data/schema.sql; older databases are migrated on open.
 *
 * Durability.  Every write below is one transaction, committed before the call returns: a
 * message saved at the end of its turn survives kill -9 of the process.  The journal is WAL
 * with synchronous=NORMAL, so a commit costs no fsync; a power cut may lose the last commits
 * but never corrupts the file.
 *
 * Errors.  Functions return a status code (engine/status.h); the one-line reason, prefixed
 * with the database path, is store_errmsg(s), valid until the next call on s.  STATUS_DB:
 * locked by another process (after the busy timeout) or another SQLite failure; STATUS_IO:
 * write failed (disk full, I/O error) or the database is read-only; STATUS_FORMAT: the file
 * or a snapshot is damaged; STATUS_NOT_FOUND: no such session or message; STATUS_INVALID: a
 * bad argument (duplicate session name, parent in another session, bad search syntax).
 * Nothing is changed when a call fails.
 *
 * Ownership.  Strings in the structs filled by getters are malloc'd and owned by the struct:
 * release them with the matching *_clear or *_array_free.  Structs given to the store
 * (store_msg_insert) are only read; the store keeps copies.
 *
 * Threads.  A handle belongs to one thread at a time (the UI thread in kfchat).  Several
 * handles, in one process or several, may use the same file.
 *
 * The store knows nothing of the engine: snapshots are opaque bytes with a format tag.
 */
#ifndef KF_STORE_H
#define KF_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION        2    /* what data/schema.sql creates */
#define STORE_BUSY_TIMEOUT_MS       3000 /* how long to wait for another writer by default */
#define STORE_SNAPSHOT_KEEP_DEFAULT 3    /* snapshots kept per session */

struct store;

/* Flags of store_open. */
enum store_open_flag {
    STORE_READONLY = 1, /* never write: no creation, no migration, writes fail */
};

enum store_role {
    STORE_ROLE_SYSTEM,
    STORE_ROLE_USER,
    STORE_ROLE_ASSISTANT,
};

/* "system", "user", "assistant"; "?" for a value out of range. */
const char *store_role_name(enum store_role role);
/* The role named name (as store_role_name writes it); STATUS_INVALID if none. */
int store_role_parse(const char *name, enum store_role *out);

// ---- opening ------------------------------------------------------------------------------

/*
 * Open the database at path, or ":memory:" for a private in-memory one.
 *
 * Without STORE_READONLY a missing file is created with mode 0600 (missing parent directories
 * with 0700), an empty one gets the latest schema, and an older schema is migrated in one
 * transaction.  The connection uses WAL, foreign keys and a busy timeout of
 * STORE_BUSY_TIMEOUT_MS.  A file the process may not write is opened read-only
 * (store_is_readonly says so; writes then fail with STATUS_IO and a clear message).
 *
 * Nothing in the file is changed, and *out is NULL, when the file is not a kfchat database
 * (STATUS_FORMAT: "PATH: not a kfchat database (file is corrupt or not SQLite)", or "(it
 * belongs to another program)"), has a newer schema than this build knows (STATUS_UNSUPPORTED),
 * is locked by another process past the timeout (STATUS_DB), or needs creating or migrating
 * but is read-only (STATUS_IO).  A missing file with STORE_READONLY is STATUS_NOT_FOUND.
 * The one-line reason goes to err (errlen bytes, may be NULL/0).
 */
int store_open(struct store **out, const char *path, int flags, char *err, size_t errlen);

/* Close the handle (NULL is fine).  Pending statements are finalized. */
void store_close(struct store *s);

/* The last error on s, one line starting with the path; "" if none.  Borrowed. */
const char *store_errmsg(const struct store *s);

/* 1 when writes are refused: STORE_READONLY was given or the file is not writable. */
int store_is_readonly(const struct store *s);

/* The schema version the file had when opened: 0 for a new file, < STORE_SCHEMA_VERSION
 * when it was migrated (the application may say so). */
int store_version_at_open(const struct store *s);

/* Wait at most ms milliseconds for another process's write lock (0: fail at once). */
void store_set_busy_timeout(struct store *s, int ms);

/* Check the whole file (b-trees, foreign keys, full-text index): STATUS_OK or STATUS_FORMAT
 * with the first problem in store_errmsg.  Reads everything, so it takes time on large files. */
int store_check_integrity(struct store *s);

/*
 * Create a new database at path at schema version (1..STORE_SCHEMA_VERSION) by running the
 * migration steps from an empty file, as an older kfchat would have left it.  For tests of
 * the migrations and for reproducing old files; the application never needs it.  path must
 * not exist or be empty.
 */
int store_create_at_version(const char *path, int version, char *err, size_t errlen);

// ---- sessions -----------------------------------------------------------------------------

struct store_session {
    int64_t id;
    const char *name;       /* NULL when unnamed */
    const char *model_path; /* "" when unknown */
    const char *model_hash; /* model fingerprint, "" when unknown */
    const char *settings;   /* JSON text chosen by the application, "{}" by default */
    int64_t forked_from;    /* message this session was forked at; 0 if none or deleted */
    int64_t created_ms;     /* milliseconds since the epoch, UTC */
    int64_t updated_ms;     /* last activity: newest message or touch */
    int64_t n_messages;     /* messages in all branches */
    const char *preview;    /* first user message, <= 80 characters (may hold newlines) */
};

/*
 * New session; name may be NULL (unnamed) but not "", model_path/model_hash/settings may be
 * NULL (stored as ""/""/"{}").  Its id goes to *id.  STATUS_INVALID if name is taken.
 */
int store_session_create(struct store *s, const char *name, const char *model_path,
                         const char *model_hash, const char *settings, int64_t *id);
/* The session with this id / this name into *out (clear it with store_session_clear). */
int store_session_get(struct store *s, int64_t id, struct store_session *out);
int store_session_find(struct store *s, const char *name, struct store_session *out);
/* Sessions, most recent activity first, at most limit of them (0: all); *out is an array of
 * *n (NULL when 0), freed with store_session_array_free. */
int store_session_list(struct store *s, size_t limit, struct store_session **out, size_t *n);
/* Rename (NULL: make unnamed).  STATUS_INVALID if the name is taken. */
int store_session_rename(struct store *s, int64_t id, const char *name);
/* Record the model the session now runs with (after -m changed it).  settings may be NULL
 * to leave them. */
int store_session_set_model(struct store *s, int64_t id, const char *model_path,
                            const char *model_hash, const char *settings);
/* Mark activity now, so that the session lists first. */
int store_session_touch(struct store *s, int64_t id);
/* Delete the session, its messages and their snapshots.  Sessions forked from it keep their
 * copies (their forked_from becomes 0). */
int store_session_delete(struct store *s, int64_t id);
/*
 * Fork: a new session (named name, or unnamed) holding copies of the branch from the root to
 * message msg_id, with the same model and settings, and a copy of msg_id's snapshot if it has
 * one, so the fork resumes without re-processing.  Copies, not references: each session then
 * stands alone (delete, export and search need no cross-session links), and a transcript is
 * small next to a snapshot, of which only one is copied.  The new id goes to *id.
 */
int store_session_fork(struct store *s, int64_t msg_id, const char *name, int64_t *id);

void store_session_clear(struct store_session *ss);
void store_session_array_free(struct store_session *v, size_t n);

// ---- messages -----------------------------------------------------------------------------

/* How a reply was generated; every field optional (NULL or 0). */
struct store_gen {
    const char *model_hash;    /* model fingerprint */
    const char *template_name; /* chat template */
    const char *sampler;       /* sampler chain and parameters, JSON text */
    uint64_t seed;
    const char *kv_policy; /* KV cache policy name */
    int64_t kv_budget;     /* KV budget in tokens, 0 = unbounded */
};

struct store_msg {
    int64_t id;
    int64_t session_id;
    int64_t parent_id; /* 0 for a root */
    enum store_role role;
    const char *text; /* UTF-8 */
    int64_t n_tokens;
    int64_t created_ms;  /* when the turn started (0 on insert: now) */
    int64_t finished_ms; /* when it ended (0 on insert: now) */
    struct store_gen gen;
    int has_snapshot; /* filled by getters; ignored on insert */
};

/*
 * Save a finished turn (m->id and m->has_snapshot are ignored) in its own transaction and
 * bump the session's activity time.  The parent must be in the same session (STATUS_INVALID
 * otherwise); STATUS_NOT_FOUND if the session or parent does not exist.  New id to *id.
 */
int store_msg_insert(struct store *s, const struct store_msg *m, int64_t *id);
/* One message into *out (clear it with store_msg_clear). */
int store_msg_get(struct store *s, int64_t id, struct store_msg *out);
/* The branch ending at leaf_id, root first: what the model saw. */
int store_msg_path(struct store *s, int64_t leaf_id, struct store_msg **out, size_t *n);
/* The children of parent_id (0: the roots) in session_id, oldest first. */
int store_msg_children(struct store *s, int64_t session_id, int64_t parent_id,
                       struct store_msg **out, size_t *n);
/* Every message of the session in every branch, by id. */
int store_msg_list_all(struct store *s, int64_t session_id, struct store_msg **out, size_t *n);
/* The newest message of the session, always a leaf: where --resume continues.  *id is 0 for
 * an empty session (STATUS_OK); STATUS_NOT_FOUND if there is no such session. */
int store_msg_latest_leaf(struct store *s, int64_t session_id, int64_t *id);
/* Delete a message and its whole subtree (with snapshots). */
int store_msg_delete(struct store *s, int64_t id);

void store_msg_clear(struct store_msg *m);
void store_msg_array_free(struct store_msg *v, size_t n);

// ---- snapshots ----------------------------------------------------------------------------

enum store_codec {
    STORE_CODEC_NONE = 0, /* stored as given */
    STORE_CODEC_ZLIB = 1, /* deflate, used only when it saves at least 10% */
};

struct store_snapshot {
    int64_t message_id;
    const char *format;     /* the caller's format tag */
    const char *model_hash; /* the model the state belongs to */
    void *data;             /* the raw bytes, as given to store_snapshot_put */
    size_t size;
    size_t stored_size; /* bytes in the database */
    enum store_codec codec;
    int64_t created_ms;
};

/*
 * Attach engine state to message msg_id (replacing any), compressed if that saves >= 10%,
 * then drop the session's older snapshots beyond the keep limit, all in one transaction.
 * A message saved without its snapshot (crash in between) just resumes from an older one or
 * by re-processing.  STATUS_INVALID if the blob exceeds SQLite's size limit (1 GB by default).
 */
int store_snapshot_put(struct store *s, int64_t msg_id, const char *format, const char *model_hash,
                       const void *data, size_t size);
/* The snapshot of msg_id, decompressed and checked (STATUS_FORMAT if damaged). */
int store_snapshot_get(struct store *s, int64_t msg_id, struct store_snapshot *out);
/* The nearest message on the branch from msg_id up to the root (msg_id included) that has a
 * snapshot, into *found; STATUS_NOT_FOUND if none: the caller re-processes the transcript. */
int store_snapshot_find(struct store *s, int64_t msg_id, int64_t *found);
/*
 * Keep only the newest keep snapshots per session (<= 0: keep all).  Snapshots are megabytes
 * each; resume needs only the newest, and regenerating or forking one of the last turns the
 * next few.  Older ones are rebuilt by re-processing, so the file stays bounded by about
 * keep snapshots per session.  Applies from the next put; default STORE_SNAPSHOT_KEEP_DEFAULT.
 */
void store_snapshot_set_keep(struct store *s, int keep);

void store_snapshot_clear(struct store_snapshot *snap);

// ---- search -------------------------------------------------------------------------------

enum store_search_flag {
    STORE_SEARCH_FTS = 1, /* the query is FTS5 syntax (AND, OR, "phrase", prefix*) */
};

struct store_hit {
    int64_t session_id;
    int64_t message_id;
    enum store_role role;
    int64_t created_ms;
    const char *session_name; /* NULL when unnamed */
    const char *snippet;      /* text around the match, matches between the markers */
};

/*
 * Full-text search over all messages (session_id 0) or one session's, best match first, at
 * most limit hits (0: 50).  Without STORE_SEARCH_FTS every word of query must occur (case and
 * accents ignored), and no character is special.  Matches in the snippet are wrapped in
 * mark_open/mark_close (NULL: "[" and "]").  STATUS_INVALID for an empty query or bad FTS5
 * syntax.
 */
int store_search(struct store *s, const char *query, int flags, int64_t session_id,
                 const char *mark_open, const char *mark_close, size_t limit,
                 struct store_hit **out, size_t *n);
void store_hit_array_free(struct store_hit *v, size_t n);

// ---- export -------------------------------------------------------------------------------

enum store_format {
    STORE_FORMAT_MD,
    STORE_FORMAT_JSON,
};

/* "md" / "markdown" / "json"; STATUS_INVALID otherwise. */
int store_format_parse(const char *name, enum store_format *out);

enum store_export_flag {
    STORE_EXPORT_ALL = 1, /* every branch, by id, instead of the branch ending at the newest */
};

/*
 * Pure formatters: session ss and messages v[0..n) as Markdown or as JSON (UTF-8, every
 * control character escaped, invalid UTF-8 replaced by U+FFFD) into a malloc'd
 * NUL-terminated *out.  STATUS_NOMEM is the only failure.
 */
int store_export_md(const struct store_session *ss, const struct store_msg *v, size_t n,
                    char **out);
int store_export_json(const struct store_session *ss, const struct store_msg *v, size_t n,
                      char **out);
/* Load session_id (its current branch, or all with STORE_EXPORT_ALL) and format it. */
int store_export_session(struct store *s, int64_t session_id, enum store_format format, int flags,
                         char **out);

#endif
