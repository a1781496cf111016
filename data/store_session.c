/*
 * store_session.c — sessions: create, look up, list, rename, delete, and fork.
 *
 * A session owns its messages (ON DELETE CASCADE down to snapshots and, through triggers,
 * the full-text index).  updated_ms is the time of the last activity, so that the session
 * list and `kfchat sessions` show the conversation one was just in first.
 */
#include "config.h"
#include "store_impl.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>

/* Columns read by session_from_row, in order (s is the sessions table). */
#define SESSION_COLUMNS                                                                            \
    "s.id, s.name, s.model_path, s.model_hash, s.settings, s.forked_from, s.created_ms, "          \
    "s.updated_ms, (SELECT count(*) FROM messages WHERE session_id = s.id), "                      \
    "(SELECT substr(text, 1, 80) FROM messages WHERE session_id = s.id AND role = 'user' "         \
    "ORDER BY id LIMIT 1)"

static int session_from_row(sqlite3_stmt *st, struct store_session *ss)
{
    int oom = 0;
    memset(ss, 0, sizeof(*ss));
    ss->id = sqlite3_column_int64(st, 0);
    ss->name = store_col_strdup(st, 1, &oom);
    ss->model_path = store_col_strdup(st, 2, &oom);
    ss->model_hash = store_col_strdup(st, 3, &oom);
    ss->settings = store_col_strdup(st, 4, &oom);
    ss->forked_from = sqlite3_column_int64(st, 5);
    ss->created_ms = sqlite3_column_int64(st, 6);
    ss->updated_ms = sqlite3_column_int64(st, 7);
    ss->n_messages = sqlite3_column_int64(st, 8);
    ss->preview = store_col_strdup(st, 9, &oom);
    if (oom) {
        store_session_clear(ss);
        return STATUS_NOMEM;
    }
    return STATUS_OK;
}

void store_session_clear(struct store_session *ss)
{
    if (!ss)
        return;
    /* The strings were malloc'd by the store; const only keeps callers from editing them. */
    free((char *)ss->name);
    free((char *)ss->model_path);
    free((char *)ss->model_hash);
    free((char *)ss->settings);
    free((char *)ss->preview);
    memset(ss, 0, sizeof(*ss));
}

static int session_row(sqlite3_stmt *st, void *row)
{
    return session_from_row(st, row);
}

static void session_clear(void *row)
{
    store_session_clear(row);
}

void store_session_array_free(struct store_session *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        store_session_clear(&v[i]);
    free(v);
}

/* Map a failed write on sessions: a UNIQUE violation means the name is taken. */
static int session_write_fail(struct store *s, int rc, const char *name, const char *what)
{
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return store_fail(s, STATUS_INVALID, "cannot %s: a session named \"%s\" already exists",
                          what, name ? name : "");
    return store_fail_db(s, rc, what);
}

static int check_name(struct store *s, const char *name, const char *what)
{
    if (name && !*name)
        return store_fail(s, STATUS_INVALID, "cannot %s: empty session name", what);
    return STATUS_OK;
}

/* INSERT one session row (no transaction of its own). */
static int session_insert_row(struct store *s, const char *name, const char *model_path,
                              const char *model_hash, const char *settings, int64_t forked_from,
                              int64_t *id, const char *what)
{
    sqlite3_stmt *st = store_stmt(s, ST_SESSION_INSERT,
                                  "INSERT INTO sessions (name, model_path, model_hash, settings, "
                                  "forked_from, created_ms, updated_ms) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                                  what);
    if (!st)
        return s->status;
    int64_t now = store_now_ms();
    store_bind_text(st, 1, name);
    store_bind_text(st, 2, model_path ? model_path : "");
    store_bind_text(st, 3, model_hash ? model_hash : "");
    store_bind_text(st, 4, settings ? settings : "{}");
    if (forked_from)
        sqlite3_bind_int64(st, 5, forked_from);
    sqlite3_bind_int64(st, 6, now);
    int rc = sqlite3_step(st);
    store_stmt_done(st);
    if (rc != SQLITE_DONE)
        return session_write_fail(s, rc, name, what);
    *id = sqlite3_last_insert_rowid(s->db);
    return STATUS_OK;
}

int store_session_create(struct store *s, const char *name, const char *model_path,
                         const char *model_hash, const char *settings, int64_t *id)
{
    const char *what = "create the session";
    int rc = store_check_writable(s, what);
    if (rc == STATUS_OK)
        rc = check_name(s, name, what);
    if (rc == STATUS_OK)
        rc = session_insert_row(s, name, model_path, model_hash, settings, 0, id, what);
    return rc;
}

/* Step a statement expected to return one session row. */
static int session_fetch(struct store *s, sqlite3_stmt *st, struct store_session *out,
                         const char *what)
{
    int rc = sqlite3_step(st);
    int status;
    if (rc == SQLITE_ROW)
        status = session_from_row(st, out) == STATUS_OK
                     ? STATUS_OK
                     : store_fail(s, STATUS_NOMEM, "cannot %s: out of memory", what);
    else if (rc == SQLITE_DONE)
        status = STATUS_NOT_FOUND;
    else
        status = store_fail_db(s, rc, what);
    store_stmt_done(st);
    return status;
}

int store_session_get(struct store *s, int64_t id, struct store_session *out)
{
    memset(out, 0, sizeof(*out));
    const char *what = "read the session";
    sqlite3_stmt *st = store_stmt(
        s, ST_SESSION_GET, "SELECT " SESSION_COLUMNS " FROM sessions s WHERE s.id = ?1", what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, id);
    int rc = session_fetch(s, st, out, what);
    if (rc == STATUS_NOT_FOUND)
        store_fail(s, rc, "no session %lld", (long long)id);
    return rc;
}

int store_session_find(struct store *s, const char *name, struct store_session *out)
{
    memset(out, 0, sizeof(*out));
    const char *what = "read the session";
    sqlite3_stmt *st = store_stmt(
        s, ST_SESSION_FIND, "SELECT " SESSION_COLUMNS " FROM sessions s WHERE s.name = ?1", what);
    if (!st)
        return s->status;
    store_bind_text(st, 1, name ? name : "");
    int rc = session_fetch(s, st, out, what);
    if (rc == STATUS_NOT_FOUND)
        store_fail(s, rc, "no session named \"%s\"", name ? name : "");
    return rc;
}

int store_session_list(struct store *s, size_t limit, struct store_session **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *what = "list the sessions";
    sqlite3_stmt *st = store_stmt(s, ST_SESSION_LIST,
                                  "SELECT " SESSION_COLUMNS " FROM sessions s "
                                  "ORDER BY s.updated_ms DESC, s.id DESC LIMIT ?1",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, limit ? (int64_t)limit : -1);
    void *v = NULL;
    int rc = store_rows_collect(s, st, what, sizeof(**out), session_row, session_clear, &v, n);
    *out = v;
    return rc;
}

/* Step a one-row UPDATE/DELETE of session id; STATUS_NOT_FOUND when it matched nothing. */
static int session_change(struct store *s, sqlite3_stmt *st, int64_t id, const char *name,
                          const char *what)
{
    int rc = sqlite3_step(st);
    store_stmt_done(st);
    if (rc != SQLITE_DONE)
        return session_write_fail(s, rc, name, what);
    if (sqlite3_changes(s->db) == 0)
        return store_fail(s, STATUS_NOT_FOUND, "cannot %s: no session %lld", what, (long long)id);
    return STATUS_OK;
}

int store_session_rename(struct store *s, int64_t id, const char *name)
{
    const char *what = "rename the session";
    int rc = store_check_writable(s, what);
    if (rc == STATUS_OK)
        rc = check_name(s, name, what);
    if (rc != STATUS_OK)
        return rc;
    sqlite3_stmt *st =
        store_stmt(s, ST_SESSION_RENAME, "UPDATE sessions SET name = ?2 WHERE id = ?1", what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, id);
    store_bind_text(st, 2, name);
    return session_change(s, st, id, name, what);
}

int store_session_set_model(struct store *s, int64_t id, const char *model_path,
                            const char *model_hash, const char *settings)
{
    const char *what = "update the session";
    int rc = store_check_writable(s, what);
    if (rc != STATUS_OK)
        return rc;
    sqlite3_stmt *st = store_stmt(s, ST_SESSION_SET_MODEL,
                                  "UPDATE sessions SET model_path = ?2, model_hash = ?3, "
                                  "settings = coalesce(?4, settings) WHERE id = ?1",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, id);
    store_bind_text(st, 2, model_path ? model_path : "");
    store_bind_text(st, 3, model_hash ? model_hash : "");
    store_bind_text(st, 4, settings);
    return session_change(s, st, id, NULL, what);
}

int store_session_touch(struct store *s, int64_t id)
{
    const char *what = "update the session";
    int rc = store_check_writable(s, what);
    if (rc != STATUS_OK)
        return rc;
    sqlite3_stmt *st = store_stmt(s, ST_SESSION_TOUCH,
                                  "UPDATE sessions SET updated_ms = max(updated_ms, ?2) "
                                  "WHERE id = ?1",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, store_now_ms());
    return session_change(s, st, id, NULL, what);
}

int store_session_delete(struct store *s, int64_t id)
{
    const char *what = "delete the session";
    int rc = store_check_writable(s, what);
    if (rc != STATUS_OK)
        return rc;
    /* One statement, hence one transaction, also for the cascaded messages and snapshots. */
    sqlite3_stmt *st = store_stmt(s, ST_SESSION_DELETE, "DELETE FROM sessions WHERE id = ?1", what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, id);
    return session_change(s, st, id, NULL, what);
}

/* Copy the branch v[0..n) (root first) into session sid; the new leaf's id to *leaf. */
static int copy_branch(struct store *s, int64_t sid, const struct store_msg *v, size_t n,
                       int64_t *leaf)
{
    int64_t parent = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_msg m = v[i];
        m.session_id = sid;
        m.parent_id = parent;
        int rc = store_msg_insert_row(s, &m, &parent);
        if (rc != STATUS_OK)
            return rc;
    }
    *leaf = parent;
    return STATUS_OK;
}

int store_session_fork(struct store *s, int64_t msg_id, const char *name, int64_t *id)
{
    const char *what = "fork the session";
    int rc = store_check_writable(s, what);
    if (rc == STATUS_OK)
        rc = check_name(s, name, what);
    if (rc == STATUS_OK)
        rc = store_begin(s, what);
    if (rc != STATUS_OK)
        return rc;
    struct store_msg *v = NULL;
    size_t n = 0;
    struct store_session src;
    int64_t sid = 0, leaf = 0;
    memset(&src, 0, sizeof(src));
    rc = store_msg_path(s, msg_id, &v, &n);
    if (rc == STATUS_OK)
        rc = store_session_get(s, v[n - 1].session_id, &src);
    if (rc == STATUS_OK)
        rc = session_insert_row(s, name, src.model_path, src.model_hash, src.settings, msg_id, &sid,
                                what);
    if (rc == STATUS_OK)
        rc = copy_branch(s, sid, v, n, &leaf);
    if (rc == STATUS_OK) {
        /* The fork point's engine state is exactly the copy's, so it resumes without
         * re-processing; older snapshots on the branch are not worth their megabytes. */
        sqlite3_stmt *st = store_stmt(s, ST_SNAP_COPY,
                                      "INSERT INTO snapshots (message_id, format, model_hash, "
                                      "codec, raw_size, crc32, created_ms, data) "
                                      "SELECT ?1, format, model_hash, codec, raw_size, crc32, "
                                      "created_ms, data FROM snapshots WHERE message_id = ?2",
                                      what);
        if (!st) {
            rc = s->status;
        } else {
            sqlite3_bind_int64(st, 1, leaf);
            sqlite3_bind_int64(st, 2, msg_id);
            int r = sqlite3_step(st);
            store_stmt_done(st);
            if (r != SQLITE_DONE)
                rc = store_fail_db(s, r, what);
        }
    }
    if (rc == STATUS_OK)
        rc = store_commit(s, what);
    else
        store_rollback(s);
    store_msg_array_free(v, n);
    store_session_clear(&src);
    if (rc == STATUS_OK)
        *id = sid;
    return rc;
}
