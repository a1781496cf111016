/*
 * test_store_files.c — the session store on real files: creation (modes, WAL, parents),
 * reopening, the embedded schema against data/schema.sql, migration from every earlier
 * schema version with data, refusal of newer, corrupt, truncated and foreign files (bytes
 * compared before and after), read-only files, a lock held by another connection, a full
 * disk (RLIMIT_FSIZE in a child) and kill -9 in the middle of writing.
 *
 * A second, raw SQLite connection plays the other process and inspects what the store wrote.
 */
#include "config.h"
#include "status.h"
#include "store.h"
#include "store_schema.h"
#include "tap.h"
#include "testutil.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

static char err[512];
static const char *tmp;

static const char *tpath(const char *name)
{
    static char bufs[8][4096];
    static int i;
    i = (i + 1) % 8;
    return testutil_path(bufs[i], sizeof(bufs[i]), tmp, name);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one_line(const char *msg)
{
    return msg && *msg && !strchr(msg, '\n');
}

// ---- raw access -----------------------------------------------------------------------------

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        printf("Bail out! raw open %s: %s\n", path, db ? sqlite3_errmsg(db) : "nomem");
        exit(1);
    }
    sqlite3_busy_timeout(db, 2000);
    return db;
}

static int raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        diag("raw exec failed: %s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    return rc;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *raw_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    char *v = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

static int raw_integrity_ok(const char *path)
{
    sqlite3 *db = raw_open(path);
    char *r = raw_text(db, "PRAGMA integrity_check");
    int good = r && strcmp(r, "ok") == 0;
    if (!good)
        diag("integrity_check: %s", r ? r : "(error)");
    free(r);
    sqlite3_close(db);
    return good;
}

static struct store *must_open(const char *path, int flags)
{
    struct store *s = NULL;
    if (store_open(&s, path, flags, err, sizeof(err)) != STATUS_OK) {
        printf("Bail out! store_open %s: %s\n", path, err);
        exit(1);
    }
    return s;
}

static int64_t add(struct store *s, int64_t sid, int64_t parent, enum store_role role,
                   const char *text)
{
    struct store_msg m = {.session_id = sid, .parent_id = parent, .role = role, .text = text};
    int64_t id = 0;
    if (store_msg_insert(s, &m, &id) != STATUS_OK)
        diag("insert: %s", store_errmsg(s));
    return id;
}

/* A database with one session of n messages of about len bytes each, closed again. */
static void make_db(const char *path, int n, size_t len)
{
    struct store *s = must_open(path, 0);
    int64_t sid = 0, parent = 0;
    store_session_create(s, "filled", "/m/x.gguf", "0123456789abcdef", NULL, &sid);
    char *text = malloc(len + 1);
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < len; j++)
            text[j] = (char)('a' + (i + j * 7) % 26);
        text[len] = 0;
        parent = add(s, sid, parent, i & 1 ? STORE_ROLE_ASSISTANT : STORE_ROLE_USER, text);
    }
    free(text);
    store_close(s);
}

/* Bytes of the file, to compare before and after something that must not write. */
static char *slurp(const char *path, size_t *len)
{
    char *p = testutil_read_file(path, len);
    if (!p)
        *len = (size_t)-1;
    return p;
}

static int same_bytes(const char *path, const char *before, size_t len_before)
{
    size_t len;
    char *now = slurp(path, &len);
    int same = now && before && len == len_before && memcmp(now, before, len) == 0;
    free(now);
    return same;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static const char *suffixed(const char *path, const char *suffix)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s%s", path, suffix);
    return buf;
}

/* Open must fail with status want, leave the file's bytes and side files as they were. */
static void expect_refused(const char *path, int flags, int want, const char *needle,
                           const char *what)
{
    size_t len;
    char *before = slurp(path, &len);
    int wal_before = exists(suffixed(path, "-wal"));
    struct store *s = (struct store *)1;
    err[0] = 0;
    int rc = store_open(&s, path, flags, err, sizeof(err));
    ok(rc == want && s == NULL && one_line(err) && strstr(err, needle) &&
           strncmp(err, path, strlen(path)) == 0,
       "%s: refused (%d) with one line: %s", what, rc, err);
    ok(same_bytes(path, before, len) && exists(suffixed(path, "-wal")) == wal_before &&
           !exists(suffixed(path, "-journal")),
       "%s: the file is untouched", what);
    free(before);
}

// ---- creation and reopening ----------------------------------------------------------------

static void test_create(void)
{
    const char *path = tpath("new/sub/kfchat.db");
    struct store *s = NULL;
    ok(store_open(&s, path, 0, err, sizeof(err)) == STATUS_OK,
       "open creates missing directories and the file");
    struct stat st;
    int rc = stat(path, &st);
    ok(rc == 0 && (st.st_mode & 0777) == 0600, "the database is mode 0600 (%o)",
       (unsigned)(st.st_mode & 0777));
    ok(stat(tpath("new/sub"), &st) == 0 && (st.st_mode & 0777) == 0700 &&
           stat(tpath("new"), &st) == 0 && (st.st_mode & 0777) == 0700,
       "new parent directories are mode 0700");
    ok(store_version_at_open(s) == 0 && !store_is_readonly(s), "a new file: version 0 at open");
    int64_t sid = 0;
    store_session_create(s, "keep", NULL, NULL, NULL, &sid);
    int64_t m1 = add(s, sid, 0, STORE_ROLE_USER, "persisted?");
    ok(stat(suffixed(path, "-wal"), &st) == 0 && (st.st_mode & 0777) == 0600,
       "the WAL file is private too");

    sqlite3 *db = raw_open(path);
    char *mode = raw_text(db, "PRAGMA journal_mode");
    ok(mode && strcmp(mode, "wal") == 0, "journal mode is WAL");
    free(mode);
    ok(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION &&
           raw_int(db, "PRAGMA application_id") == 0x6B666368,
       "user_version and application_id are set");
    ok(raw_int(db, "SELECT count(*) FROM messages") == 1,
       "a committed message is visible to another connection at once");
    sqlite3_close(db);
    store_close(s);

    s = must_open(path, 0);
    struct store_msg m;
    ok(store_version_at_open(s) == STORE_SCHEMA_VERSION && store_msg_get(s, m1, &m) == STATUS_OK &&
           strcmp(m.text, "persisted?") == 0,
       "reopened: current version, data intact");
    store_msg_clear(&m);
    store_close(s);

    /* An existing empty file (as from touch) becomes a database; an existing file's mode is
     * not changed. */
    const char *empty = tpath("empty.db");
    testutil_write_file(empty, "", 0);
    chmod(empty, 0640);
    s = NULL;
    ok(store_open(&s, empty, 0, err, sizeof(err)) == STATUS_OK && stat(empty, &st) == 0 &&
           (st.st_mode & 0777) == 0640,
       "an empty existing file is initialised, mode kept");
    store_close(s);

    ok(store_open(&s, tpath("missing.db"), STORE_READONLY, err, sizeof(err)) == STATUS_NOT_FOUND &&
           !exists(tpath("missing.db")) && one_line(err),
       "read-only open of a missing file: not found, nothing created (%s)", err);
    testutil_write_file(tpath("afile"), "x", 1);
    ok(store_open(&s, tpath("afile/kfchat.db"), 0, err, sizeof(err)) == STATUS_IO && one_line(err),
       "a parent that is a file: %s", err);
}

// ---- schema: embedded copy, migrations, equivalence -----------------------------------------

static void test_schema_embedded(void)
{
    char path[4096];
    testutil_path(path, sizeof(path), testutil_env("KF_SRCDIR", "."), "data/schema.sql");
    size_t len;
    char *file = testutil_read_file(path, &len);
    if (!file) {
        skip("data/schema.sql not found (set KF_SRCDIR)");
        return;
    }
    ok(len == strlen(store_schema_sql) && memcmp(file, store_schema_sql, len) == 0,
       "data/store_schema.h matches data/schema.sql (else run scripts/gen_store_schema.sh)");
    free(file);
}

/* sqlite_master with comments dropped and whitespace normalised, for comparing schemas. */
static char *schema_of(const char *path)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st;
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    /* sqlite_stat1 comes and goes with PRAGMA optimize; it is SQLite's, not our schema. */
    sqlite3_prepare_v2(db,
                       "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
                       "WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name",
                       -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < 4; c++) {
            const char *p = (const char *)sqlite3_column_text(st, c);
            int space = 0;
            for (; *p && len + 4 < cap; p++) {
                if (p[0] == '-' && p[1] == '-') {
                    while (*p && *p != '\n')
                        p++;
                    if (!*p)
                        break;
                }
                if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
                    space = 1;
                    continue;
                }
                /* a space matters only between two word characters */
                if (space && len && (isalnum((unsigned char)out[len - 1]) || out[len - 1] == '_') &&
                    (isalnum((unsigned char)*p) || *p == '_'))
                    out[len++] = ' ';
                space = 0;
                out[len++] = *p;
            }
            out[len++] = '|';
        }
        out[len++] = '\n';
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/* Rows an older kfchat would have written (version >= 1 has these tables), with a snapshot. */
static void fill_old(sqlite3 *db)
{
    raw_exec(
        db, "INSERT INTO sessions (id, name, model_path, model_hash, created_ms, updated_ms) "
            "VALUES (1, 'old', '/m/old.gguf', 'feedfeedfeedfeed', 1000, 2000);"
            "INSERT INTO messages (id, session_id, parent_id, role, text, created_ms, finished_ms) "
            "VALUES (1, 1, NULL, 'user', 'ancient platypus question', 1000, 1000),"
            "       (2, 1, 1, 'assistant', 'ancient answer', 1500, 2000);");
    static const char blob[] = "old engine state";
    uint32_t crc = (uint32_t)crc32(0, (const unsigned char *)blob, sizeof(blob));
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO snapshots VALUES (2, 'kv-0', 'feedfeedfeedfeed', 0, %zu, %u, 2000, ?)",
             sizeof(blob), crc);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    sqlite3_bind_blob(st, 1, blob, sizeof(blob), SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        diag("fill_old snapshot: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
}

static void test_migrations(void)
{
    for (int v = 1; v < STORE_SCHEMA_VERSION; v++) {
        char name[64];
        snprintf(name, sizeof(name), "v%d.db", v);
        const char *path = tpath(name);
        ok(store_create_at_version(path, v, err, sizeof(err)) == STATUS_OK,
           "create a version %d database: %s", v, err);
        sqlite3 *db = raw_open(path);
        ok(raw_int(db, "PRAGMA user_version") == v, "it is at version %d", v);
        fill_old(db);
        sqlite3_close(db);

        struct store *s = NULL;
        ok(store_open(&s, path, 0, err, sizeof(err)) == STATUS_OK && store_version_at_open(s) == v,
           "open migrates version %d: %s", v, err);
        if (!s)
            continue;
        struct store_msg *m;
        size_t n = 0;
        ok(store_msg_path(s, 2, &m, &n) == STATUS_OK && n == 2 &&
               strcmp(m[0].text, "ancient platypus question") == 0 && m[1].has_snapshot,
           "v%d data survives the migration", v);
        store_msg_array_free(m, n);
        struct store_hit *h;
        ok(store_search(s, "platypus", 0, 0, NULL, NULL, 0, &h, &n) == STATUS_OK && n == 1 &&
               h[0].message_id == 1,
           "old messages are searchable (index backfilled)");
        store_hit_array_free(h, n);
        struct store_snapshot snap;
        ok(store_snapshot_get(s, 2, &snap) == STATUS_OK && snap.size == 17 &&
               memcmp(snap.data, "old engine state", 17) == 0,
           "old snapshots read back");
        store_snapshot_clear(&snap);
        int64_t id;
        ok(add(s, 1, 2, STORE_ROLE_USER, "new platypus turn") > 0 &&
               store_search(s, "platypus", 0, 0, NULL, NULL, 0, &h, &n) == STATUS_OK && n == 2,
           "new messages after the migration are indexed too");
        store_hit_array_free(h, n);
        (void)id;
        ok(store_check_integrity(s) == STATUS_OK, "integrity after migrating v%d: %s", v,
           store_errmsg(s));
        store_close(s);
        db = raw_open(path);
        ok(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION,
           "the file is now at version %d", STORE_SCHEMA_VERSION);
        sqlite3_close(db);
    }

    /* Every road ends in the same schema: schema.sql vs the migration chain from empty, and vs
     * a file migrated from each older version. */
    const char *fresh = tpath("fresh.db"), *chain = tpath("chain.db");
    store_close(must_open(fresh, 0));
    ok(store_create_at_version(chain, STORE_SCHEMA_VERSION, err, sizeof(err)) == STATUS_OK,
       "create the latest version through the migration chain");
    char *a = schema_of(fresh), *b = schema_of(chain);
    ok(strcmp(a, b) == 0, "schema.sql and the migration chain give the same schema");
    if (strcmp(a, b) != 0)
        diag("schema.sql:\n%s\nchain:\n%s", a, b);
    for (int v = 1; v < STORE_SCHEMA_VERSION; v++) {
        char name[64];
        snprintf(name, sizeof(name), "v%d.db", v);
        char *c = schema_of(tpath(name));
        ok(strcmp(a, c) == 0, "a file migrated from version %d has the same schema", v);
        free(c);
    }
    free(a);
    free(b);

    ok(store_create_at_version(fresh, 1, err, sizeof(err)) == STATUS_INVALID,
       "create_at_version refuses a non-empty file: %s", err);
    ok(store_create_at_version(tpath("x.db"), 0, err, sizeof(err)) == STATUS_INVALID &&
           store_create_at_version(tpath("x.db"), STORE_SCHEMA_VERSION + 1, err, sizeof(err)) ==
               STATUS_INVALID,
       "create_at_version refuses unknown versions");
}

// ---- refusals: newer, corrupt, truncated, foreign -------------------------------------------

/* Put a database in rollback-journal mode with everything in the main file, so that its
 * bytes are the whole state. */
static void settle(const char *path)
{
    sqlite3 *db = raw_open(path);
    raw_exec(db, "PRAGMA journal_mode = DELETE");
    sqlite3_close(db);
}

static void test_refusals(void)
{
    const char *newer = tpath("newer.db");
    make_db(newer, 3, 100);
    sqlite3 *db = raw_open(newer);
    raw_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    settle(newer);
    expect_refused(newer, 0, STATUS_UNSUPPORTED, "newer", "a newer schema");
    expect_refused(newer, STORE_READONLY, STATUS_UNSUPPORTED, "99", "a newer schema, read-only");

    /* A newer kfchat's database with commits still in its -wal file: neither file changes
     * (closing the refused file must not checkpoint). */
    const char *newer_wal = tpath("newer_wal.db");
    make_db(newer_wal, 3, 100);
    db = raw_open(newer_wal);
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    raw_exec(db, "PRAGMA user_version = 99; INSERT INTO sessions (name, created_ms, updated_ms) "
                 "VALUES ('from the future', 1, 1);");
    sqlite3_close(db);
    size_t wal_len;
    char *wal_before = slurp(suffixed(newer_wal, "-wal"), &wal_len);
    ok(wal_before && wal_len > 0, "a -wal file with commits is left (%zu bytes)", wal_len);
    expect_refused(newer_wal, 0, STATUS_UNSUPPORTED, "newer", "a newer schema with a pending WAL");
    ok(same_bytes(suffixed(newer_wal, "-wal"), wal_before, wal_len), "its -wal file is untouched");
    free(wal_before);

    const char *rnd = tpath("random.db");
    unsigned char junk[3 * 4096];
    uint32_t x = 99;
    for (size_t i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245 + 12345;
        junk[i] = (unsigned char)(x >> 16);
    }
    testutil_write_file(rnd, junk, sizeof(junk));
    expect_refused(rnd, 0, STATUS_FORMAT, "not a kfchat database (file is corrupt or not SQLite)",
                   "random bytes");
    const char *txt = tpath("notes.txt");
    const char *notes = "These are my notes, not a database.\n";
    testutil_write_file(txt, notes, strlen(notes));
    expect_refused(txt, 0, STATUS_FORMAT, "not a kfchat database (file is corrupt or not SQLite)",
                   "a text file");

    const char *trunc = tpath("truncated.db");
    make_db(trunc, 40, 2000);
    settle(trunc);
    size_t len;
    char *bytes = slurp(trunc, &len);
    ok(len > 20 * 4096, "a multi-page database to truncate (%zu bytes)", len);
    testutil_write_file(trunc, bytes, len * 2 / 5);
    free(bytes);
    expect_refused(trunc, 0, STATUS_FORMAT, "not a kfchat database (file is corrupt or not SQLite)",
                   "a truncated database");

    const char *foreign = tpath("foreign.db");
    db = NULL;
    sqlite3_open(foreign, &db);
    raw_exec(db, "CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup');");
    sqlite3_close(db);
    expect_refused(foreign, 0, STATUS_FORMAT, "another program", "another program's database");
    db = raw_open(foreign);
    raw_exec(db, "PRAGMA application_id = 1234");
    sqlite3_close(db);
    expect_refused(foreign, 0, STATUS_FORMAT, "another program", "a foreign application_id");

    /* Damage inside (the messages table's root page): open may work, since it reads only
     * the schema; the integrity check must find it. */
    const char *damaged = tpath("damaged.db");
    make_db(damaged, 40, 2000);
    settle(damaged);
    db = raw_open(damaged);
    int64_t root = raw_int(db, "SELECT rootpage FROM sqlite_master WHERE name = 'messages'");
    int64_t page = raw_int(db, "PRAGMA page_size");
    sqlite3_close(db);
    bytes = slurp(damaged, &len);
    ok(root > 1 && (size_t)(root * page) <= len, "the messages table's root is page %lld",
       (long long)root);
    for (size_t i = (size_t)((root - 1) * page); i < (size_t)(root * page) && i < len; i++)
        bytes[i] = (char)(i * 31 + 7);
    testutil_write_file(damaged, bytes, len);
    free(bytes);
    struct store *s = NULL;
    int rc = store_open(&s, damaged, 0, err, sizeof(err));
    if (rc == STATUS_OK) {
        struct store_msg *v;
        size_t n;
        rc = store_msg_list_all(s, 1, &v, &n);
        ok(rc == STATUS_FORMAT && strstr(store_errmsg(s), "corrupt") && one_line(store_errmsg(s)),
           "reading the damaged table fails clearly: %s", store_errmsg(s));
        rc = store_check_integrity(s);
        ok(rc == STATUS_FORMAT && one_line(store_errmsg(s)),
           "the integrity check reports the damage: %s", store_errmsg(s));
        store_close(s);
    } else {
        ok(rc == STATUS_FORMAT && one_line(err), "a damaged page is refused at open: %s", err);
    }
}

/* A snapshot whose bytes were changed on disk is reported, not returned. */
static void test_damaged_snapshot(void)
{
    const char *path = tpath("snapdamage.db");
    struct store *s = must_open(path, 0);
    int64_t sid, m1, m2;
    store_session_create(s, NULL, NULL, NULL, NULL, &sid);
    m1 = add(s, sid, 0, STORE_ROLE_USER, "q");
    m2 = add(s, sid, m1, STORE_ROLE_ASSISTANT, "a");
    unsigned char blob[20000];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (unsigned char)(i % 7 == 0 ? i : 0x3c);
    store_snapshot_put(s, m1, "kv", "h", "plain bytes, too short to compress", 34);
    store_snapshot_put(s, m2, "kv", "h", blob, sizeof(blob));
    store_close(s);

    sqlite3 *db = raw_open(path);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE snapshots SET data = substr(data, 1, 10) || x'00' || "
             "substr(data, 12) WHERE message_id = %lld",
             (long long)m2);
    raw_exec(db, sql);
    snprintf(sql, sizeof(sql),
             "UPDATE snapshots SET data = CAST('plain bytes, too short to "
             "compresS' AS BLOB) WHERE message_id = %lld",
             (long long)m1);
    raw_exec(db, sql);
    sqlite3_close(db);

    s = must_open(path, 0);
    struct store_snapshot snap;
    int rc = store_snapshot_get(s, m2, &snap);
    ok(rc == STATUS_FORMAT && strstr(store_errmsg(s), "damaged") && snap.data == NULL,
       "a damaged compressed snapshot: %s", store_errmsg(s));
    rc = store_snapshot_get(s, m1, &snap);
    ok(rc == STATUS_FORMAT && strstr(store_errmsg(s), "checksum"),
       "a changed byte in a stored snapshot: %s", store_errmsg(s));
    store_close(s);
}

// ---- read-only ------------------------------------------------------------------------------

/* Every kind of write on a read-only handle fails with STATUS_IO and "read-only". */
static int writes_refused(struct store *s, int64_t sid, int64_t mid)
{
    int64_t id;
    struct store_msg m = {.session_id = sid, .role = STORE_ROLE_USER, .text = "no"};
    int r = store_session_create(s, "x", NULL, NULL, NULL, &id) == STATUS_IO &&
            strstr(store_errmsg(s), "read-only") && store_msg_insert(s, &m, &id) == STATUS_IO &&
            store_snapshot_put(s, mid, "kv", "h", "abc", 3) == STATUS_IO &&
            store_session_rename(s, sid, "y") == STATUS_IO &&
            store_session_touch(s, sid) == STATUS_IO && store_session_delete(s, sid) == STATUS_IO &&
            store_msg_delete(s, mid) == STATUS_IO &&
            store_session_fork(s, mid, NULL, &id) == STATUS_IO &&
            store_session_set_model(s, sid, "a", "b", NULL) == STATUS_IO;
    return r;
}

static int reads_work(struct store *s, int64_t mid)
{
    struct store_msg *v;
    size_t n;
    int r = store_msg_path(s, mid, &v, &n) == STATUS_OK && n == 3;
    store_msg_array_free(v, n);
    struct store_hit *h = NULL;
    n = 0;
    r = r && store_search(s, "aaa*", STORE_SEARCH_FTS, 0, NULL, NULL, 0, &h, &n) == STATUS_OK;
    store_hit_array_free(h, n);
    return r;
}

static void test_readonly(void)
{
    const char *path = tpath("ro.db");
    make_db(path, 3, 50);
    settle(path);
    size_t len;
    char *before = slurp(path, &len);
    struct store *s = NULL;
    ok(store_open(&s, path, STORE_READONLY, err, sizeof(err)) == STATUS_OK && store_is_readonly(s),
       "STORE_READONLY opens an existing database: %s", err);
    if (s) {
        ok(reads_work(s, 3), "reads work read-only");
        ok(writes_refused(s, 1, 3), "every write is refused with a clear message: %s",
           store_errmsg(s));
        store_close(s);
    }
    ok(same_bytes(path, before, len), "the file is untouched");
    free(before);

    const char *old = tpath("ro_v1.db");
    store_create_at_version(old, 1, err, sizeof(err));
    settle(old);
    expect_refused(old, STORE_READONLY, STATUS_IO, "read-only", "an old version opened read-only");

    /* Files the process may not write, tested in a child that drops root (root may write
     * anything): (a) in a writable directory it opens read-only; (b) when the directory is
     * read-only too, SQLite cannot create the -shm file a WAL database needs, and the open
     * fails with a clear message.  Both leave the file untouched. */
    chmod(tmp, 0755);
    const char *dir_a = tpath("ro_a"), *dir_b = tpath("ro_b");
    mkdir(dir_a, 0777);
    chmod(dir_a, 0777); /* not the umask's choice: the child must create -shm here */
    mkdir(dir_b, 0755);
    const char *file_a = tpath("ro_a/kfchat.db"), *file_b = tpath("ro_b/kfchat.db");
    make_db(file_a, 3, 50);
    make_db(file_b, 3, 50);
    chmod(file_a, 0444);
    chmod(file_b, 0444);
    chmod(dir_b, 0555);
    struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : NULL;
    if (geteuid() == 0 && !pw) {
        skip("running as root and there is no user 'nobody'");
        chmod(tmp, 0700);
        return;
    }
    size_t len_a, len_b;
    char *before_a = slurp(file_a, &len_a), *before_b = slurp(file_b, &len_b);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (pw && (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0))
            _exit(10);
        struct store *c = NULL;
        if (store_open(&c, file_a, 0, err, sizeof(err)) != STATUS_OK) {
            printf("# (a) %s\n", err);
            fflush(stdout);
            _exit(11);
        }
        int code = !store_is_readonly(c)      ? 12
                   : !reads_work(c, 3)        ? 13
                   : !writes_refused(c, 1, 3) ? 14
                                              : 0;
        store_close(c);
        if (code)
            _exit(code);
        c = NULL;
        int rc = store_open(&c, file_b, 0, err, sizeof(err));
        printf("# (b) %s\n", err);
        fflush(stdout);
        _exit(rc == STATUS_IO && c == NULL && one_line(err) && strstr(err, "read-only") ? 0 : 15);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "no write permission: opens read-only, reads work, writes refused; with a read-only "
       "directory too, a clear error (exit %d)",
       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    ok(same_bytes(file_a, before_a, len_a) && same_bytes(file_b, before_b, len_b),
       "and the files are untouched");
    free(before_a);
    free(before_b);
    chmod(dir_b, 0755);
    chmod(tmp, 0700);
}

// ---- locks ----------------------------------------------------------------------------------

static void test_locked(void)
{
    const char *path = tpath("locked.db");
    make_db(path, 2, 10);
    struct store *s = must_open(path, 0);
    sqlite3 *other = raw_open(path);
    raw_exec(other, "BEGIN IMMEDIATE; INSERT INTO sessions (name, created_ms, updated_ms) "
                    "VALUES ('other', 1, 1);");
    store_set_busy_timeout(s, 300);
    double t0 = now_s();
    int64_t id;
    int rc = store_session_create(s, "mine", NULL, NULL, NULL, &id);
    double dt = now_s() - t0;
    ok(rc == STATUS_DB && strstr(store_errmsg(s), "locked") && one_line(store_errmsg(s)),
       "a write while another process holds the lock fails clearly: %s", store_errmsg(s));
    ok(dt >= 0.25 && dt < 3.0, "after the busy timeout, not a hang (%.2f s)", dt);
    struct store_msg m = {.session_id = 1, .role = STORE_ROLE_USER, .text = "x"};
    id = 0;
    rc = store_msg_insert(s, &m, &id);
    ok(rc == STATUS_DB && id == 0 && strstr(store_errmsg(s), "locked"), "a message insert too");
    struct store_session ss;
    ok(store_session_get(s, 1, &ss) == STATUS_OK, "reads still work (WAL)");
    store_session_clear(&ss);
    raw_exec(other, "COMMIT");
    sqlite3_close(other);
    ok(store_session_create(s, "mine", NULL, NULL, NULL, &id) == STATUS_OK,
       "after the other commits, writing works");
    store_close(s);

    /* At open: a file that needs migrating while another connection holds the write lock. */
    const char *old = tpath("locked_v1.db");
    store_create_at_version(old, 1, err, sizeof(err));
    sqlite3 *o = raw_open(old);
    raw_exec(o, "BEGIN IMMEDIATE; INSERT INTO sessions (name, created_ms, updated_ms) "
                "VALUES ('busy', 1, 1);");
    t0 = now_s();
    s = (struct store *)1;
    rc = store_open(&s, old, 0, err, sizeof(err));
    dt = now_s() - t0;
    ok(rc == STATUS_DB && s == NULL && strstr(err, "locked") && one_line(err),
       "opening a file that needs an upgrade while it is locked: %s", err);
    ok(dt < STORE_BUSY_TIMEOUT_MS / 1000.0 + 2, "gave up after the busy timeout (%.2f s)", dt);
    raw_exec(o, "COMMIT");
    ok(raw_int(o, "PRAGMA user_version") == 1, "and the file was not migrated");
    sqlite3_close(o);

    /* A rollback-journal file locked exclusively: even reading must give up, not hang. */
    const char *excl = tpath("exclusive.db");
    make_db(excl, 2, 10);
    settle(excl);
    o = raw_open(excl);
    raw_exec(o, "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; "
                "INSERT INTO sessions (name, created_ms, updated_ms) VALUES ('x', 1, 1);");
    t0 = now_s();
    rc = store_open(&s, excl, 0, err, sizeof(err));
    dt = now_s() - t0;
    ok(rc == STATUS_DB && strstr(err, "locked") && one_line(err) &&
           dt < STORE_BUSY_TIMEOUT_MS / 1000.0 + 2,
       "an exclusively locked file: %s (%.2f s)", err, dt);
    raw_exec(o, "ROLLBACK");
    sqlite3_close(o);
}

// ---- full disk ------------------------------------------------------------------------------

static size_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/*
 * In a child limited by RLIMIT_FSIZE (writes past the limit fail with EFBIG, as on a full
 * disk): a big message must fail with a clear error and leave earlier data and the handle
 * usable.  The child reports "<0|1> <name>" lines through a pipe; the parent turns them into
 * TAP and checks the file afterwards.
 */
static void test_full_disk(void)
{
    const char *path = tpath("full.db");
    int fds[2];
    if (pipe(fds) != 0) {
        skip("no pipe");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        FILE *out = fdopen(fds[1], "w");
        signal(SIGXFSZ, SIG_IGN);
        struct store *s = must_open(path, 0);
        int64_t sid = 0, last = 0;
        store_session_create(s, "full", NULL, NULL, NULL, &sid);
        for (int i = 0; i < 20; i++)
            last = add(s, sid, last, STORE_ROLE_USER, "small message before the disk fills");
        size_t limit = file_size(path);
        size_t wal = file_size(suffixed(path, "-wal"));
        if (wal > limit)
            limit = wal;
        struct rlimit rl = {.rlim_cur = limit + 16384, .rlim_max = RLIM_INFINITY};
        setrlimit(RLIMIT_FSIZE, &rl);
        size_t big_len = 4 << 20;
        char *big = malloc(big_len + 1);
        for (size_t i = 0; i < big_len; i++)
            big[i] = (char)('a' + (i * 2654435761u >> 7) % 26);
        big[big_len] = 0;
        struct store_msg m = {
            .session_id = sid, .parent_id = last, .role = STORE_ROLE_ASSISTANT, .text = big};
        int64_t id = 0;
        int rc = store_msg_insert(s, &m, &id);
        fprintf(out, "%d a message that does not fit fails with STATUS_IO and one line: %s\n",
                rc == STATUS_IO && one_line(store_errmsg(s)), store_errmsg(s));
        rc = store_snapshot_put(s, last, "kv", "h", big, big_len);
        fprintf(out, "%d a snapshot that does not fit too: %s\n", rc == STATUS_IO, store_errmsg(s));
        struct store_msg *v;
        size_t n = 0;
        rc = store_msg_path(s, last, &v, &n);
        fprintf(out, "%d the handle still reads the earlier messages (%zu)\n",
                rc == STATUS_OK && n == 20, n);
        store_msg_array_free(v, n);
        /* Space is freed: the same handle writes again without reopening. */
        rl.rlim_cur = RLIM_INFINITY;
        setrlimit(RLIMIT_FSIZE, &rl);
        rc = add(s, sid, last, STORE_ROLE_ASSISTANT, "short") > 0;
        fprintf(out, "%d once space is free, the same handle commits again\n", rc);
        free(big);
        store_close(s); /* its checkpoint may fail too: the WAL stays for the next open */
        fclose(out);
        _exit(0);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    char line[1024];
    int lines = 0;
    while (fgets(line, sizeof(line), in)) {
        line[strcspn(line, "\n")] = 0;
        ok(line[0] == '1', "full disk: %s", line + 2);
        lines++;
    }
    fclose(in);
    int st;
    waitpid(pid, &st, 0);
    ok(lines == 4 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the full-disk child finished");

    struct store *s = must_open(path, 0);
    int64_t leaf = 0;
    struct store_msg *v;
    size_t n = 0;
    store_msg_latest_leaf(s, 1, &leaf);
    int rc = store_msg_path(s, leaf, &v, &n);
    ok(rc == STATUS_OK && n == 21 && strcmp(v[20].text, "short") == 0 &&
           strcmp(v[0].text, "small message before the disk fills") == 0,
       "after reopening: the 20 earlier messages and the small one, not the big one (%zu)", n);
    store_msg_array_free(v, n);
    ok(store_check_integrity(s) == STATUS_OK, "integrity after the full disk: %s", store_errmsg(s));
    store_close(s);
}

// ---- kill -9 --------------------------------------------------------------------------------

static void kill_text(char *buf, size_t n, int i)
{
    int k = snprintf(buf, n, "message %d:", i);
    size_t len = 100 + (size_t)(i * 37) % 3000;
    for (size_t j = (size_t)k; j < len && j + 1 < n; j++)
        buf[j] = (char)('A' + (i + (int)j) % 26);
    buf[len < n ? len : n - 1] = 0;
}

/* The child: append messages (and now and then a snapshot) forever, reporting each committed
 * message number through the pipe after its commit returned. */
static void kill_child(const char *path, int fd, int start)
{
    struct store *s = must_open(path, 0);
    int64_t sid = 1, leaf = 0;
    struct store_session ss;
    if (store_session_get(s, 1, &ss) != STATUS_OK)
        store_session_create(s, "kill", NULL, NULL, NULL, &sid);
    store_session_clear(&ss);
    store_msg_latest_leaf(s, sid, &leaf);
    unsigned char *snap = malloc(300000);
    for (size_t j = 0; j < 300000; j++)
        snap[j] = (unsigned char)(j * 2654435761u >> 13);
    char text[4096];
    for (int i = start;; i++) {
        kill_text(text, sizeof(text), i);
        int64_t id = add(s, sid, leaf, i & 1 ? STORE_ROLE_ASSISTANT : STORE_ROLE_USER, text);
        if (!id)
            _exit(3);
        leaf = id;
        if (write(fd, &i, sizeof(i)) != (ssize_t)sizeof(i))
            _exit(4);
        if (i % 4 == 0)
            store_snapshot_put(s, id, "kv", "h", snap, 300000);
    }
}

static void test_kill9(void)
{
    const char *path = tpath("kill.db");
    int next = 1, rounds_ok = 1;
    const int kill_after[3] = {40, 97, 151};
    for (int round = 0; round < 3; round++) {
        int fds[2];
        if (pipe(fds) != 0) {
            skip("no pipe");
            return;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            kill_child(path, fds[1], next);
            _exit(0);
        }
        close(fds[1]);
        int got = 0, last = next - 1, v;
        double t0 = now_s();
        while (got < kill_after[round] && now_s() - t0 < 10 &&
               read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
            last = v;
            got++;
        }
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        while (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
            last = v; /* committed and reported before the kill */
        close(fds[0]);
        ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && got == kill_after[round],
           "round %d: the writer was killed with SIGKILL after %d commits", round + 1, got);

        struct store *s = must_open(path, 0);
        int64_t leaf = 0;
        struct store_msg *m = NULL;
        size_t n = 0;
        store_msg_latest_leaf(s, 1, &leaf);
        store_msg_path(s, leaf, &m, &n);
        /* Every reported message is there, whole; at most one more (committed, not reported). */
        int intact = n >= (size_t)last && n <= (size_t)last + 1;
        char want[4096];
        for (size_t i = 0; intact && i < n; i++) {
            kill_text(want, sizeof(want), (int)i + 1);
            intact = strcmp(m[i].text, want) == 0;
            if (!intact)
                diag("message %zu differs", i + 1);
        }
        ok(intact, "round %d: all %d reported messages are intact (%zu in the file)", round + 1,
           last, n);
        ok(store_check_integrity(s) == STATUS_OK, "round %d: the store's integrity check passes",
           round + 1);
        store_msg_array_free(m, n);
        store_close(s);
        ok(raw_integrity_ok(path), "round %d: PRAGMA integrity_check is ok", round + 1);
        rounds_ok &= intact;
        next = (int)n + 1;
    }
    (void)rounds_ok;
}

int main(void)
{
    tmp = testutil_tmpdir();
    test_create();
    test_schema_embedded();
    test_migrations();
    test_refusals();
    test_damaged_snapshot();
    test_readonly();
    test_locked();
    test_full_disk();
    test_kill9();
    testutil_tmpdir_remove(tmp);
    return done_testing();
}
