/*
 * store_impl.h — what the store's source files (store.c, store_session.c, store_msg.c,
 * store_export.c) share and nothing else sees: the handle, the statement cache, error
 * reporting and transactions.
 */
#ifndef KF_STORE_IMPL_H
#define KF_STORE_IMPL_H

#include "store.h"

#include <sqlite3.h>
#include <stdint.h>

/*
 * One slot per SQL statement of the store.  Statements are prepared on first use with
 * SQLITE_PREPARE_PERSISTENT and kept on the handle until store_close, so a turn's commit
 * parses no SQL.  Every user resets its statement (store_stmt_done) before returning, so no
 * read transaction is left open to block checkpoints.
 */
enum store_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SESSION_INSERT,
    ST_SESSION_GET,
    ST_SESSION_FIND,
    ST_SESSION_LIST,
    ST_SESSION_RENAME,
    ST_SESSION_SET_MODEL,
    ST_SESSION_TOUCH,
    ST_SESSION_BUMP,
    ST_SESSION_DELETE,
    ST_SESSION_EXISTS,
    ST_MSG_INSERT,
    ST_MSG_GET,
    ST_MSG_SESSION_OF,
    ST_MSG_PATH,
    ST_MSG_CHILDREN,
    ST_MSG_ROOTS,
    ST_MSG_ALL,
    ST_MSG_LATEST,
    ST_MSG_DELETE,
    ST_SNAP_PUT,
    ST_SNAP_GET,
    ST_SNAP_PRUNE,
    ST_SNAP_FIND,
    ST_SNAP_COPY,
    ST_SEARCH,
    ST_COUNT
};

/*
 * The handle.  db is open and at STORE_SCHEMA_VERSION for the whole life of the handle;
 * readonly is set when the caller asked for it or SQLite could open the file only for
 * reading, and then no write statement is ever stepped.
 */
struct store {
    sqlite3 *db;
    char *path;                   /* as given to store_open; prefixes every message */
    int readonly;                 /* writes refused before reaching SQLite */
    int version_at_open;          /* user_version found on open (0: new file) */
    int busy_ms;                  /* busy timeout, reported in "locked" messages */
    int snapshot_keep;            /* snapshots kept per session, <= 0 = all */
    char err[512];                /* last error, one line; "" when none */
    int status;                   /* the status code that went with err */
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared on first use */
};

/* Columns read by store_msg_from_row, in order (m is the messages table). */
#define STORE_MSG_COLUMNS                                                                          \
    "m.id, m.session_id, m.parent_id, m.role, m.text, m.n_tokens, m.created_ms, "                  \
    "m.finished_ms, m.model_hash, m.template, m.sampler, m.seed, m.kv_policy, m.kv_budget, "       \
    "EXISTS (SELECT 1 FROM snapshots WHERE message_id = m.id)"

/* Walk from message ?1 up to its root: rows (id, parent, depth), depth 0 being ?1 itself. */
#define STORE_PATH_CTE                                                                             \
    "WITH RECURSIVE path(id, parent, depth) AS ("                                                  \
    " SELECT id, parent_id, 0 FROM messages WHERE id = ?1"                                         \
    " UNION ALL"                                                                                   \
    " SELECT m.id, m.parent_id, p.depth + 1 FROM messages m JOIN path p ON m.id = p.parent) "

/* Record "PATH: <fmt>" as the handle's error and return status.  Every error origin of the
 * store goes through here (one breakpoint catches them all). */
int store_fail(struct store *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Record a failed SQLite call (result code rc) while doing what ("save the message") and
 * return the status it maps to: locked -> STATUS_DB, full/I/O/read-only -> STATUS_IO,
 * corrupt -> STATUS_FORMAT, constraint -> STATUS_INVALID, nomem -> STATUS_NOMEM. */
int store_fail_db(struct store *s, int rc, const char *what);
/* STATUS_OK, or STATUS_IO with "cannot <what>: the database is read-only". */
int store_check_writable(struct store *s, const char *what);

/* The cached statement id, prepared from sql on first use (sql must be the same each time);
 * NULL after recording the error (what = the action, for the message). */
sqlite3_stmt *store_stmt(struct store *s, enum store_stmt id, const char *sql, const char *what);
/* Reset a statement after use and drop its bindings (large blobs, too). */
void store_stmt_done(sqlite3_stmt *st);

/* BEGIN IMMEDIATE: take the write lock now, waiting up to the busy timeout, so that a
 * transaction never fails half-way for lack of it. */
int store_begin(struct store *s, const char *what);
int store_commit(struct store *s, const char *what);
void store_rollback(struct store *s);

/* Milliseconds since the epoch. */
int64_t store_now_ms(void);
/* Column col of the current row as a malloc'd string (NULL for SQL NULL); *oom set on
 * allocation failure. */
char *store_col_strdup(sqlite3_stmt *st, int col, int *oom);
/* Bind a string or, for NULL, SQL NULL. */
int store_bind_text(sqlite3_stmt *st, int idx, const char *v);
/* Step st to the end (and reset it), converting each row with from_row into a malloc'd array
 * of rows of size bytes: *out (NULL when none) and *n.  On failure (from_row's STATUS_NOMEM or
 * a database error, set on s with what) the rows made so far are cleared and freed. */
int store_rows_collect(struct store *s, sqlite3_stmt *st, const char *what, size_t size,
                       int (*from_row)(sqlite3_stmt *st, void *row), void (*clear)(void *row),
                       void **out, size_t *n);
/* Fill *m from the current row of a statement selecting STORE_MSG_COLUMNS; STATUS_NOMEM. */
int store_msg_from_row(sqlite3_stmt *st, struct store_msg *m);
/* The session of message id into *sid; STATUS_NOT_FOUND (with a message) if none. */
int store_msg_session_of(struct store *s, int64_t id, int64_t *sid, const char *what);
/* INSERT one message row as given (times 0 = now), without a transaction or checks. */
int store_msg_insert_row(struct store *s, const struct store_msg *m, int64_t *id);
/* Step st to the end, collecting rows of STORE_MSG_COLUMNS into a malloc'd array. */
int store_msg_collect(struct store *s, sqlite3_stmt *st, const char *what, struct store_msg **out,
                      size_t *n);

#endif
