/*
 * test_store.c — the session store on ":memory:": sessions, the message tree, forks, snapshots
 * (round trip, compression, retention, nearest-on-branch), full-text search, and the pure
 * Markdown/JSON exporters (escaping checked with SQLite's own JSON functions).  Files,
 * migrations, corruption, locks, read-only files, a full disk and kill -9 are in
 * test_store_files.c.
 */
#include "config.h"
#include "status.h"
#include "store.h"
#include "tap.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char err[512];

static struct store *open_mem(void)
{
    struct store *s = NULL;
    if (store_open(&s, ":memory:", 0, err, sizeof(err)) != STATUS_OK) {
        printf("Bail out! cannot open :memory: store: %s\n", err);
        exit(1);
    }
    return s;
}

static int streq(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/* Insert a message with the given parent and text; returns its id (0 on failure, reported). */
static int64_t add(struct store *s, int64_t sid, int64_t parent, enum store_role role,
                   const char *text)
{
    struct store_msg m = {.session_id = sid, .parent_id = parent, .role = role, .text = text};
    int64_t id = 0;
    int rc = store_msg_insert(s, &m, &id);
    if (rc != STATUS_OK)
        diag("insert failed: %s", store_errmsg(s));
    return id;
}

static int64_t new_session(struct store *s, const char *name)
{
    int64_t id = 0;
    if (store_session_create(s, name, "/m/model.gguf", "0123456789abcdef", NULL, &id) != STATUS_OK)
        diag("session create failed: %s", store_errmsg(s));
    return id;
}

static size_t count_msgs(struct store *s, int64_t sid)
{
    struct store_msg *v;
    size_t n = 0;
    if (store_msg_list_all(s, sid, &v, &n) != STATUS_OK)
        return (size_t)-1;
    store_msg_array_free(v, n);
    return n;
}

static size_t count_sessions(struct store *s)
{
    struct store_session *v;
    size_t n = 0;
    if (store_session_list(s, 0, &v, &n) != STATUS_OK)
        return (size_t)-1;
    store_session_array_free(v, n);
    return n;
}

static int one_line(const char *msg)
{
    return msg && *msg && !strchr(msg, '\n');
}

// ---- open, roles --------------------------------------------------------------------------

static void test_open(void)
{
    struct store *s = NULL;
    ok(store_open(&s, ":memory:", 0, err, sizeof(err)) == STATUS_OK && s, "open :memory:");
    ok(store_version_at_open(s) == 0, "a new database reports version 0 at open");
    ok(!store_is_readonly(s), "writable");
    ok(streq(store_errmsg(s), ""), "no error after open");
    ok(store_check_integrity(s) == STATUS_OK, "a new database passes the integrity check");
    store_close(s);
    store_close(NULL);
    ok(1, "store_close(NULL) is harmless");

    enum store_role r;
    ok(store_role_parse("assistant", &r) == STATUS_OK && r == STORE_ROLE_ASSISTANT &&
           store_role_parse("system", &r) == STATUS_OK && r == STORE_ROLE_SYSTEM &&
           store_role_parse("user", &r) == STATUS_OK && r == STORE_ROLE_USER,
       "role names parse");
    ok(store_role_parse("bot", &r) == STATUS_INVALID &&
           store_role_parse(NULL, &r) == STATUS_INVALID,
       "unknown role names are refused");
    ok(streq(store_role_name(STORE_ROLE_USER), "user") && streq(store_role_name(7), "?"),
       "role_name");
}

// ---- sessions -----------------------------------------------------------------------------

static void test_sessions(void)
{
    struct store *s = open_mem();
    int64_t a = 0, b = 0, x = 0;
    ok(store_session_create(s, "alpha", "/m/a.gguf", "aaaa", "{\"ctx\":512}", &a) == STATUS_OK &&
           a > 0,
       "create a named session");
    ok(store_session_create(s, NULL, NULL, NULL, NULL, &b) == STATUS_OK && b > a,
       "create an unnamed session");
    int rc = store_session_create(s, "alpha", NULL, NULL, NULL, &x);
    ok(rc == STATUS_INVALID && strstr(store_errmsg(s), "already exists") &&
           strncmp(store_errmsg(s), ":memory:: ", 10) == 0 && one_line(store_errmsg(s)),
       "a duplicate name is refused with a one-line message: %s", store_errmsg(s));
    ok(store_session_create(s, "", NULL, NULL, NULL, &x) == STATUS_INVALID,
       "an empty name is refused");
    ok(count_sessions(s) == 2, "refused creates left nothing behind");

    struct store_session ss;
    ok(store_session_get(s, a, &ss) == STATUS_OK && ss.id == a && streq(ss.name, "alpha") &&
           streq(ss.model_path, "/m/a.gguf") && streq(ss.model_hash, "aaaa") &&
           streq(ss.settings, "{\"ctx\":512}") && ss.n_messages == 0 && ss.preview == NULL &&
           ss.forked_from == 0 && ss.created_ms > 0 && ss.updated_ms == ss.created_ms,
       "get returns every field");
    store_session_clear(&ss);
    ok(store_session_get(s, b, &ss) == STATUS_OK && ss.name == NULL && streq(ss.model_path, "") &&
           streq(ss.settings, "{}"),
       "defaults of an unnamed session");
    store_session_clear(&ss);
    ok(store_session_find(s, "alpha", &ss) == STATUS_OK && ss.id == a, "find by name");
    store_session_clear(&ss);
    rc = store_session_find(s, "nope", &ss);
    ok(rc == STATUS_NOT_FOUND && strstr(store_errmsg(s), "nope"), "find a missing name: %s",
       store_errmsg(s));
    rc = store_session_get(s, 9999, &ss);
    ok(rc == STATUS_NOT_FOUND && strstr(store_errmsg(s), "9999") && ss.name == NULL,
       "get a missing id");

    /* Activity order: a message with a later finish time moves its session first. */
    store_session_get(s, a, &ss);
    int64_t later = ss.created_ms + 100000;
    store_session_clear(&ss);
    struct store_msg m = {.session_id = a,
                          .role = STORE_ROLE_USER,
                          .text = "hello",
                          .created_ms = later,
                          .finished_ms = later};
    int64_t mid;
    store_msg_insert(s, &m, &mid);
    struct store_session *v;
    size_t n;
    ok(store_session_list(s, 0, &v, &n) == STATUS_OK && n == 2 && v[0].id == a && v[1].id == b &&
           v[0].n_messages == 1 && streq(v[0].preview, "hello") && v[0].updated_ms == later,
       "list: most recent activity first, with count and preview");
    store_session_array_free(v, n);
    ok(store_session_list(s, 1, &v, &n) == STATUS_OK && n == 1 && v[0].id == a,
       "list with a limit");
    store_session_array_free(v, n);

    store_session_get(s, b, &ss);
    int64_t before = ss.updated_ms;
    store_session_clear(&ss);
    struct timespec ts = {0, 3000000};
    nanosleep(&ts, NULL);
    ok(store_session_touch(s, b) == STATUS_OK && store_session_get(s, b, &ss) == STATUS_OK &&
           ss.updated_ms > before,
       "touch moves the activity time");
    store_session_clear(&ss);
    ok(store_session_touch(s, 9999) == STATUS_NOT_FOUND, "touch a missing session");

    ok(store_session_rename(s, a, "beta") == STATUS_OK &&
           store_session_find(s, "beta", &ss) == STATUS_OK && ss.id == a,
       "rename");
    store_session_clear(&ss);
    ok(store_session_find(s, "alpha", &ss) == STATUS_NOT_FOUND, "the old name is gone");
    ok(store_session_rename(s, b, "beta") == STATUS_INVALID, "rename onto a taken name is refused");
    ok(store_session_rename(s, a, NULL) == STATUS_OK && store_session_get(s, a, &ss) == STATUS_OK &&
           ss.name == NULL,
       "rename to unnamed");
    store_session_clear(&ss);
    ok(store_session_rename(s, 9999, "z") == STATUS_NOT_FOUND, "rename a missing session");

    ok(store_session_set_model(s, a, "/m/b.gguf", "bbbb", NULL) == STATUS_OK &&
           store_session_get(s, a, &ss) == STATUS_OK && streq(ss.model_path, "/m/b.gguf") &&
           streq(ss.model_hash, "bbbb") && streq(ss.settings, "{\"ctx\":512}"),
       "set_model keeps settings when given NULL");
    store_session_clear(&ss);
    ok(store_session_set_model(s, a, "/m/c.gguf", "cccc", "{}") == STATUS_OK &&
           store_session_get(s, a, &ss) == STATUS_OK && streq(ss.settings, "{}"),
       "set_model replaces settings");
    store_session_clear(&ss);

    ok(store_session_delete(s, a) == STATUS_OK && store_session_get(s, a, &ss) == STATUS_NOT_FOUND,
       "delete a session");
    struct store_msg got;
    ok(store_msg_get(s, mid, &got) == STATUS_NOT_FOUND, "its messages went with it");
    ok(store_session_delete(s, a) == STATUS_NOT_FOUND, "delete it again: not found");
    ok(store_check_integrity(s) == STATUS_OK, "integrity after deletes: %s", store_errmsg(s));
    store_close(s);
}

// ---- messages -----------------------------------------------------------------------------

static void test_messages(void)
{
    struct store *s = open_mem();
    int64_t sid = new_session(s, "tree"), other = new_session(s, "other");
    int64_t sys = add(s, sid, 0, STORE_ROLE_SYSTEM, "You are terse.");
    int64_t user = add(s, sid, sys, STORE_ROLE_USER, "Wie geht's? ✓ 日本語\nline two");
    struct store_msg a = {.session_id = sid,
                          .parent_id = user,
                          .role = STORE_ROLE_ASSISTANT,
                          .text = "Gut.",
                          .n_tokens = 3,
                          .created_ms = 1700000000123,
                          .finished_ms = 1700000001456,
                          .gen = {.model_hash = "0123456789abcdef",
                                  .template_name = "chatml",
                                  .sampler = "{\"temp\":0.7,\"top_p\":0.9}",
                                  .seed = UINT64_MAX,
                                  .kv_policy = "keyformer",
                                  .kv_budget = 512}};
    int64_t a1 = 0;
    ok(sys && user && store_msg_insert(s, &a, &a1) == STATUS_OK && a1 > user,
       "insert system, user and assistant turns");

    struct store_msg g;
    ok(store_msg_get(s, a1, &g) == STATUS_OK && g.id == a1 && g.session_id == sid &&
           g.parent_id == user && g.role == STORE_ROLE_ASSISTANT && streq(g.text, "Gut.") &&
           g.n_tokens == 3 && g.created_ms == 1700000000123 && g.finished_ms == 1700000001456 &&
           streq(g.gen.model_hash, "0123456789abcdef") && streq(g.gen.template_name, "chatml") &&
           streq(g.gen.sampler, "{\"temp\":0.7,\"top_p\":0.9}") && g.gen.seed == UINT64_MAX &&
           streq(g.gen.kv_policy, "keyformer") && g.gen.kv_budget == 512 && !g.has_snapshot,
       "get returns every field (seed UINT64_MAX bit for bit)");
    store_msg_clear(&g);
    int64_t now = (int64_t)time(NULL) * 1000;
    ok(store_msg_get(s, user, &g) == STATUS_OK && streq(g.text, "Wie geht's? ✓ 日本語\nline two") &&
           g.gen.model_hash == NULL && g.gen.sampler == NULL && g.gen.seed == 0 &&
           g.created_ms >= now - 10000 && g.created_ms <= now + 10000 &&
           g.finished_ms >= g.created_ms,
       "UTF-8 text, NULL settings and default times");
    store_msg_clear(&g);
    ok(store_msg_get(s, 424242, &g) == STATUS_NOT_FOUND, "get a missing message");

    struct store_msg *v;
    size_t n;
    ok(store_msg_path(s, a1, &v, &n) == STATUS_OK && n == 3 && v[0].id == sys && v[1].id == user &&
           v[2].id == a1,
       "path: root first");
    store_msg_array_free(v, n);
    ok(store_msg_path(s, 424242, &v, &n) == STATUS_NOT_FOUND && v == NULL && n == 0,
       "path from a missing message");

    /* Regenerate: a sibling of a1.  Then continue the older branch. */
    int64_t a2 = add(s, sid, user, STORE_ROLE_ASSISTANT, "Sehr gut, danke.");
    int64_t leaf;
    ok(store_msg_latest_leaf(s, sid, &leaf) == STATUS_OK && leaf == a2,
       "latest leaf is the new sibling");
    ok(store_msg_children(s, sid, user, &v, &n) == STATUS_OK && n == 2 && v[0].id == a1 &&
           v[1].id == a2,
       "children of the user turn: both replies, oldest first");
    store_msg_array_free(v, n);
    ok(store_msg_children(s, sid, 0, &v, &n) == STATUS_OK && n == 1 && v[0].id == sys, "roots");
    store_msg_array_free(v, n);
    ok(store_msg_children(s, sid, a2, &v, &n) == STATUS_OK && n == 0 && v == NULL,
       "a leaf has no children");
    int64_t u2 = add(s, sid, a1, STORE_ROLE_USER, "und dann?");
    ok(store_msg_latest_leaf(s, sid, &leaf) == STATUS_OK && leaf == u2,
       "continuing the older branch makes it the latest");
    ok(store_msg_path(s, u2, &v, &n) == STATUS_OK && n == 4 && v[2].id == a1 && v[3].id == u2,
       "its path skips the sibling");
    store_msg_array_free(v, n);

    /* Refusals leave nothing behind. */
    size_t before = count_msgs(s, sid);
    struct store_msg bad = {
        .session_id = other, .parent_id = user, .role = STORE_ROLE_USER, .text = "x"};
    int64_t id;
    int rc = store_msg_insert(s, &bad, &id);
    ok(rc == STATUS_INVALID && strstr(store_errmsg(s), "is in session"),
       "a parent in another session is refused: %s", store_errmsg(s));
    bad.session_id = 9999;
    bad.parent_id = 0;
    ok(store_msg_insert(s, &bad, &id) == STATUS_NOT_FOUND, "a missing session is refused");
    bad.session_id = sid;
    bad.parent_id = 424242;
    ok(store_msg_insert(s, &bad, &id) == STATUS_NOT_FOUND, "a missing parent is refused");
    bad.parent_id = 0;
    bad.text = NULL;
    ok(store_msg_insert(s, &bad, &id) == STATUS_INVALID, "no text is refused");
    bad.text = "x";
    bad.role = (enum store_role)7;
    ok(store_msg_insert(s, &bad, &id) == STATUS_INVALID, "a bad role is refused");
    ok(count_msgs(s, sid) == before && count_msgs(s, other) == 0, "refusals inserted nothing");

    /* Preview: the first user message, 80 characters (not bytes). */
    int64_t p = new_session(s, "preview");
    char longtext[400] = "";
    for (int i = 0; i < 100; i++)
        strcat(longtext, "é");
    add(s, p, add(s, p, 0, STORE_ROLE_SYSTEM, "sys"), STORE_ROLE_USER, longtext);
    struct store_session ss;
    ok(store_session_get(s, p, &ss) == STATUS_OK && ss.preview && strlen(ss.preview) == 160 &&
           ss.n_messages == 2,
       "preview is the first user message cut at 80 characters");
    store_session_clear(&ss);

    int64_t empty = new_session(s, NULL);
    ok(store_msg_latest_leaf(s, empty, &leaf) == STATUS_OK && leaf == 0,
       "latest leaf of an empty session is 0");
    ok(store_msg_latest_leaf(s, 9999, &leaf) == STATUS_NOT_FOUND,
       "latest leaf of a missing session");

    /* Deleting a message deletes its subtree. */
    ok(store_msg_delete(s, user) == STATUS_OK && count_msgs(s, sid) == 1 &&
           store_msg_get(s, u2, &g) == STATUS_NOT_FOUND,
       "delete a message: its subtree goes too");
    ok(store_msg_delete(s, user) == STATUS_NOT_FOUND, "delete it again: not found");
    ok(store_check_integrity(s) == STATUS_OK, "integrity: %s", store_errmsg(s));
    store_close(s);
}

// ---- snapshots ----------------------------------------------------------------------------

static uint32_t rng_state = 12345;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* n random bytes (incompressible) or, with compressible, f16-like values of small numbers. */
static unsigned char *make_blob(size_t n, int compressible)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = compressible ? (i & 1 ? (unsigned char)(0x38 + (rnd() & 3)) : (unsigned char)rnd())
                            : (unsigned char)rnd();
    return p;
}

static int snap_equals(struct store *s, int64_t msg, const void *data, size_t n, const char *fmt,
                       enum store_codec codec)
{
    struct store_snapshot snap;
    int rc = store_snapshot_get(s, msg, &snap);
    int eq = rc == STATUS_OK && snap.size == n && (n == 0 || memcmp(snap.data, data, n) == 0) &&
             streq(snap.format, fmt) && streq(snap.model_hash, "0123456789abcdef") &&
             snap.codec == codec && snap.message_id == msg && snap.created_ms > 0;
    if (rc != STATUS_OK)
        diag("snapshot get: %s", store_errmsg(s));
    else if (!eq)
        diag("snapshot %lld: size %zu codec %d stored %zu", (long long)msg, snap.size, snap.codec,
             snap.stored_size);
    if (eq && codec == STORE_CODEC_ZLIB)
        eq = snap.stored_size <= n * 9 / 10;
    if (eq && codec == STORE_CODEC_NONE)
        eq = snap.stored_size == n;
    store_snapshot_clear(&snap);
    return eq;
}

static void test_snapshots(void)
{
    struct store *s = open_mem();
    const char *h = "0123456789abcdef";
    int64_t sid = new_session(s, "snap"), other = new_session(s, "other");
    int64_t m[6];
    m[0] = add(s, sid, 0, STORE_ROLE_USER, "q0");
    for (int i = 1; i < 6; i++)
        m[i] = add(s, sid, m[i - 1], i & 1 ? STORE_ROLE_ASSISTANT : STORE_ROLE_USER, "turn");
    int64_t o1 = add(s, other, 0, STORE_ROLE_USER, "other");
    store_snapshot_set_keep(s, 0);

    unsigned char *rand_small = make_blob(100000, 0), *comp = make_blob(1 << 20, 1);
    unsigned char *rand_big = make_blob(1500000, 0);
    ok(store_snapshot_put(s, m[1], "kv-1", h, rand_small, 100000) == STATUS_OK &&
           snap_equals(s, m[1], rand_small, 100000, "kv-1", STORE_CODEC_NONE),
       "random bytes round trip, stored as is");
    ok(store_snapshot_put(s, m[3], "kv-1", h, comp, 1 << 20) == STATUS_OK &&
           snap_equals(s, m[3], comp, 1 << 20, "kv-1", STORE_CODEC_ZLIB),
       "f16-like data round trips through zlib, >= 10%% smaller");
    ok(store_snapshot_put(s, m[5], "kv-2", h, rand_big, 1500000) == STATUS_OK &&
           snap_equals(s, m[5], rand_big, 1500000, "kv-2", STORE_CODEC_NONE),
       "a large incompressible blob is stored as is (probe path)");
    ok(store_snapshot_put(s, m[0], "kv-1", h, NULL, 0) == STATUS_OK &&
           snap_equals(s, m[0], NULL, 0, "kv-1", STORE_CODEC_NONE),
       "an empty snapshot");
    ok(store_snapshot_put(s, m[1], "kv-3", h, comp, 4096) == STATUS_OK &&
           snap_equals(s, m[1], comp, 4096, "kv-3", STORE_CODEC_ZLIB),
       "put again replaces the snapshot");

    struct store_msg g;
    ok(store_msg_get(s, m[3], &g) == STATUS_OK && g.has_snapshot, "has_snapshot is set");
    store_msg_clear(&g);
    ok(store_msg_get(s, m[2], &g) == STATUS_OK && !g.has_snapshot, "has_snapshot is clear");
    store_msg_clear(&g);
    ok(store_snapshot_put(s, 424242, "kv-1", h, comp, 10) == STATUS_NOT_FOUND,
       "put on a missing message");
    ok(store_snapshot_put(s, m[2], NULL, h, comp, 10) == STATUS_INVALID, "put without a format");
    struct store_snapshot snap;
    ok(store_snapshot_get(s, m[2], &snap) == STATUS_NOT_FOUND && snap.data == NULL,
       "get where there is none");

    int64_t found;
    ok(store_snapshot_find(s, m[4], &found) == STATUS_OK && found == m[3],
       "find: the nearest snapshot up the branch");
    ok(store_snapshot_find(s, m[5], &found) == STATUS_OK && found == m[5],
       "find: the message itself");
    ok(store_snapshot_find(s, o1, &found) == STATUS_NOT_FOUND && found == 0,
       "find: none on the branch");

    /* Retention: the newest `keep` per session; other sessions untouched. */
    ok(store_snapshot_put(s, o1, "kv-1", h, comp, 1000) == STATUS_OK,
       "snapshot in another session");
    store_snapshot_set_keep(s, 2);
    ok(store_snapshot_put(s, m[2], "kv-1", h, comp, 1000) == STATUS_OK, "put with keep = 2");
    int kept = 0;
    for (int i = 0; i < 6; i++) {
        if (store_msg_get(s, m[i], &g) == STATUS_OK)
            kept += g.has_snapshot;
        store_msg_clear(&g);
    }
    ok(kept == 2 && store_snapshot_get(s, m[2], &snap) == STATUS_OK,
       "only 2 snapshots remain, "
       "the new one among them (kept %d)",
       kept);
    store_snapshot_clear(&snap);
    ok(store_snapshot_get(s, o1, &snap) == STATUS_OK, "the other session's snapshot is kept");
    store_snapshot_clear(&snap);

    ok(store_snapshot_get(s, m[1], &snap) == STATUS_OK, "the newest before it (m1, replaced "
                                                        "last) is the other one kept");
    store_snapshot_clear(&snap);
    ok(store_msg_delete(s, m[1]) == STATUS_OK &&
           store_snapshot_find(s, m[0], &found) == STATUS_NOT_FOUND &&
           store_snapshot_get(s, m[1], &snap) == STATUS_NOT_FOUND,
       "deleting messages deletes their snapshots");
    ok(store_check_integrity(s) == STATUS_OK, "integrity: %s", store_errmsg(s));
    free(rand_small);
    free(rand_big);
    free(comp);
    store_close(s);
}

// ---- forks --------------------------------------------------------------------------------

static void test_fork(void)
{
    struct store *s = open_mem();
    int64_t sid = new_session(s, "orig");
    int64_t m1 = add(s, sid, 0, STORE_ROLE_USER, "first question");
    int64_t m2 = add(s, sid, m1, STORE_ROLE_ASSISTANT, "first answer");
    int64_t m3 = add(s, sid, m2, STORE_ROLE_USER, "second question");
    int64_t m4 = add(s, sid, m3, STORE_ROLE_ASSISTANT, "second answer");
    add(s, sid, m1, STORE_ROLE_ASSISTANT, "another first answer");
    const char blob[] = "engine state engine state engine state engine state engine state";
    store_snapshot_put(s, m4, "kv-1", "0123456789abcdef", blob, sizeof(blob));

    int64_t f = 0;
    ok(store_session_fork(s, m4, "forked", &f) == STATUS_OK && f > sid, "fork at the last reply");
    struct store_session ss;
    ok(store_session_get(s, f, &ss) == STATUS_OK && streq(ss.name, "forked") &&
           ss.forked_from == m4 && ss.n_messages == 4 && streq(ss.model_path, "/m/model.gguf") &&
           streq(ss.model_hash, "0123456789abcdef"),
       "the fork: name, origin, model, 4 messages");
    store_session_clear(&ss);
    int64_t leaf;
    struct store_msg *v, *w;
    size_t n, k;
    store_msg_latest_leaf(s, f, &leaf);
    ok(store_msg_path(s, leaf, &v, &n) == STATUS_OK && n == 4, "the fork's branch has 4 messages");
    store_msg_path(s, m4, &w, &k);
    int same = n == k;
    for (size_t i = 0; same && i < n; i++)
        same = streq(v[i].text, w[i].text) && v[i].role == w[i].role && v[i].id != w[i].id &&
               v[i].session_id == f && v[i].created_ms == w[i].created_ms;
    ok(same, "copies: same texts, roles and times, new ids, in the new session");
    store_msg_array_free(w, k);
    ok(n == 4 && v[3].has_snapshot && !v[2].has_snapshot, "the fork point's snapshot was copied");
    struct store_snapshot snap;
    ok(n == 4 && store_snapshot_get(s, v[3].id, &snap) == STATUS_OK && snap.size == sizeof(blob) &&
           memcmp(snap.data, blob, sizeof(blob)) == 0,
       "and reads back the same");
    store_snapshot_clear(&snap);
    store_msg_array_free(v, n);

    int64_t g = 0;
    ok(store_session_fork(s, m2, NULL, &g) == STATUS_OK && count_msgs(s, g) == 2,
       "fork in the middle copies up to that message");
    size_t ns = count_sessions(s);
    ok(store_session_fork(s, m2, "forked", &g) == STATUS_INVALID && count_sessions(s) == ns,
       "a fork onto a taken name is refused and leaves nothing");
    ok(store_session_fork(s, 424242, NULL, &g) == STATUS_NOT_FOUND && count_sessions(s) == ns,
       "fork of a missing message");

    ok(store_session_delete(s, sid) == STATUS_OK && count_msgs(s, f) == 4 &&
           store_session_get(s, f, &ss) == STATUS_OK && ss.forked_from == 0,
       "deleting the original keeps the fork; its origin becomes 0");
    store_session_clear(&ss);
    ok(store_check_integrity(s) == STATUS_OK, "integrity: %s", store_errmsg(s));
    store_close(s);
}

// ---- search -------------------------------------------------------------------------------

static size_t search(struct store *s, const char *q, int flags, int64_t sid, struct store_hit **v)
{
    size_t n = 0;
    *v = NULL;
    if (store_search(s, q, flags, sid, NULL, NULL, 0, v, &n) != STATUS_OK)
        return (size_t)-1;
    return n;
}

static void test_search(void)
{
    struct store *s = open_mem();
    int64_t s1 = new_session(s, "animals"), s2 = new_session(s, NULL);
    int64_t fox = add(s, s1, 0, STORE_ROLE_USER, "The quick brown fox jumps over the lazy dog");
    int64_t cafe = add(s, s1, fox, STORE_ROLE_ASSISTANT, "Un café au lait, s'il vous plaît");
    add(s, s2, 0, STORE_ROLE_USER, "He said \"hi\" (twice) - a quick hello");
    int64_t other = add(s, s2, 0, STORE_ROLE_USER, "completely unrelated text");
    struct store_hit *v;
    size_t n;

    n = search(s, "quick fox", 0, 0, &v);
    ok(n == 1 && v[0].message_id == fox && v[0].session_id == s1 && v[0].role == STORE_ROLE_USER &&
           streq(v[0].session_name, "animals") && v[0].created_ms > 0,
       "every word must match; hit has session, message, role and name");
    ok(n == 1 && strstr(v[0].snippet, "[quick]") && strstr(v[0].snippet, "[fox]"),
       "matches are marked in the snippet: %s", n == 1 ? v[0].snippet : "-");
    store_hit_array_free(v, n);
    n = search(s, "CAFE", 0, 0, &v);
    ok(n == 1 && v[0].message_id == cafe, "case and accents are ignored");
    store_hit_array_free(v, n);
    n = search(s, "quick", 0, 0, &v);
    ok(n == 2, "a word in two sessions: two hits");
    store_hit_array_free(v, n);
    n = search(s, "quick", 0, s2, &v);
    ok(n == 1 && v[0].session_id == s2 && v[0].session_name == NULL, "restricted to one session");
    store_hit_array_free(v, n);
    n = search(s, "quick unrelated", 0, 0, &v);
    ok(n == 0, "no message has both words");
    store_hit_array_free(v, n);
    n = search(s, "\"hi\" (twice) -", 0, 0, &v);
    ok(n == 1, "quotes, parentheses and dashes are plain text in a plain search");
    store_hit_array_free(v, n);
    n = search(s, "fox\" OR NOT", 0, 0, &v);
    ok(n == 0, "FTS operators in a plain search are just words");
    store_hit_array_free(v, n);
    ok(store_search(s, " \t\n", 0, 0, NULL, NULL, 0, &v, &n) == STATUS_INVALID,
       "an empty search is refused");

    n = search(s, "fox OR unrelated", STORE_SEARCH_FTS, 0, &v);
    ok(n == 2, "FTS syntax with STORE_SEARCH_FTS");
    store_hit_array_free(v, n);
    n = search(s, "caf*", STORE_SEARCH_FTS, 0, &v);
    ok(n == 1 && v[0].message_id == cafe, "prefix query");
    store_hit_array_free(v, n);
    int rc = store_search(s, "\"unbalanced", STORE_SEARCH_FTS, 0, NULL, NULL, 0, &v, &n);
    ok(rc == STATUS_INVALID && v == NULL && one_line(store_errmsg(s)),
       "bad FTS syntax is STATUS_INVALID: %s", store_errmsg(s));

    ok(store_search(s, "quick", 0, 0, "<b>", "</b>", 1, &v, &n) == STATUS_OK && n == 1 &&
           strstr(v[0].snippet, "<b>quick</b>"),
       "custom markers and a limit");
    store_hit_array_free(v, n);

    store_msg_delete(s, other);
    n = search(s, "unrelated", 0, 0, &v);
    ok(n == 0, "a deleted message is no longer found");
    store_hit_array_free(v, n);
    store_session_delete(s, s1);
    n = search(s, "fox", 0, 0, &v);
    ok(n == 0, "nor are the messages of a deleted session");
    store_hit_array_free(v, n);
    ok(store_check_integrity(s) == STATUS_OK, "the full-text index matches the messages: %s",
       store_errmsg(s));
    store_close(s);
}

// ---- export -------------------------------------------------------------------------------

/* SQLite's JSON functions as an independent checker of the exporter's output. */
static sqlite3 *jdb;

static int json_valid(const char *json)
{
    sqlite3_stmt *st;
    int v = 0;
    sqlite3_prepare_v2(jdb, "SELECT json_valid(?1)", -1, &st, NULL);
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* json_extract(json, path) as a malloc'd string (NULL for JSON null or error). */
static char *json_get(const char *json, const char *path)
{
    sqlite3_stmt *st;
    char *r = NULL;
    sqlite3_prepare_v2(jdb, "SELECT json_extract(?1, ?2)", -1, &st, NULL);
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        r = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return r;
}

static int json_field_is(const char *json, const char *path, const char *want)
{
    char *v = json_get(json, path);
    int eq = streq(v, want);
    if (!eq)
        diag("%s: got %s, want %s", path, v ? v : "(null)", want ? want : "(null)");
    free(v);
    return eq;
}

/* Every byte of s is part of a valid UTF-8 sequence (a cheap independent check). */
static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80             ? 1
                : (*p & 0xe0) == 0xc0 ? 2
                : (*p & 0xf0) == 0xe0 ? 3
                : (*p & 0xf8) == 0xf0 ? 4
                                      : 0;
        if (!n || (n == 2 && *p < 0xc2))
            return 0;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

static const char expected_md[] =
    "# demo\n"
    "\n"
    "- Session: 7\n"
    "- Model: /m/tiny.gguf (00ff00ff00ff00ff)\n"
    "- Created: 2023-11-14 22:13:20 UTC\n"
    "- Last activity: 2023-11-14 22:13:25 UTC\n"
    "\n"
    "## User · 2023-11-14 22:13:20 UTC\n"
    "\n"
    "Hi *there*\n"
    "\n"
    "## Assistant · 2023-11-14 22:13:21 UTC · 5 tokens · 1.5 s\n"
    "\n"
    "Hello!\n"
    "```c\nint x;\n```\n"
    "\n"
    "<sub>model 00ff00ff00ff00ff · template chatml · sampler `{\"temp\":0.7}` · seed 42 · KV "
    "keyformer (budget 256)</sub>\n";

static const char expected_json[] =
    "{\"format\": \"kfchat-session\", \"version\": 1,\n"
    " \"session\": {\"id\": 7, \"name\": \"demo\", \"model_path\": \"/m/tiny.gguf\", "
    "\"model_hash\": \"00ff00ff00ff00ff\",\n"
    "  \"settings\": \"{}\", \"forked_from\": null,\n"
    "  \"created_ms\": 1700000000000, \"created\": \"2023-11-14T22:13:20.000Z\", "
    "\"updated_ms\": 1700000005000, \"updated\": \"2023-11-14T22:13:25.000Z\"},\n"
    " \"messages\": [\n"
    "    {\"id\": 1, \"parent_id\": null, \"role\": \"user\",\n"
    "     \"text\": \"Hi *there*\",\n"
    "     \"n_tokens\": 3, \"created_ms\": 1700000000000, \"created\": "
    "\"2023-11-14T22:13:20.000Z\", \"finished_ms\": 1700000000000, \"finished\": "
    "\"2023-11-14T22:13:20.000Z\",\n"
    "     \"model_hash\": null, \"template\": null, \"sampler\": null, \"seed\": 0, "
    "\"kv_policy\": null, \"kv_budget\": 0},\n"
    "    {\"id\": 2, \"parent_id\": 1, \"role\": \"assistant\",\n"
    "     \"text\": \"Hello!\\n```c\\nint x;\\n```\\n\",\n"
    "     \"n_tokens\": 5, \"created_ms\": 1700000001000, \"created\": "
    "\"2023-11-14T22:13:21.000Z\", \"finished_ms\": 1700000002500, \"finished\": "
    "\"2023-11-14T22:13:22.500Z\",\n"
    "     \"model_hash\": \"00ff00ff00ff00ff\", \"template\": \"chatml\", \"sampler\": "
    "\"{\\\"temp\\\":0.7}\", \"seed\": 42, \"kv_policy\": \"keyformer\", \"kv_budget\": 256}\n"
    " ]}\n";

static void test_export_pure(void)
{
    struct store_session ss = {.id = 7,
                               .name = "demo",
                               .model_path = "/m/tiny.gguf",
                               .model_hash = "00ff00ff00ff00ff",
                               .settings = "{}",
                               .created_ms = 1700000000000,
                               .updated_ms = 1700000005000};
    struct store_msg v[2] = {
        {.id = 1,
         .session_id = 7,
         .role = STORE_ROLE_USER,
         .text = "Hi *there*",
         .n_tokens = 3,
         .created_ms = 1700000000000,
         .finished_ms = 1700000000000},
        {.id = 2,
         .session_id = 7,
         .parent_id = 1,
         .role = STORE_ROLE_ASSISTANT,
         .text = "Hello!\n```c\nint x;\n```\n",
         .n_tokens = 5,
         .created_ms = 1700000001000,
         .finished_ms = 1700000002500,
         .gen = {.model_hash = "00ff00ff00ff00ff",
                 .template_name = "chatml",
                 .sampler = "{\"temp\":0.7}",
                 .seed = 42,
                 .kv_policy = "keyformer",
                 .kv_budget = 256}},
    };
    char *out = NULL;
    ok(store_export_md(&ss, v, 2, &out) == STATUS_OK && streq(out, expected_md),
       "Markdown export is exactly as expected");
    if (out && !streq(out, expected_md))
        diag("got:\n%s", out);
    free(out);
    ok(store_export_json(&ss, v, 2, &out) == STATUS_OK && streq(out, expected_json),
       "JSON export is exactly as expected");
    if (out && !streq(out, expected_json))
        diag("got:\n%s", out);
    ok(out && json_valid(out) && json_field_is(out, "$.messages[1].text", v[1].text) &&
           json_field_is(out, "$.messages[1].sampler", "{\"temp\":0.7}"),
       "and is valid JSON that round-trips");
    free(out);

    /* Every control character, quote, backslash, U+2028/9, astral and 2-byte characters. */
    char text[128];
    size_t k = 0;
    for (int c = 1; c < 0x20; c++)
        text[k++] = (char)c;
    const char *rest = "\x7f\"\\/ é 😀 \xe2\x80\xa8\xe2\x80\xa9 end";
    strcpy(text + k, rest);
    v[1].text = text;
    ss.name = NULL;
    ok(store_export_json(&ss, v, 2, &out) == STATUS_OK && json_valid(out) &&
           json_field_is(out, "$.messages[1].text", text) &&
           json_field_is(out, "$.session.name", NULL),
       "all control characters escaped and round-trip; NULL name is null");
    ok(out && !strpbrk(out, "\x01\x02\x03\x1f\x7f") && strstr(out, "\\u0001") &&
           strstr(out, "\\u001f") && strstr(out, "\\u007f") &&
           strstr(out, "\\b\\t\\n\\u000b\\f\\r") && strstr(out, "\\u2028\\u2029") &&
           strstr(out, "😀"),
       "escapes are the short or \\u forms");
    free(out);

    /* Invalid UTF-8: each bad byte becomes U+FFFD and the output is valid UTF-8. */
    v[1].text = "a\xff"
                "b\xc0\xaf"
                "c\xed\xa0\x80"
                "d\xf4\x90\x80\x80"
                "e\xe2\x82";
    ok(store_export_json(&ss, v, 2, &out) == STATUS_OK && json_valid(out) && valid_utf8(out) &&
           json_field_is(out, "$.messages[1].text",
                         "a\xef\xbf\xbd"
                         "b\xef\xbf\xbd\xef\xbf\xbd"
                         "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                         "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                         "e\xef\xbf\xbd\xef\xbf\xbd"),
       "invalid UTF-8 (stray, overlong, surrogate, > U+10FFFF, truncated) becomes U+FFFD");
    free(out);

    ok(store_export_json(&ss, NULL, 0, &out) == STATUS_OK && json_valid(out) &&
           json_field_is(out, "$.messages", "[]"),
       "an empty session is valid JSON");
    free(out);
    ok(store_export_md(&ss, NULL, 0, &out) == STATUS_OK && strncmp(out, "# Session 7\n", 12) == 0,
       "an unnamed session's Markdown title");
    free(out);

    enum store_format f;
    ok(store_format_parse("md", &f) == STATUS_OK && f == STORE_FORMAT_MD &&
           store_format_parse("markdown", &f) == STATUS_OK && f == STORE_FORMAT_MD &&
           store_format_parse("json", &f) == STATUS_OK && f == STORE_FORMAT_JSON &&
           store_format_parse("html", &f) == STATUS_INVALID,
       "format names");
}

static void test_export_db(void)
{
    struct store *s = open_mem();
    int64_t sid = new_session(s, "exp");
    int64_t u = add(s, sid, 0, STORE_ROLE_USER, "question");
    add(s, sid, u, STORE_ROLE_ASSISTANT, "old answer");
    add(s, sid, u, STORE_ROLE_ASSISTANT, "new answer");
    char *out = NULL;
    ok(store_export_session(s, sid, STORE_FORMAT_MD, 0, &out) == STATUS_OK &&
           strstr(out, "question") && strstr(out, "new answer") && !strstr(out, "old answer"),
       "Markdown export of the current branch");
    free(out);
    ok(store_export_session(s, sid, STORE_FORMAT_JSON, STORE_EXPORT_ALL, &out) == STATUS_OK &&
           json_valid(out) && json_field_is(out, "$.messages[1].text", "old answer") &&
           json_field_is(out, "$.messages[2].text", "new answer"),
       "JSON export of all branches");
    char *pid = out ? json_get(out, "$.messages[2].parent_id") : NULL;
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)u);
    ok(streq(pid, want), "parent ids are exported");
    free(pid);
    free(out);
    ok(store_export_session(s, 9999, STORE_FORMAT_MD, 0, &out) == STATUS_NOT_FOUND && out == NULL,
       "export of a missing session");
    int64_t empty = new_session(s, NULL);
    ok(store_export_session(s, empty, STORE_FORMAT_JSON, 0, &out) == STATUS_OK && json_valid(out),
       "export of an empty session");
    free(out);
    store_close(s);
}

int main(void)
{
    if (sqlite3_open(":memory:", &jdb) != SQLITE_OK)
        return skip_all("no SQLite");
    test_open();
    test_sessions();
    test_messages();
    test_snapshots();
    test_fork();
    test_search();
    test_export_pure();
    test_export_db();
    sqlite3_close(jdb);
    return done_testing();
}
