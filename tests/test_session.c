/*
 * test_session.c — the conversation layer on a tiny random model and a store in a temporary
 * directory: exact resume (a session closed after turn k and reopened produces the same
 * turn k+1 tokens as one that never stopped, for every KV policy, greedy and seeded), commits
 * per turn with their generation settings, re-processing after the model file changed, a
 * reply lost to a crash, regenerate / edit / fork branches, stopping, memory-only sessions, and
 * changing the sampler or the engine's KV settings in a running session (session_rebind).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "session_impl.h" /* test_snap_memory looks at the snapshots kept */
#include "store.h"
#include "tap.h"
#include "testutil.h"

#define K_TURNS 3
#define N_PREDICT 12
#define MAX_TOK 256

static char model_path[4096], db_path[4096];
static const char *turns[] = { "Hello there, how are you today?", "Tell me about the sea.",
                               "And what about mountains?", "Which one do you prefer and why?" };

struct policy {
    const char *name;
    const char *budget; /* small enough that the turns below evict */
};
static const struct policy policies[] = {
    { "full", NULL },       { "window", "48" },    { "sink", "48" },
    { "h2o", "48" },        { "keyformer", "48" }, { "keyformer-static", "48" },
};

struct rec {
    int32_t tok[MAX_TOK];
    int n;
    int stop_after; /* ask to stop after this many pieces (0: never) */
};

static int on_piece(void *ud, const char *piece, int len, int32_t token)
{
    struct rec *r = ud;
    (void)piece, (void)len;
    if (r->n < MAX_TOK)
        r->tok[r->n++] = token;
    return r->stop_after && r->n >= r->stop_after;
}

struct rig {
    struct engine *e;
    struct sampler *s;
    struct store *st;
    struct session *ss;
    struct sampler_params sp;
};

static int rig_open(struct rig *r, const char *model, const struct policy *p, float temp,
                    int use_store, const char *name, int64_t resume_id)
{
    char err[512];
    memset(r, 0, sizeof(*r));
    struct engine_params ep = { .model_path = model, .n_ctx = 512, .n_threads = 2 };
    if (p) {
        ep.kv = kv_params_default();
        ep.kv.policy = (enum kv_policy)kv_policy_from_name(p->name);
        ep.kv_budget = p->budget;
        ep.kv_set = 1;
    }
    if (engine_open(&r->e, &ep, err, sizeof err) != STATUS_OK) {
        diag("engine_open: %s", err);
        return -1;
    }
    r->sp = sampler_params_default();
    r->sp.temp = temp;
    r->sp.seed = 1234;
    if (sampler_new(&r->s, &r->sp, engine_n_vocab(r->e)) != STATUS_OK)
        return -1;
    if (use_store && store_open(&r->st, db_path, 0, err, sizeof err) != STATUS_OK) {
        diag("store_open: %s", err);
        return -1;
    }
    struct session_opts o = { .name = name, .resume_id = resume_id, .n_predict = N_PREDICT,
                              .sampling = &r->sp, .settings = "{\"test\":1}" };
    if (session_open(&r->ss, r->e, r->s, r->st, &o, err, sizeof err) != STATUS_OK) {
        diag("session_open: %s", err);
        return -1;
    }
    return 0;
}

static void rig_close(struct rig *r)
{
    session_close(r->ss);
    store_close(r->st);
    sampler_free(r->s);
    engine_close(r->e);
    memset(r, 0, sizeof(*r));
}

/* One turn; the reply's tokens go to rec (may be NULL).  Returns session_reply's status. */
static int turn(struct rig *r, const char *text, struct rec *rec)
{
    struct rec tmp = { .n = 0 };
    int st = session_user(r->ss, text, NULL, NULL, NULL);
    if (st != STATUS_OK) {
        diag("session_user: %s", session_errmsg(r->ss));
        return st;
    }
    st = session_reply(r->ss, on_piece, rec ? rec : &tmp, NULL);
    if (st != STATUS_OK && st != STATUS_STOPPED)
        diag("session_reply: %s", session_errmsg(r->ss));
    return st;
}

static int same(const struct rec *a, const struct rec *b)
{
    return a->n == b->n && a->n > 0 && memcmp(a->tok, b->tok, (size_t)a->n * sizeof(int32_t)) == 0;
}

// ---- exact resume for every policy and sampling mode ---------------------------------------

static void test_exact_resume(const struct policy *p, float temp)
{
    char name_u[64], name_r[64];
    snprintf(name_u, sizeof name_u, "u-%s-%g", p->name, temp);
    snprintf(name_r, sizeof name_r, "r-%s-%g", p->name, temp);
    struct rig r;
    struct rec ref = { .n = 0 }, got = { .n = 0 };
    int okk = rig_open(&r, model_path, p, temp, 1, name_u, 0) == 0;
    for (int t = 0; okk && t < K_TURNS; t++)
        okk = turn(&r, turns[t], NULL) == STATUS_OK;
    int evicted = okk && engine_kv_bytes_used(r.e) < engine_kv_bytes_full(r.e);
    okk = okk && turn(&r, turns[K_TURNS], &ref) == STATUS_OK;
    rig_close(&r);

    okk = okk && rig_open(&r, model_path, p, temp, 1, name_r, 0) == 0;
    for (int t = 0; okk && t < K_TURNS; t++)
        okk = turn(&r, turns[t], NULL) == STATUS_OK;
    rig_close(&r);
    okk = okk && rig_open(&r, model_path, p, temp, 1, name_r, 0) == 0;
    int kind = okk ? (int)session_resume_kind(r.ss) : -1;
    okk = okk && turn(&r, turns[K_TURNS], &got) == STATUS_OK;
    ok(okk && kind == SESSION_RESTORED && same(&ref, &got),
       "%s, temp %g: resumed turn %d equals the uninterrupted one (%d tokens, kind %d%s)",
       p->name, temp, K_TURNS + 1, got.n, kind, p->budget && !evicted ? ", NO eviction" : "");
    if (p->budget)
        ok(evicted, "%s: the budget evicted entries before turn %d", p->name, K_TURNS + 1);
    rig_close(&r);
}

// ---- commits and what they record -----------------------------------------------------------

static void test_commits(void)
{
    struct rig r;
    if (rig_open(&r, model_path, NULL, 0.8f, 1, "commits", 0)) {
        ok(0, "open for commits");
        return;
    }
    int64_t leaf = 0, id = session_id(r.ss);
    ok(id > 0, "a named session is created at open (id %lld)", (long long)id);
    session_user(r.ss, turns[0], NULL, NULL, NULL);
    store_msg_latest_leaf(r.st, id, &leaf);
    struct store_msg m;
    int got = store_msg_get(r.st, leaf, &m) == STATUS_OK;
    ok(got && m.role == STORE_ROLE_USER && !strcmp(m.text, turns[0]) && m.n_tokens > 0,
       "the user message is committed before the reply");
    if (got)
        store_msg_clear(&m);
    session_reply(r.ss, NULL, NULL, NULL);
    store_msg_latest_leaf(r.st, id, &leaf);
    got = store_msg_get(r.st, leaf, &m) == STATUS_OK;
    ok(got && m.role == STORE_ROLE_ASSISTANT && m.has_snapshot && m.n_tokens > N_PREDICT - 1 &&
           m.gen.model_hash && !strcmp(m.gen.model_hash, engine_model_fingerprint(r.e)) &&
           m.gen.sampler && strstr(m.gen.sampler, "\"temp\":0.8") && m.gen.seed == 1234 &&
           m.gen.kv_policy && m.gen.template_name,
       "the reply is committed with its snapshot, token count and generation settings (%s)",
       got && m.gen.sampler ? m.gen.sampler : "?");
    if (got)
        store_msg_clear(&m);
    int pos_ok = session_n_msgs(r.ss) == 2 && session_msg_pos(r.ss, 0) == 0;
    for (size_t i = 0; i + 1 <= session_n_msgs(r.ss); i++)
        pos_ok = pos_ok && session_msg_pos(r.ss, i) < session_msg_pos(r.ss, i + 1);
    ok(pos_ok && session_msg_pos(r.ss, 2) == engine_n_past(r.e), "message positions tile the context");
    struct store_session rec;
    got = store_session_get(r.st, id, &rec) == STATUS_OK;
    ok(got && !strcmp(rec.settings, "{\"test\":1}") && rec.n_messages == 2 &&
           !strcmp(rec.model_hash, engine_model_fingerprint(r.e)),
       "the session records its model and settings");
    if (got)
        store_session_clear(&rec);
    rig_close(&r);
}

// ---- branches: regenerate, edit, fork -------------------------------------------------------

static size_t n_children(struct store *st, int64_t sid, int64_t parent)
{
    struct store_msg *v;
    size_t n = 0;
    if (store_msg_children(st, sid, parent, &v, &n) != STATUS_OK)
        return 0;
    store_msg_array_free(v, n);
    return n;
}

/* With a store, a reply's snapshot goes to the store and leaves memory (a chat's memory is its
 * cache's, not three times it); a regen in the same session then loads the store's. */
static void test_snap_memory(void)
{
    struct rig r;
    struct rec a = { .n = 0 }, b = { .n = 0 };
    if (rig_open(&r, model_path, NULL, 0.0f, 1, "snapmem", 0)) {
        ok(0, "open for the snapshot memory check");
        return;
    }
    turn(&r, turns[0], NULL);
    turn(&r, turns[1], &a);
    ok(!r.ss->snap[0].data && !r.ss->snap[1].data,
       "with a store, no snapshot stays in memory after a reply");
    ok(session_regen(r.ss, on_piece, &b, NULL) == STATUS_OK && same(&a, &b) &&
           !r.ss->snap[0].data && !r.ss->snap[1].data,
       "a regen in the same session starts from the store's snapshot and keeps none");
    rig_close(&r);
    /* without a store the two kept in memory are the only ones */
    if (rig_open(&r, model_path, NULL, 0.0f, 0, NULL, 0)) {
        ok(0, "open memory-only for the snapshot check");
        return;
    }
    turn(&r, turns[0], NULL);
    turn(&r, turns[1], NULL);
    ok(r.ss->snap[0].data && r.ss->snap[1].data,
       "a memory-only session keeps the last two replies' snapshots");
    rig_close(&r);
}

static void test_branches(void)
{
    struct rig r;
    struct rec a = { .n = 0 }, b = { .n = 0 }, c = { .n = 0 }, d = { .n = 0 };
    /* in memory: the rebuild comes from the snapshots kept in memory */
    if (rig_open(&r, model_path, NULL, 0.0f, 0, NULL, 0)) {
        ok(0, "open for branches");
        return;
    }
    turn(&r, turns[0], NULL);
    turn(&r, turns[1], &a);
    ok(session_regen(r.ss, on_piece, &b, NULL) == STATUS_OK && session_n_msgs(r.ss) == 4 &&
           same(&a, &b),
       "greedy regen reproduces the reply (state rebuilt exactly from memory)");
    ok(session_edit_last(r.ss, turns[1], on_piece, &c, NULL) == STATUS_OK &&
           session_n_msgs(r.ss) == 4 && same(&a, &c),
       "greedy edit with the same text reproduces the reply");
    rig_close(&r);
    a.n = b.n = c.n = 0;
    if (rig_open(&r, model_path, NULL, 0.8f, 0, NULL, 0)) {
        ok(0, "open for seeded regen");
        return;
    }
    turn(&r, turns[0], &a);
    ok(session_regen(r.ss, on_piece, &b, NULL) == STATUS_OK && !same(&a, &b),
       "seeded regen draws a new reply (the RNG goes on)");
    rig_close(&r);

    /* with the store: branches are siblings, and after a resume the store's snapshots serve */
    a.n = b.n = c.n = 0;
    if (rig_open(&r, model_path, NULL, 0.0f, 1, "branches", 0)) {
        ok(0, "open for stored branches");
        return;
    }
    turn(&r, turns[0], NULL);
    turn(&r, turns[1], &a);
    rig_close(&r);
    if (rig_open(&r, model_path, NULL, 0.0f, 1, "branches", 0)) {
        ok(0, "reopen for branches");
        return;
    }
    int64_t sid = session_id(r.ss), user = session_msg_id(r.ss, 2), old = session_msg_id(r.ss, 3);
    int st = session_regen(r.ss, on_piece, &b, NULL);
    ok(st == STATUS_OK && session_n_msgs(r.ss) == 4 && session_msg_id(r.ss, 3) != old &&
           n_children(r.st, sid, user) == 2,
       "regen adds a sibling reply");
    ok(same(&a, &b), "greedy regen after resume reproduces the reply (stored snapshot)");
    int64_t parent = session_msg_id(r.ss, 1);
    st = session_edit_last(r.ss, turns[1], on_piece, &c, NULL);
    ok(st == STATUS_OK && session_n_msgs(r.ss) == 4 && n_children(r.st, sid, parent) == 2 &&
           !strcmp(session_msgs(r.ss)[2].content, turns[1]) && same(&a, &c),
       "edit adds a sibling user turn and answers it");
    st = session_fork(r.ss, "forked");
    int64_t fid = session_id(r.ss);
    ok(st == STATUS_OK && fid != sid && session_name(r.ss) && !strcmp(session_name(r.ss), "forked"),
       "fork switches to a new named session");
    ok(turn(&r, turns[2], &d) == STATUS_OK, "the fork goes on");
    struct store_session fs, os;
    int g1 = store_session_get(r.st, fid, &fs) == STATUS_OK;
    int g2 = store_session_get(r.st, sid, &os) == STATUS_OK;
    ok(g1 && g2 && fs.n_messages == 6 && os.n_messages == 7,
       "fork copied the branch (fork %lld, original %lld messages)",
       g1 ? (long long)fs.n_messages : -1, g2 ? (long long)os.n_messages : -1);
    if (g1)
        store_session_clear(&fs);
    if (g2)
        store_session_clear(&os);
    rig_close(&r);
    /* the fork resumes from the snapshot copied with it plus its own */
    struct rec e = { .n = 0 };
    if (rig_open(&r, model_path, NULL, 0.0f, 1, "forked", 0)) {
        ok(0, "reopen the fork");
        return;
    }
    ok(session_resume_kind(r.ss) == SESSION_RESTORED && session_n_msgs(r.ss) == 6 &&
           session_regen(r.ss, on_piece, &e, NULL) == STATUS_OK && same(&d, &e),
       "the fork resumes exactly");
    ok(session_rename(r.ss, "renamed") == STATUS_OK &&
           store_session_find(r.st, "renamed", &fs) == STATUS_OK,
       "rename");
    store_session_clear(&fs);
    rig_close(&r);
}

// ---- stop, lost reply, model change, memory only --------------------------------------------

static void test_stop_and_lost(void)
{
    struct rig r;
    struct rec stop = { .n = 0, .stop_after = 3 }, ref = { .n = 0 }, got = { .n = 0 };
    if (rig_open(&r, model_path, NULL, 0.8f, 1, "stopped", 0)) {
        ok(0, "open for stop");
        return;
    }
    session_user(r.ss, turns[0], NULL, NULL, NULL);
    int st = session_reply(r.ss, on_piece, &stop, NULL);
    ok(st == STATUS_STOPPED && stop.n == 3 && session_msg_id(r.ss, 1) > 0,
       "a stopped reply is kept and committed (%d tokens)", stop.n);
    volatile int cancel = 1;
    session_user(r.ss, turns[1], NULL, NULL, NULL);
    st = session_reply(r.ss, on_piece, &got, &cancel);
    ok(st == STATUS_STOPPED && got.n == 0, "a cancel flag stops before the first token");
    turn(&r, turns[2], &ref);
    session_user(r.ss, turns[3], NULL, NULL, NULL); /* then "killed": no reply */
    rig_close(&r);

    if (rig_open(&r, model_path, NULL, 0.8f, 1, "stopped", 0)) {
        ok(0, "reopen for lost");
        return;
    }
    size_t n = session_n_msgs(r.ss);
    ok(n == 7 && !strcmp(session_msgs(r.ss)[6].content, turns[3]) &&
           strstr(session_resume_note(r.ss), "not saved"),
       "a user message without its reply is kept and noted (%s)", session_resume_note(r.ss));
    got.n = 0;
    st = session_reply(r.ss, on_piece, &got, NULL);
    ok(st == STATUS_OK && got.n > 0 && session_n_msgs(r.ss) == 8, "and can be answered");
    rig_close(&r);
}

/* Write the tiny model with this weight seed to path. */
static int mkmodel(const char *vocab, const char *path, const char *seed)
{
    char mk[4096];
    testutil_path(mk, sizeof mk, testutil_builddir(), "kfchat-mkmodel");
    const char *argv[] = { mk, "--arch", "llama", "--vocab", vocab, "--embd", "64", "--layers",
                     "2", "--heads", "4", "--kv-heads", "2", "--ff", "128", "--type", "q8_0",
                     "--ctx", "512", "--seed", seed, "-o", path, NULL };
    char log[4096];
    testutil_path(log, sizeof log, testutil_tmpdir(), "mkmodel.log");
    return testutil_run((char *const *)argv, log);
}

static void test_model_change(const char *vocab)
{
    char mc[4096];
    struct rig r;
    testutil_path(mc, sizeof mc, testutil_tmpdir(), "changing.gguf");
    if (mkmodel(vocab, mc, "42") || rig_open(&r, mc, NULL, 0.0f, 1, "model-change", 0)) {
        ok(0, "open for model change");
        return;
    }
    turn(&r, turns[0], NULL);
    turn(&r, turns[1], NULL);
    rig_close(&r);
    if (mkmodel(vocab, mc, "7") || rig_open(&r, mc, NULL, 0.0f, 1, "model-change", 0)) {
        ok(0, "reopen for model change");
        return;
    }
    ok(session_resume_kind(r.ss) == SESSION_REPROCESSED &&
           strstr(session_resume_note(r.ss), "model file changed") &&
           strstr(session_resume_note(r.ss), "re-processed 4 messages"),
       "a changed model file re-processes the transcript (%s)", session_resume_note(r.ss));
    ok(session_msg_pos(r.ss, 4) == engine_n_past(r.e) && turn(&r, turns[2], NULL) == STATUS_OK,
       "and the conversation goes on");
    rig_close(&r);
}

/* Ctrl-C while the prompt is evaluated: the message is saved and goes in with the next turn. */
static void test_stop_prompt(void)
{
    struct rig r;
    volatile int cancel = 1;
    if (rig_open(&r, model_path, NULL, 0.0f, 1, "stop-prompt", 0)) {
        ok(0, "open for stop-prompt");
        return;
    }
    turn(&r, turns[0], NULL);
    int st = session_user(r.ss, turns[1], &cancel, NULL, NULL);
    ok(st == STATUS_STOPPED && session_n_msgs(r.ss) == 3 && session_msg_id(r.ss, 2) > 0,
       "a stopped prompt keeps its message, saved");
    ok(turn(&r, turns[2], NULL) == STATUS_OK && session_n_msgs(r.ss) == 5 &&
           session_msg_pos(r.ss, 5) == engine_n_past(r.e),
       "the next turn takes it in");
    rig_close(&r);
}

/* The newest messages were saved without a snapshot (another writer, or a crash between the
 * message and its snapshot): resume loads the older snapshot and replays the rest. */
static void test_behind_and_readonly(void)
{
    struct rig r;
    char err[512];
    if (rig_open(&r, model_path, NULL, 0.0f, 1, "behind", 0)) {
        ok(0, "open for behind");
        return;
    }
    turn(&r, turns[0], NULL);
    int64_t sid = session_id(r.ss), parent = session_msg_id(r.ss, 1), id = 0;
    struct store_msg m = { .session_id = sid, .parent_id = parent, .role = STORE_ROLE_USER,
                           .text = turns[1], .n_tokens = 1 };
    int okk = store_msg_insert(r.st, &m, &id) == STATUS_OK;
    m.parent_id = id;
    m.role = STORE_ROLE_ASSISTANT;
    m.text = "A reply written by someone else.";
    okk = okk && store_msg_insert(r.st, &m, &id) == STATUS_OK;
    rig_close(&r);
    okk = okk && rig_open(&r, model_path, NULL, 0.0f, 1, "behind", 0) == 0;
    ok(okk && session_resume_kind(r.ss) == SESSION_REPROCESSED && session_n_msgs(r.ss) == 4 &&
           strstr(session_resume_note(r.ss), "2 messages behind") &&
           session_msg_pos(r.ss, 4) == engine_n_past(r.e),
       "a snapshot older than the leaf: the rest is replayed (%s)",
       okk ? session_resume_note(r.ss) : "?");
    ok(okk && turn(&r, turns[2], NULL) == STATUS_OK, "and the conversation goes on");
    rig_close(&r);

    struct store *ro = NULL;
    struct session *ss = NULL;
    okk = rig_open(&r, model_path, NULL, 0.0f, 0, NULL, 0) == 0 &&
          store_open(&ro, db_path, STORE_READONLY, err, sizeof err) == STATUS_OK;
    struct session_opts o = { .name = "behind", .n_predict = 4 };
    int st = okk ? session_open(&ss, r.e, r.s, ro, &o, err, sizeof err) : STATUS_OK;
    ok(okk && st == STATUS_IO && !ss && strstr(err, "read-only"),
       "a read-only store is refused at open (%s)", err);
    store_close(ro);
    rig_close(&r);
}

static void test_memory_only(void)
{
    struct rig a, b;
    struct rec ra = { .n = 0 }, rb = { .n = 0 };
    int okk = rig_open(&a, model_path, NULL, 0.8f, 0, NULL, 0) == 0 &&
              rig_open(&b, model_path, NULL, 0.8f, 1, NULL, 0) == 0;
    ok(okk && session_id(a.ss) == 0 && session_id(b.ss) == 0,
       "sessions without a store, or unnamed ones before the first turn, have no id");
    for (int t = 0; okk && t < 2; t++) {
        okk = turn(&a, turns[t], &ra) == STATUS_OK && turn(&b, turns[t], &rb) == STATUS_OK;
        okk = okk && same(&ra, &rb);
        ra.n = rb.n = 0;
    }
    ok(okk && session_id(a.ss) == 0 && session_id(b.ss) > 0,
       "a memory-only session replies as a stored one does");
    rig_close(&a);
    rig_close(&b);
}

// ---- changing settings: session_rebind ------------------------------------------------------

/* A new sampler made like r's, with r's RNG and penalty state: what the TUI does for /temp. */
static struct sampler *sampler_carry(struct rig *r)
{
    struct sampler *s = NULL;
    size_t n = sampler_state_size(r->s);
    void *buf = malloc(n ? n : 1);
    if (buf && sampler_new(&s, &r->sp, engine_n_vocab(r->e)) == STATUS_OK) {
        sampler_state_save(r->s, buf);
        sampler_state_load(s, buf, n);
    }
    free(buf);
    return s;
}

static void test_rebind(void)
{
    /* a new sampler on the same engine (/temp): nothing is re-processed, and with the state
     * carried over the next reply is the one a session that never changed would give */
    for (int seeded = 0; seeded < 2; seeded++) {
        float temp = seeded ? 0.8f : 0.0f;
        struct rig a, b;
        struct rec ra = { .n = 0 }, rb = { .n = 0 };
        size_t replayed = 99;
        int okk = rig_open(&a, model_path, NULL, temp, 0, NULL, 0) == 0 &&
                  rig_open(&b, model_path, NULL, temp, 0, NULL, 0) == 0;
        for (int t = 0; okk && t < 2; t++)
            okk = turn(&a, turns[t], NULL) == STATUS_OK && turn(&b, turns[t], NULL) == STATUS_OK;
        struct sampler *s = okk ? sampler_carry(&a) : NULL;
        okk = okk && s && session_rebind(a.ss, a.e, s, &a.sp, NULL, NULL, NULL, &replayed) ==
                              STATUS_OK;
        if (s) {
            sampler_free(a.s);
            a.s = s;
        }
        okk = okk && turn(&a, turns[2], &ra) == STATUS_OK && turn(&b, turns[2], &rb) == STATUS_OK;
        ok(okk && replayed == 0 && same(&ra, &rb) && session_n_msgs(a.ss) == 6,
           "%s: a new sampler on the same engine goes on exactly (replayed %zu)",
           seeded ? "seeded" : "greedy", replayed);
        rig_close(&a);
        rig_close(&b);
    }

    /* a new engine with another KV policy (/policy, /budget), with and without a store: the
     * transcript stays, the new engine is brought to its end, the session goes on */
    for (int use_store = 0; use_store < 2; use_store++) {
        struct rig a;
        char err[512];
        struct engine *e2 = NULL;
        size_t replayed = 0;
        int okk = rig_open(&a, model_path, NULL, 0.0f, use_store, use_store ? "rebind" : NULL,
                           0) == 0;
        for (int t = 0; okk && t < 2; t++)
            okk = turn(&a, turns[t], NULL) == STATUS_OK;
        int64_t id = okk ? session_id(a.ss) : -1;
        int past = okk ? engine_n_past(a.e) : -1;
        struct engine_params ep = { .model_path = model_path, .n_ctx = 512, .n_threads = 2,
                                    .kv = kv_params_default(), .kv_budget = "48", .kv_set = 1 };
        ep.kv.policy = KV_POLICY_WINDOW;
        okk = okk && engine_open(&e2, &ep, err, sizeof err) == STATUS_OK;
        if (okk) { /* the old engine goes first, as in the TUI */
            engine_close(a.e);
            a.e = e2;
        }
        okk = okk && session_rebind(a.ss, a.e, a.s, &a.sp, NULL, NULL, NULL, &replayed) ==
                         STATUS_OK;
        ok(okk && replayed == 4 && session_n_msgs(a.ss) == 4 &&
               !strcmp(session_msgs(a.ss)[2].role, "user") &&
               !strcmp(session_msgs(a.ss)[2].content, turns[1]) &&
               engine_n_past(a.e) == session_msg_pos(a.ss, 4) && engine_n_past(a.e) > past / 2,
           "%s: a new engine keeps the transcript and re-processes it (%zu messages)",
           use_store ? "stored" : "memory-only", replayed);
        okk = okk && turn(&a, turns[2], NULL) == STATUS_OK;
        int saved = 1;
        if (okk && use_store) {
            int64_t leaf = 0;
            struct store_msg m;
            saved = store_msg_latest_leaf(a.st, id, &leaf) == STATUS_OK &&
                    store_msg_get(a.st, leaf, &m) == STATUS_OK;
            if (saved) {
                saved = m.role == STORE_ROLE_ASSISTANT && m.gen.kv_policy &&
                        !strcmp(m.gen.kv_policy, "window");
                store_msg_clear(&m);
            }
        }
        ok(okk && session_n_msgs(a.ss) == 6 && session_id(a.ss) == id && saved,
           "%s: the conversation goes on in the same session%s",
           use_store ? "stored" : "memory-only", use_store ? ", the new reply records the new policy" : "");
        rig_close(&a);
    }
}

int main(void)
{
    char vocab[4096], mk[4096];
    const char *dir = testutil_tmpdir();
    testutil_path(vocab, sizeof vocab, testutil_testdata(), "vocab/ggml-vocab-llama-spm.gguf");
    testutil_path(mk, sizeof mk, testutil_builddir(), "kfchat-mkmodel");
    if (!testutil_is_file(vocab) || !testutil_is_executable(mk)) {
        testutil_tmpdir_remove(dir);
        return skip_all("kfchat-mkmodel or the llama-spm vocabulary is missing");
    }
    testutil_path(model_path, sizeof model_path, dir, "tiny.gguf");
    testutil_path(db_path, sizeof db_path, dir, "sessions.db");
    if (!ok(mkmodel(vocab, model_path, "42") == 0, "kfchat-mkmodel writes the tiny model"))
        return done_testing();

    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        test_exact_resume(&policies[i], 0.0f);
        test_exact_resume(&policies[i], 0.8f);
    }
    test_commits();
    test_branches();
    test_snap_memory();
    test_stop_and_lost();
    test_stop_prompt();
    test_behind_and_readonly();
    test_memory_only();
    test_rebind();
    test_model_change(vocab);
    testutil_tmpdir_remove(dir);
    return done_testing();
}
