/*
 * store_msg.c — messages (the turns of a session, as a tree) and full-text search over them.
 *
 * Invariants the queries rely on: a message's parent is in the same session (composite
 * foreign key) and was inserted before it, so ids grow from the root down every branch, the
 * newest message of a session is a leaf, and walking parent_id always ends at a root.
 * Messages are never edited: a changed turn is a new sibling, so a saved branch is exactly
 * what the model saw.
 */
#include "config.h"
#include "store_impl.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>

int store_msg_from_row(sqlite3_stmt *st, struct store_msg *m)
{
    int oom = 0;
    memset(m, 0, sizeof(*m));
    m->id = sqlite3_column_int64(st, 0);
    m->session_id = sqlite3_column_int64(st, 1);
    m->parent_id = sqlite3_column_int64(st, 2); /* NULL reads as 0 */
    const char *role = (const char *)sqlite3_column_text(st, 3);
    if (store_role_parse(role, &m->role) != STATUS_OK)
        m->role = STORE_ROLE_USER; /* unreachable: the CHECK constraint allows only the three */
    m->text = store_col_strdup(st, 4, &oom);
    m->n_tokens = sqlite3_column_int64(st, 5);
    m->created_ms = sqlite3_column_int64(st, 6);
    m->finished_ms = sqlite3_column_int64(st, 7);
    m->gen.model_hash = store_col_strdup(st, 8, &oom);
    m->gen.template_name = store_col_strdup(st, 9, &oom);
    m->gen.sampler = store_col_strdup(st, 10, &oom);
    m->gen.seed = (uint64_t)sqlite3_column_int64(st, 11);
    m->gen.kv_policy = store_col_strdup(st, 12, &oom);
    m->gen.kv_budget = sqlite3_column_int64(st, 13);
    m->has_snapshot = sqlite3_column_int(st, 14);
    if (oom || !m->text) {
        store_msg_clear(m);
        return STATUS_NOMEM;
    }
    return STATUS_OK;
}

void store_msg_clear(struct store_msg *m)
{
    if (!m)
        return;
    free((char *)m->text);
    free((char *)m->gen.model_hash);
    free((char *)m->gen.template_name);
    free((char *)m->gen.sampler);
    free((char *)m->gen.kv_policy);
    memset(m, 0, sizeof(*m));
}

void store_msg_array_free(struct store_msg *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        store_msg_clear(&v[i]);
    free(v);
}

static int msg_row(sqlite3_stmt *st, void *row)
{
    return store_msg_from_row(st, row);
}

static void msg_clear(void *row)
{
    store_msg_clear(row);
}

int store_msg_collect(struct store *s, sqlite3_stmt *st, const char *what, struct store_msg **out,
                      size_t *n)
{
    void *v = NULL;
    int rc = store_rows_collect(s, st, what, sizeof(**out), msg_row, msg_clear, &v, n);
    *out = v;
    return rc;
}

// ---- insert -------------------------------------------------------------------------------

int store_msg_insert_row(struct store *s, const struct store_msg *m, int64_t *id)
{
    const char *what = "save the message";
    sqlite3_stmt *st = store_stmt(s, ST_MSG_INSERT,
                                  "INSERT INTO messages (session_id, parent_id, role, text, "
                                  "n_tokens, created_ms, finished_ms, model_hash, template, "
                                  "sampler, seed, kv_policy, kv_budget) VALUES "
                                  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                                  what);
    if (!st)
        return s->status;
    int64_t now = store_now_ms();
    int64_t created = m->created_ms ? m->created_ms : now;
    sqlite3_bind_int64(st, 1, m->session_id);
    if (m->parent_id)
        sqlite3_bind_int64(st, 2, m->parent_id);
    store_bind_text(st, 3, store_role_name(m->role));
    store_bind_text(st, 4, m->text);
    sqlite3_bind_int64(st, 5, m->n_tokens);
    sqlite3_bind_int64(st, 6, created);
    sqlite3_bind_int64(st, 7, m->finished_ms ? m->finished_ms : (now > created ? now : created));
    store_bind_text(st, 8, m->gen.model_hash);
    store_bind_text(st, 9, m->gen.template_name);
    store_bind_text(st, 10, m->gen.sampler);
    sqlite3_bind_int64(st, 11, (int64_t)m->gen.seed); /* bit for bit; read back as uint64 */
    store_bind_text(st, 12, m->gen.kv_policy);
    sqlite3_bind_int64(st, 13, m->gen.kv_budget);
    int rc = sqlite3_step(st);
    store_stmt_done(st);
    if (rc != SQLITE_DONE)
        return store_fail_db(s, rc, what);
    *id = sqlite3_last_insert_rowid(s->db);
    return STATUS_OK;
}

int store_msg_session_of(struct store *s, int64_t id, int64_t *sid, const char *what)
{
    sqlite3_stmt *st =
        store_stmt(s, ST_MSG_SESSION_OF, "SELECT session_id FROM messages WHERE id = ?1", what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), status = STATUS_OK;
    if (rc == SQLITE_ROW)
        *sid = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        status = store_fail(s, STATUS_NOT_FOUND, "cannot %s: no message %lld", what, (long long)id);
    else
        status = store_fail_db(s, rc, what);
    store_stmt_done(st);
    return status;
}

/* Raise the session's activity time to t; STATUS_NOT_FOUND if there is no such session. */
static int session_bump(struct store *s, int64_t sid, int64_t t, const char *what)
{
    sqlite3_stmt *st = store_stmt(s, ST_SESSION_BUMP,
                                  "UPDATE sessions SET updated_ms = max(updated_ms, ?2) "
                                  "WHERE id = ?1",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, t);
    int rc = sqlite3_step(st);
    store_stmt_done(st);
    if (rc != SQLITE_DONE)
        return store_fail_db(s, rc, what);
    if (sqlite3_changes(s->db) == 0)
        return store_fail(s, STATUS_NOT_FOUND, "cannot %s: no session %lld", what, (long long)sid);
    return STATUS_OK;
}

int store_msg_insert(struct store *s, const struct store_msg *m, int64_t *id)
{
    const char *what = "save the message";
    int rc = store_check_writable(s, what);
    if (rc != STATUS_OK)
        return rc;
    if (!m->text || (unsigned)m->role > STORE_ROLE_ASSISTANT)
        return store_fail(s, STATUS_INVALID, "cannot %s: no text or bad role", what);
    rc = store_begin(s, what);
    if (rc != STATUS_OK)
        return rc;
    int64_t t = m->finished_ms ? m->finished_ms : store_now_ms(), psid = 0, new_id = 0;
    rc = session_bump(s, m->session_id, t, what);
    if (rc == STATUS_OK && m->parent_id) {
        rc = store_msg_session_of(s, m->parent_id, &psid, what);
        if (rc == STATUS_OK && psid != m->session_id)
            rc = store_fail(s, STATUS_INVALID,
                            "cannot %s: message %lld is in session %lld, "
                            "not %lld",
                            what, (long long)m->parent_id, (long long)psid,
                            (long long)m->session_id);
    }
    if (rc == STATUS_OK)
        rc = store_msg_insert_row(s, m, &new_id);
    if (rc == STATUS_OK)
        rc = store_commit(s, what);
    else
        store_rollback(s);
    if (rc == STATUS_OK) /* only a committed id: COMMIT itself can fail (disk full) */
        *id = new_id;
    return rc;
}

// ---- reading ------------------------------------------------------------------------------

int store_msg_get(struct store *s, int64_t id, struct store_msg *out)
{
    memset(out, 0, sizeof(*out));
    const char *what = "read the message";
    sqlite3_stmt *st = store_stmt(
        s, ST_MSG_GET, "SELECT " STORE_MSG_COLUMNS " FROM messages m WHERE m.id = ?1", what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), status;
    if (rc == SQLITE_ROW)
        status = store_msg_from_row(st, out) == STATUS_OK
                     ? STATUS_OK
                     : store_fail(s, STATUS_NOMEM, "cannot %s: out of memory", what);
    else if (rc == SQLITE_DONE)
        status = store_fail(s, STATUS_NOT_FOUND, "no message %lld", (long long)id);
    else
        status = store_fail_db(s, rc, what);
    store_stmt_done(st);
    return status;
}

int store_msg_path(struct store *s, int64_t leaf_id, struct store_msg **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *what = "read the conversation";
    sqlite3_stmt *st =
        store_stmt(s, ST_MSG_PATH,
                   STORE_PATH_CTE "SELECT " STORE_MSG_COLUMNS " FROM path "
                                  "JOIN messages m ON m.id = path.id ORDER BY path.depth DESC",
                   what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, leaf_id);
    int rc = store_msg_collect(s, st, what, out, n);
    if (rc == STATUS_OK && *n == 0)
        rc = store_fail(s, STATUS_NOT_FOUND, "no message %lld", (long long)leaf_id);
    return rc;
}

int store_msg_children(struct store *s, int64_t session_id, int64_t parent_id,
                       struct store_msg **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *what = "read the replies";
    sqlite3_stmt *st;
    if (parent_id) {
        st = store_stmt(s, ST_MSG_CHILDREN,
                        "SELECT " STORE_MSG_COLUMNS " FROM messages m "
                        "WHERE m.session_id = ?1 AND m.parent_id = ?2 ORDER BY m.id",
                        what);
    } else {
        st = store_stmt(s, ST_MSG_ROOTS,
                        "SELECT " STORE_MSG_COLUMNS " FROM messages m "
                        "WHERE m.session_id = ?1 AND m.parent_id IS NULL ORDER BY m.id",
                        what);
    }
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, session_id);
    if (parent_id)
        sqlite3_bind_int64(st, 2, parent_id);
    return store_msg_collect(s, st, what, out, n);
}

int store_msg_list_all(struct store *s, int64_t session_id, struct store_msg **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *what = "read the session";
    sqlite3_stmt *st = store_stmt(s, ST_MSG_ALL,
                                  "SELECT " STORE_MSG_COLUMNS " FROM messages m "
                                  "WHERE m.session_id = ?1 ORDER BY m.id",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, session_id);
    return store_msg_collect(s, st, what, out, n);
}

int store_msg_latest_leaf(struct store *s, int64_t session_id, int64_t *id)
{
    *id = 0;
    const char *what = "read the session";
    sqlite3_stmt *st = store_stmt(s, ST_MSG_LATEST,
                                  "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1), "
                                  "(SELECT max(id) FROM messages WHERE session_id = ?1)",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, session_id);
    int rc = sqlite3_step(st), status = STATUS_OK;
    if (rc != SQLITE_ROW)
        status = store_fail_db(s, rc, what);
    else if (!sqlite3_column_int(st, 0))
        status = store_fail(s, STATUS_NOT_FOUND, "no session %lld", (long long)session_id);
    else
        *id = sqlite3_column_int64(st, 1);
    store_stmt_done(st);
    return status;
}

int store_msg_delete(struct store *s, int64_t id)
{
    const char *what = "delete the message";
    int rc = store_check_writable(s, what);
    if (rc != STATUS_OK)
        return rc;
    /* The subtree goes by cascade within this one statement. */
    sqlite3_stmt *st = store_stmt(s, ST_MSG_DELETE, "DELETE FROM messages WHERE id = ?1", what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    store_stmt_done(st);
    if (rc != SQLITE_DONE)
        return store_fail_db(s, rc, what);
    if (sqlite3_changes(s->db) == 0)
        return store_fail(s, STATUS_NOT_FOUND, "cannot %s: no message %lld", what, (long long)id);
    return STATUS_OK;
}

// ---- search -------------------------------------------------------------------------------

/*
 * Plain words to an FTS5 query: each whitespace-separated word becomes a quoted string
 * ("" inside doubled), so that nothing the user types is syntax, and the implicit AND
 * between them requires every word.  Returns malloc'd text, NULL on OOM; *n_words counts.
 */
static char *plain_to_fts(const char *q, int *n_words)
{
    size_t len = strlen(q);
    char *out = malloc(3 * len + 3), *o = out; /* worst case: every char a quote */
    if (!out)
        return NULL;
    *n_words = 0;
    const char *p = q;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
            p++;
        if (!*p)
            break;
        if (*n_words)
            *o++ = ' ';
        *o++ = '"';
        while (*p &&
               !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')) {
            if (*p == '"')
                *o++ = '"';
            *o++ = *p++;
        }
        *o++ = '"';
        (*n_words)++;
    }
    *o = 0;
    return out;
}

void store_hit_array_free(struct store_hit *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free((char *)v[i].session_name);
        free((char *)v[i].snippet);
    }
    free(v);
}

static int hits_collect(struct store *s, sqlite3_stmt *st, struct store_hit **out, size_t *n)
{
    struct store_hit *v = NULL;
    size_t len = 0, cap = 0;
    int rc, oom = 0;
    while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct store_hit *nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                oom = 1;
                break;
            }
            v = nv;
            cap = ncap;
        }
        struct store_hit *h = &v[len++];
        memset(h, 0, sizeof(*h));
        h->session_id = sqlite3_column_int64(st, 0);
        h->message_id = sqlite3_column_int64(st, 1);
        store_role_parse((const char *)sqlite3_column_text(st, 2), &h->role);
        h->created_ms = sqlite3_column_int64(st, 3);
        h->session_name = store_col_strdup(st, 4, &oom);
        h->snippet = store_col_strdup(st, 5, &oom);
        if (!h->snippet)
            oom = 1;
    }
    int status = STATUS_OK;
    if (oom) {
        status = store_fail(s, STATUS_NOMEM, "cannot search: out of memory");
    } else if (rc != SQLITE_DONE) {
        /* FTS5 reports query syntax errors as plain SQLITE_ERROR. */
        if (rc == SQLITE_ERROR)
            status = store_fail(s, STATUS_INVALID, "bad search: %s", sqlite3_errmsg(s->db));
        else
            status = store_fail_db(s, rc, "search");
    }
    store_stmt_done(st);
    if (status != STATUS_OK) {
        store_hit_array_free(v, len);
        return status;
    }
    *out = v;
    *n = len;
    return STATUS_OK;
}

int store_search(struct store *s, const char *query, int flags, int64_t session_id,
                 const char *mark_open, const char *mark_close, size_t limit,
                 struct store_hit **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int n_words = 1;
    char *q = (flags & STORE_SEARCH_FTS) ? strdup(query) : plain_to_fts(query, &n_words);
    if (!q)
        return store_fail(s, STATUS_NOMEM, "cannot search: out of memory");
    if (n_words == 0 || !*q) {
        free(q);
        return store_fail(s, STATUS_INVALID, "nothing to search for");
    }
    sqlite3_stmt *st = store_stmt(s, ST_SEARCH,
                                  "SELECT m.session_id, m.id, m.role, m.created_ms, s.name, "
                                  "snippet(messages_fts, 0, ?2, ?3, '…', 16) "
                                  "FROM messages_fts "
                                  "JOIN messages m ON m.id = messages_fts.rowid "
                                  "JOIN sessions s ON s.id = m.session_id "
                                  "WHERE messages_fts MATCH ?1 AND (?4 = 0 OR m.session_id = ?4) "
                                  "ORDER BY rank, m.id DESC LIMIT ?5",
                                  "search");
    if (!st) {
        free(q);
        return s->status;
    }
    sqlite3_bind_text(st, 1, q, -1, free);
    store_bind_text(st, 2, mark_open ? mark_open : "[");
    store_bind_text(st, 3, mark_close ? mark_close : "]");
    sqlite3_bind_int64(st, 4, session_id);
    sqlite3_bind_int64(st, 5, limit ? (int64_t)limit : 50);
    return hits_collect(s, st, out, n);
}
