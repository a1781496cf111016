/*
 * store.c — opening kfchat's SQLite database, and the machinery the other store files share.
 *
 * Opening is careful not to write before it knows the file is ours: it first only reads the
 * header fields (application_id, user_version) and the schema count, so that a corrupt file,
 * another program's database or a newer kfchat's database is refused untouched.  Only then
 * does it switch to WAL and create or migrate the schema, inside one IMMEDIATE transaction
 * that re-reads the version (two kfchats opening one new file must not both create it).
 *
 * Schema history.  data/schema.sql is the latest schema, embedded as store_schema_sql; a new
 * file runs it.  migration_steps[k] takes a file from version k to k+1; step 0 is the first
 * schema as it shipped.  Steps are frozen once released: a change is a new step plus an edit
 * of schema.sql, and the tests check that every road leads to the same schema.
 *
 * Also here: the error reporting every function uses (store_fail*), the statement cache and
 * transactions (store_impl.h).
 */
#include "config.h"
#include "store_impl.h"
#include "store_schema.h"
#include "status.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_APPLICATION_ID 0x6B666368 /* 'kfch'; schema.sql sets the same number */

// ---- schema history -------------------------------------------------------------------------

/* clang-format off: the statements read as in schema.sql */
/* Version 1: sessions, the message tree and snapshots (frozen; see the file comment). */
static const char migrate_to_v1[] =
    "PRAGMA application_id = 1801872232;\n"
    "CREATE TABLE sessions (\n"
    "    id          INTEGER PRIMARY KEY,\n"
    "    name        TEXT UNIQUE CHECK (name IS NULL OR length(name) > 0),\n"
    "    model_path  TEXT NOT NULL DEFAULT '',\n"
    "    model_hash  TEXT NOT NULL DEFAULT '',\n"
    "    settings    TEXT NOT NULL DEFAULT '{}',\n"
    "    forked_from INTEGER REFERENCES messages(id) ON DELETE SET NULL,\n"
    "    created_ms  INTEGER NOT NULL,\n"
    "    updated_ms  INTEGER NOT NULL\n"
    ");\n"
    "CREATE INDEX sessions_updated ON sessions(updated_ms);\n"
    "CREATE INDEX sessions_forked_from ON sessions(forked_from);\n"
    "CREATE TABLE messages (\n"
    "    id          INTEGER PRIMARY KEY,\n"
    "    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,\n"
    "    parent_id   INTEGER,\n"
    "    role        TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),\n"
    "    text        TEXT NOT NULL,\n"
    "    n_tokens    INTEGER NOT NULL DEFAULT 0,\n"
    "    created_ms  INTEGER NOT NULL,\n"
    "    finished_ms INTEGER NOT NULL,\n"
    "    model_hash  TEXT,\n"
    "    template    TEXT,\n"
    "    sampler     TEXT,\n"
    "    seed        INTEGER NOT NULL DEFAULT 0,\n"
    "    kv_policy   TEXT,\n"
    "    kv_budget   INTEGER NOT NULL DEFAULT 0,\n"
    "    UNIQUE (session_id, id),\n"
    "    FOREIGN KEY (session_id, parent_id) REFERENCES messages(session_id, id) ON DELETE "
    "CASCADE\n"
    ");\n"
    "CREATE INDEX messages_parent ON messages(session_id, parent_id);\n"
    "CREATE TABLE snapshots (\n"
    "    message_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,\n"
    "    format      TEXT NOT NULL,\n"
    "    model_hash  TEXT NOT NULL,\n"
    "    codec       INTEGER NOT NULL CHECK (codec IN (0, 1)),\n"
    "    raw_size    INTEGER NOT NULL,\n"
    "    crc32       INTEGER NOT NULL,\n"
    "    created_ms  INTEGER NOT NULL,\n"
    "    data        BLOB NOT NULL\n"
    ");\n";

/* Version 2: full-text search.  The index is rebuilt from the existing messages. */
static const char migrate_to_v2[] =
    "CREATE VIRTUAL TABLE messages_fts USING fts5(\n"
    "    text, content = 'messages', content_rowid = 'id',\n"
    "    tokenize = 'unicode61 remove_diacritics 2'\n"
    ");\n"
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN\n"
    "    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);\n"
    "END;\n"
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN\n"
    "    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);\n"
    "END;\n"
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN\n"
    "    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);\n"
    "    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);\n"
    "END;\n"
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');\n";
/* clang-format on */

static const char *const migration_steps[] = {migrate_to_v1, migrate_to_v2};
_Static_assert(sizeof(migration_steps) / sizeof(migration_steps[0]) == STORE_SCHEMA_VERSION,
               "one migration step per schema version");

// ---- errors -------------------------------------------------------------------------------

int store_fail(struct store *s, int status, const char *fmt, ...)
{
    size_t k = (size_t)snprintf(s->err, sizeof(s->err), "%s: ", s->path ? s->path : "?");
    if (k >= sizeof(s->err))
        k = sizeof(s->err) - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err + k, sizeof(s->err) - k, fmt, ap);
    va_end(ap);
    s->status = status;
    /* One line, always: SQLite messages and file names could carry newlines. */
    for (char *p = s->err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return status;
}

int store_fail_db(struct store *s, int rc, const char *what)
{
    int err = s->db ? sqlite3_system_errno(s->db) : 0;
    const char *detail = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return store_fail(s, STATUS_DB,
                          "cannot %s: the database is locked by another process "
                          "(gave up after %d ms)",
                          what, s->busy_ms);
    case SQLITE_FULL:
        return store_fail(s, STATUS_IO, "cannot %s: disk full (nothing was saved)", what);
    case SQLITE_IOERR:
        return store_fail(s, STATUS_IO, "cannot %s: I/O error (%s; nothing was saved)", what,
                          err ? strerror(err) : detail);
    case SQLITE_READONLY:
        return store_fail(s, STATUS_IO, "cannot %s: the database is read-only", what);
    case SQLITE_CANTOPEN:
        return store_fail(s, STATUS_IO, "cannot %s: %s", what, err ? strerror(err) : detail);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return store_fail(s, STATUS_FORMAT, "cannot %s: the database file is corrupt (%s)", what,
                          detail);
    case SQLITE_NOMEM: return store_fail(s, STATUS_NOMEM, "cannot %s: out of memory", what);
    case SQLITE_TOOBIG:
        return store_fail(s, STATUS_INVALID, "cannot %s: too big for the database", what);
    case SQLITE_CONSTRAINT: return store_fail(s, STATUS_INVALID, "cannot %s: %s", what, detail);
    default: return store_fail(s, STATUS_DB, "cannot %s: %s", what, detail);
    }
}

int store_check_writable(struct store *s, const char *what)
{
    if (s->readonly)
        return store_fail(s, STATUS_IO, "cannot %s: the database is read-only", what);
    return STATUS_OK;
}

const char *store_errmsg(const struct store *s)
{
    return s ? s->err : "no store";
}

// ---- statements and transactions ----------------------------------------------------------

sqlite3_stmt *store_stmt(struct store *s, enum store_stmt id, const char *sql, const char *what)
{
    sqlite3_stmt **slot = &s->stmt[id];
    if (*slot) {
        /* Two call sites sharing a slot with different SQL would be a silent bug. */
        assert(strcmp(sqlite3_sql(*slot), sql) == 0);
        return *slot;
    }
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
    if (rc != SQLITE_OK) {
        store_fail_db(s, rc, what);
        *slot = NULL;
    }
    return *slot;
}

void store_stmt_done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* Step a statement that returns no rows, then reset it. */
static int stmt_run(struct store *s, enum store_stmt id, const char *sql, const char *what)
{
    sqlite3_stmt *st = store_stmt(s, id, sql, what);
    if (!st)
        return s->status;
    int rc = sqlite3_step(st);
    store_stmt_done(st);
    return rc == SQLITE_DONE ? STATUS_OK : store_fail_db(s, rc, what);
}

int store_begin(struct store *s, const char *what)
{
    return stmt_run(s, ST_BEGIN, "BEGIN IMMEDIATE", what);
}

int store_commit(struct store *s, const char *what)
{
    int rc = stmt_run(s, ST_COMMIT, "COMMIT", what);
    if (rc != STATUS_OK)
        store_rollback(s);
    return rc;
}

void store_rollback(struct store *s)
{
    /* After SQLITE_FULL or an I/O error SQLite may already have rolled back. */
    if (!sqlite3_get_autocommit(s->db)) {
        char keep[sizeof(s->err)];
        int status = s->status;
        memcpy(keep, s->err, sizeof(keep)); /* the first error is the one to report */
        stmt_run(s, ST_ROLLBACK, "ROLLBACK", "roll back");
        memcpy(s->err, keep, sizeof(keep));
        s->status = status;
    }
}

// ---- small helpers ------------------------------------------------------------------------

int64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *store_col_strdup(sqlite3_stmt *st, int col, int *oom)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    if (!v)
        return NULL;
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *p = malloc(n + 1);
    if (!p) {
        *oom = 1;
        return NULL;
    }
    memcpy(p, v, n);
    p[n] = 0;
    return p;
}

int store_bind_text(sqlite3_stmt *st, int idx, const char *v)
{
    return v ? sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
}

int store_rows_collect(struct store *s, sqlite3_stmt *st, const char *what, size_t size,
                       int (*from_row)(sqlite3_stmt *st, void *row), void (*clear)(void *row),
                       void **out, size_t *n)
{
    char *v = NULL;
    size_t len = 0, cap = 0;
    int rc, status = STATUS_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char *nv = realloc(v, ncap * size);
            if (!nv) {
                status = STATUS_NOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if (from_row(st, v + len * size) != STATUS_OK) {
            status = STATUS_NOMEM;
            break;
        }
        len++;
    }
    if (status == STATUS_OK && rc != SQLITE_DONE)
        status = store_fail_db(s, rc, what);
    else if (status == STATUS_NOMEM)
        store_fail(s, status, "cannot %s: out of memory", what);
    store_stmt_done(st);
    if (status != STATUS_OK) {
        for (size_t i = 0; i < len; i++)
            clear(v + i * size);
        free(v);
        return status;
    }
    *out = v;
    *n = len;
    return STATUS_OK;
}

/* The single integer a query returns (for PRAGMAs); an SQLite result code. */
static int query_int(sqlite3 *db, const char *sql, int64_t *v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *v = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

// ---- creating the file --------------------------------------------------------------------

/* mkdir -p of path's parent directory, new components 0700 (the history is private). */
static int make_parent_dirs(struct store *s, const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return store_fail(s, STATUS_NOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    int rc = STATUS_OK;
    if (slash && slash != dir) {
        *slash = 0;
        for (char *p = dir + 1; rc == STATUS_OK; p++) {
            if (*p != '/' && *p != 0)
                continue;
            char c = *p;
            *p = 0;
            struct stat st;
            if (mkdir(dir, 0700) != 0 && errno != EEXIST)
                rc = store_fail(s, STATUS_IO, "cannot create directory %s: %s", dir,
                                strerror(errno));
            else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
                rc = store_fail(s, STATUS_IO, "%s is not a directory", dir);
            *p = c;
            if (c == 0)
                break;
        }
    }
    free(dir);
    return rc;
}

/* Create path as an empty file with mode 0600 unless it exists.  SQLite gives its -wal and
 * -shm files the database file's mode, so they are private too. */
static int create_file(struct store *s, const char *path)
{
    int rc = make_parent_dirs(s, path);
    if (rc != STATUS_OK)
        return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        return close(fd) == 0 ? STATUS_OK : store_fail(s, STATUS_IO, "%s", strerror(errno));
    if (errno == EEXIST)
        return STATUS_OK;
    return store_fail(s, STATUS_IO, "cannot create the database: %s", strerror(errno));
}

// ---- schema version -----------------------------------------------------------------------

/* What the header and schema say about the file, read without writing anything. */
struct probe {
    int64_t app_id, version, n_objects;
};

static int probe_file(struct store *s, struct probe *p)
{
    /* The first read validates the header: NOTADB/CORRUPT here means it is not a database. */
    int rc = query_int(s->db, "SELECT count(*) FROM sqlite_master", &p->n_objects);
    if (rc == SQLITE_OK)
        rc = query_int(s->db, "PRAGMA application_id", &p->app_id);
    if (rc == SQLITE_OK)
        rc = query_int(s->db, "PRAGMA user_version", &p->version);
    if (rc == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
        return store_fail(s, STATUS_FORMAT,
                          "not a kfchat database (file is corrupt or not SQLite)");
    /* A WAL database needs its -shm file even for reading; SQLite cannot make one when
     * neither the file nor its directory is writable. */
    if (s->readonly && ((rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN))
        return store_fail(s, STATUS_IO,
                          "cannot read the database: the file and its directory "
                          "are read-only (SQLite must create its -shm file there)");
    if (rc != SQLITE_OK)
        return store_fail_db(s, rc, "read the database");
    if (p->app_id == 0 && p->version == 0 && p->n_objects == 0)
        return STATUS_OK; /* empty: ours to create */
    if (p->app_id != STORE_APPLICATION_ID)
        return store_fail(s, STATUS_FORMAT,
                          "not a kfchat database (it belongs to another program)");
    if (p->version < 1)
        return store_fail(s, STATUS_FORMAT,
                          "not a kfchat database (file is corrupt or not SQLite)");
    if (p->version > STORE_SCHEMA_VERSION)
        return store_fail(s, STATUS_UNSUPPORTED,
                          "database schema version %lld is newer than this kfchat understands "
                          "(%d); upgrade kfchat",
                          (long long)p->version, STORE_SCHEMA_VERSION);
    return STATUS_OK;
}

/* Run migration steps from version `from` to `to` (or schema.sql when from is 0 and latest is
 * set), set user_version, and check foreign keys.  Inside the caller's transaction. */
static int run_steps(struct store *s, int from, int to, int latest)
{
    int rc = SQLITE_OK;
    if (from == 0 && latest) {
        rc = sqlite3_exec(s->db, store_schema_sql, NULL, NULL, NULL); /* sets user_version */
    } else {
        for (int v = from; v < to && rc == SQLITE_OK; v++)
            rc = sqlite3_exec(s->db, migration_steps[v], NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            char sql[64];
            snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", to);
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        }
    }
    /* sqlite3_errmsg tells why, e.g. "no such module: fts5". */
    if (rc != SQLITE_OK)
        return store_fail_db(s, rc, from ? "upgrade the database schema" : "create the schema");
    int64_t version = 0, bad = 0;
    rc = query_int(s->db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK && version != to)
        return store_fail(s, STATUS_DB, "internal error: schema.sql is version %lld, expected %d",
                          (long long)version, to);
    /* A migration that left dangling references would fail later, far from the cause. */
    rc = query_int(s->db, "SELECT count(*) FROM pragma_foreign_key_check", &bad);
    if (rc != SQLITE_OK)
        return store_fail_db(s, rc, "check the upgraded database");
    if (bad)
        return store_fail(s, STATUS_FORMAT, "cannot upgrade: %lld dangling references",
                          (long long)bad);
    return STATUS_OK;
}

/* Bring the file to the latest schema in one IMMEDIATE transaction, re-reading the version
 * under the write lock: another process may have created or migrated it meanwhile. */
static int upgrade(struct store *s)
{
    int rc = store_begin(s, "create or upgrade the schema");
    if (rc != STATUS_OK)
        return rc;
    struct probe p;
    rc = probe_file(s, &p);
    if (rc == STATUS_OK && p.version < STORE_SCHEMA_VERSION)
        rc = run_steps(s, (int)p.version, STORE_SCHEMA_VERSION, 1);
    if (rc == STATUS_OK)
        rc = store_commit(s, "create or upgrade the schema");
    else
        store_rollback(s);
    return rc;
}

// ---- open and close -----------------------------------------------------------------------

/* Switch to WAL (readers never block the writer, commits need no fsync) and set the
 * connection's options.  Writes only to a file already known to be ours. */
static int configure(struct store *s)
{
    char *msg = NULL;
    int rc = SQLITE_OK;
    if (!s->readonly) {
        /* synchronous=NORMAL in WAL: a commit is in the OS once COMMIT returns, so it
         * survives kill -9; only power loss can drop the newest commits.
         * secure_delete=FAST: deleted text is zeroed, but dropping a large snapshot does
         * not rewrite its megabytes of overflow pages.  journal_size_limit: a large snapshot
         * grows the -wal file; after a checkpoint it is cut back to 32 MiB instead of
         * keeping its high-water size. */
        rc = sqlite3_exec(s->db,
                          "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                          "PRAGMA secure_delete = FAST; "
                          "PRAGMA journal_size_limit = 33554432;",
                          NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "PRAGMA foreign_keys = ON", NULL, NULL, &msg);
    sqlite3_free(msg);
    if (rc != SQLITE_OK)
        return store_fail_db(s, rc, "configure the database");
    int64_t fk = 0;
    if (query_int(s->db, "PRAGMA foreign_keys", &fk) != SQLITE_OK || fk != 1)
        return store_fail(s, STATUS_UNSUPPORTED, "this SQLite has no foreign key support");
    return STATUS_OK;
}

static int open_db(struct store *s, int flags)
{
    int is_mem = strcmp(s->path, ":memory:") == 0;
    int oflags = SQLITE_OPEN_NOMUTEX;
    if (is_mem) {
        oflags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    } else if (flags & STORE_READONLY) {
        struct stat st;
        if (stat(s->path, &st) != 0)
            return store_fail(s, errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO,
                              "cannot open the database: %s", strerror(errno));
        oflags |= SQLITE_OPEN_READONLY;
    } else {
        int rc = create_file(s, s->path);
        if (rc != STATUS_OK)
            return rc;
        oflags |= SQLITE_OPEN_READWRITE; /* no CREATE: create_file made it with mode 0600 */
    }
    int rc = sqlite3_open_v2(s->path, &s->db, oflags, NULL);
    if (rc != SQLITE_OK)
        return s->db ? store_fail_db(s, rc, "open the database")
                     : store_fail(s, STATUS_NOMEM, "out of memory");
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, s->busy_ms);
    /* Until the file is known to be ours, closing must not checkpoint a WAL left by someone
     * else into it: a refused file keeps every byte. */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    /* SQLite falls back to read-only when the file is not writable. */
    if (sqlite3_db_readonly(s->db, "main") == 1)
        s->readonly = 1;

    struct probe p;
    rc = probe_file(s, &p);
    if (rc == STATUS_OK)
        rc = configure(s);
    if (rc != STATUS_OK)
        return rc;
    s->version_at_open = (int)p.version;
    if (p.version != STORE_SCHEMA_VERSION) {
        if (s->readonly && p.version == 0)
            return store_fail(s, STATUS_IO, "cannot create the schema: the database is read-only");
        if (s->readonly)
            return store_fail(s, STATUS_IO,
                              "schema version %d needs an upgrade to %d, but the database is "
                              "read-only",
                              (int)p.version, STORE_SCHEMA_VERSION);
        rc = upgrade(s);
        if (rc != STATUS_OK)
            return rc;
    }
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, (int *)NULL);
    return STATUS_OK;
}

/* Finalize the cached statements and close; optimize (which may write statistics) only
 * on a healthy, writable database: a refused file must stay untouched. */
static void close_db(struct store *s, int optimize)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(s->stmt[i]);
        s->stmt[i] = NULL;
    }
    if (s->db && optimize && !s->readonly)
        sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
    sqlite3_close_v2(s->db);
    s->db = NULL;
}

int store_open(struct store **out, const char *path, int flags, char *err, size_t errlen)
{
    *out = NULL;
    struct store *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return status_set(err, errlen, STATUS_NOMEM, "%s: out of memory", path);
    }
    s->readonly = (flags & STORE_READONLY) != 0;
    s->busy_ms = STORE_BUSY_TIMEOUT_MS;
    s->snapshot_keep = STORE_SNAPSHOT_KEEP_DEFAULT;
    int rc = open_db(s, flags);
    if (rc != STATUS_OK) {
        status_set(err, errlen, rc, "%s", s->err);
        close_db(s, 0);
        free(s->path);
        free(s);
        return rc;
    }
    if (err && errlen)
        err[0] = 0;
    *out = s;
    return STATUS_OK;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    close_db(s, 1);
    free(s->path);
    free(s);
}

int store_is_readonly(const struct store *s)
{
    return s->readonly;
}

int store_version_at_open(const struct store *s)
{
    return s->version_at_open;
}

void store_set_busy_timeout(struct store *s, int ms)
{
    s->busy_ms = ms > 0 ? ms : 0;
    sqlite3_busy_timeout(s->db, s->busy_ms);
}

/* Rows of an integrity-checking statement: "ok" alone means healthy. */
static int check_rows(struct store *s, const char *sql, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    int status = STATUS_OK;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *row = (const char *)sqlite3_column_text(st, 0);
        if (status == STATUS_OK && (!row || strcmp(row, "ok") != 0))
            status = store_fail(s, STATUS_FORMAT, "%s: %s", what, row ? row : "dangling reference");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (status == STATUS_OK && rc != SQLITE_DONE)
        status = store_fail_db(s, rc, what);
    return status;
}

int store_check_integrity(struct store *s)
{
    s->err[0] = 0;
    int rc = check_rows(s, "PRAGMA integrity_check(1)", "integrity check failed");
    if (rc == STATUS_OK)
        rc = check_rows(s,
                        "SELECT 'table ' || \"table\" || ' row ' || rowid || "
                        "' points to a missing ' || parent FROM pragma_foreign_key_check",
                        "foreign key check failed");
    if (rc == STATUS_OK) {
        /* The FTS index must match the messages it indexes (an external-content index can
         * drift only through a bug, but then search would return wrong rows). */
        int r = sqlite3_exec(s->db,
                             "INSERT INTO messages_fts(messages_fts, rank) "
                             "VALUES ('integrity-check', 1)",
                             NULL, NULL, NULL);
        if (r != SQLITE_OK)
            rc = store_fail(s, STATUS_FORMAT, "full-text index check failed: %s",
                            sqlite3_errmsg(s->db));
    }
    return rc;
}

// ---- old versions, for tests ----------------------------------------------------------------

int store_create_at_version(const char *path, int version, char *err, size_t errlen)
{
    if (version < 1 || version > STORE_SCHEMA_VERSION)
        return status_set(err, errlen, STATUS_INVALID, "%s: no schema version %d", path, version);
    struct store tmp = {.path = (char *)path, .busy_ms = STORE_BUSY_TIMEOUT_MS};
    struct store *s = &tmp;
    int rc = create_file(s, path);
    if (rc == STATUS_OK) {
        int r = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE, NULL);
        rc = r == SQLITE_OK ? STATUS_OK : store_fail_db(s, r, "open the database");
    }
    struct probe p;
    if (rc == STATUS_OK)
        rc = probe_file(s, &p);
    if (rc == STATUS_OK && p.n_objects + p.version != 0)
        rc = store_fail(s, STATUS_INVALID, "not empty");
    if (rc == STATUS_OK)
        rc = configure(s);
    if (rc == STATUS_OK)
        rc = store_begin(s, "create the schema");
    if (rc == STATUS_OK) {
        rc = run_steps(s, 0, version, 0);
        if (rc == STATUS_OK)
            rc = store_commit(s, "create the schema");
        else
            store_rollback(s);
    }
    close_db(s, 0);
    if (rc != STATUS_OK)
        status_set(err, errlen, rc, "%s", s->err);
    else if (err && errlen)
        err[0] = 0;
    return rc;
}

// ---- roles --------------------------------------------------------------------------------

static const char *const role_names[] = {
    [STORE_ROLE_SYSTEM] = "system",
    [STORE_ROLE_USER] = "user",
    [STORE_ROLE_ASSISTANT] = "assistant",
};

const char *store_role_name(enum store_role role)
{
    if ((unsigned)role < sizeof(role_names) / sizeof(role_names[0]))
        return role_names[role];
    return "?";
}

int store_role_parse(const char *name, enum store_role *out)
{
    for (unsigned i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++) {
        if (name && strcmp(name, role_names[i]) == 0) {
            *out = (enum store_role)i;
            return STATUS_OK;
        }
    }
    return STATUS_INVALID;
}
