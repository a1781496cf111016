/*
 * test_gguf.c — the GGUF reader (engine/gguf.c) against files made by the writer and by hand,
 * the real vocab files, and kfchat-mkmodel's output.
 *
 * Valid files come from gguf_writer; files the writer cannot express (scalar u8..f64, version
 * 2, odd alignments) and every kind of malformed file are assembled byte by byte with struct bb.
 * Each malformed file must be rejected with a non-zero status and a one-line message that names
 * the file — never a crash, which is why this test is also run under ASan/UBSan.
 */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "status.h"
#include "tap.h"
#include "testutil.h"

static const char *tmpdir;
static char err[1024];

/* tmpdir/name, from a pool keyed by name: the same name always gives the same stable string. */
static const char *tmp_file(const char *name)
{
    static char pool[48][512];
    static int used;
    char want[512];
    testutil_path(want, sizeof(want), tmpdir, name);
    for (int i = 0; i < used; i++)
        if (strcmp(pool[i], want) == 0)
            return pool[i];
    if (used == 48)
        abort();
    memcpy(pool[used], want, sizeof(want));
    return pool[used++];
}

// ---- a byte builder for hand-made files ----------------------------------------------------

struct bb {
    uint8_t *p;
    size_t n, cap;
};

static void bb_put(struct bb *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void bb_u32(struct bb *b, uint32_t v)
{
    bb_put(b, &v, 4);
}

static void bb_u64(struct bb *b, uint64_t v)
{
    bb_put(b, &v, 8);
}

static void bb_str(struct bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}

static void bb_header(struct bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

/* A scalar KV: key, type, then n raw value bytes. */
static void bb_kv(struct bb *b, const char *key, uint32_t type, const void *val, size_t n)
{
    bb_str(b, key);
    bb_u32(b, type);
    bb_put(b, val, n);
}

static void bb_kv_u32(struct bb *b, const char *key, uint32_t v)
{
    bb_kv(b, key, GGUF_TYPE_UINT32, &v, 4);
}

static void bb_tensor(struct bb *b, const char *name, uint32_t n_dims, const int64_t *ne,
                      uint32_t type, uint64_t offset)
{
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        bb_u64(b, (uint64_t)ne[d]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

static void bb_pad(struct bb *b, size_t align)
{
    static const uint8_t z[256];
    bb_put(b, z, (align - b->n % align) % align);
}

static void bb_fill(struct bb *b, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        bb_put(b, &v, 1);
}

static void bb_save(const struct bb *b, const char *path)
{
    if (testutil_write_file(path, b->p, b->n) != 0) {
        perror(path);
        exit(99);
    }
}

/* A message is good if it is one non-empty line that names the file. */
static int msg_ok(const char *path)
{
    return err[0] && !strchr(err, '\n') && strstr(err, path);
}

/* gguf_open(path) must fail cleanly; returns its status. */
static int expect_reject_path(const char *label, const char *path)
{
    struct gguf *g = (struct gguf *)&g; /* must be reset to NULL */
    err[0] = 0;
    int st = gguf_open(&g, path, err, sizeof(err));
    ok(st < 0 && g == NULL && msg_ok(path), "reject %s: %s", label, err);
    if (st == 0)
        gguf_close(g);
    return st;
}

static int expect_reject(const char *label, struct bb *b)
{
    const char *path = tmp_file("bad.gguf");
    bb_save(b, path);
    free(b->p);
    memset(b, 0, sizeof(*b));
    return expect_reject_path(label, path);
}

static struct gguf *open_ok(const char *path, const char *label)
{
    struct gguf *g = NULL;
    int st = gguf_open(&g, path, err, sizeof(err));
    ok(st == STATUS_OK && g, "open %s%s%s", label, st ? ": " : "", st ? err : "");
    return st == STATUS_OK ? g : NULL;
}

// ---- value types ---------------------------------------------------------------------------

static void test_scalars(void)
{
    struct bb b = { 0 };
    uint8_t u8 = 200, bl = 1, bl2 = 2;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint32_t u32 = 4000000000u;
    int32_t i32 = -2000000000;
    float f32 = 1.5f;
    uint64_t u64 = (uint64_t)1 << 40, u64big = ((uint64_t)1 << 63) + 5;
    int64_t i64 = -((int64_t)1 << 40);
    double f64 = 2.25;
    bb_header(&b, 2, 0, 15); /* version 2 has v3's layout and must be accepted */
    bb_kv(&b, "t.u8", GGUF_TYPE_UINT8, &u8, 1);
    bb_kv(&b, "t.i8", GGUF_TYPE_INT8, &i8, 1);
    bb_kv(&b, "t.u16", GGUF_TYPE_UINT16, &u16, 2);
    bb_kv(&b, "t.i16", GGUF_TYPE_INT16, &i16, 2);
    bb_kv(&b, "t.u32", GGUF_TYPE_UINT32, &u32, 4);
    bb_kv(&b, "t.i32", GGUF_TYPE_INT32, &i32, 4);
    bb_kv(&b, "t.f32", GGUF_TYPE_FLOAT32, &f32, 4);
    bb_kv(&b, "t.bool", GGUF_TYPE_BOOL, &bl, 1);
    bb_str(&b, "t.str");
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_str(&b, "hello");
    bb_kv(&b, "t.u64", GGUF_TYPE_UINT64, &u64, 8);
    bb_kv(&b, "t.i64", GGUF_TYPE_INT64, &i64, 8);
    bb_kv(&b, "t.f64", GGUF_TYPE_FLOAT64, &f64, 8);
    bb_kv(&b, "t.u64big", GGUF_TYPE_UINT64, &u64big, 8);
    bb_kv(&b, "t.bool2", GGUF_TYPE_BOOL, &bl2, 1);
    bb_str(&b, "t.empty");
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_str(&b, "");
    const char *path = tmp_file("scalars.gguf");
    bb_save(&b, path);
    free(b.p);

    struct gguf *g = open_ok(path, "hand-made v2 file with every scalar type");
    if (!g)
        return;
    ok(gguf_version(g) == 2 && gguf_n_kv(g) == 15 && gguf_n_tensors(g) == 0, "v2, 15 keys");
    static const struct { const char *key; enum gguf_type t; } types[] = {
        { "t.u8", GGUF_TYPE_UINT8 },    { "t.i8", GGUF_TYPE_INT8 },
        { "t.u16", GGUF_TYPE_UINT16 },  { "t.i16", GGUF_TYPE_INT16 },
        { "t.u32", GGUF_TYPE_UINT32 },  { "t.i32", GGUF_TYPE_INT32 },
        { "t.f32", GGUF_TYPE_FLOAT32 }, { "t.bool", GGUF_TYPE_BOOL },
        { "t.str", GGUF_TYPE_STRING },  { "t.u64", GGUF_TYPE_UINT64 },
        { "t.i64", GGUF_TYPE_INT64 },   { "t.f64", GGUF_TYPE_FLOAT64 },
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        int64_t k = gguf_find_key(g, types[i].key);
        size_t len = 0;
        const char *key = k >= 0 ? gguf_key_at(g, k, &len) : "";
        ok(k == (int64_t)i && gguf_kv_type(g, k) == types[i].t && len == strlen(types[i].key) &&
               memcmp(key, types[i].key, len) == 0,
           "%s at index %zu with its type", types[i].key, i);
    }
    static const struct { const char *key; int64_t v; } ints[] = {
        { "t.u8", 200 },        { "t.i8", -100 },        { "t.u16", 60000 },
        { "t.i16", -30000 },    { "t.u32", 4000000000 }, { "t.i32", -2000000000 },
        { "t.u64", 1LL << 40 }, { "t.i64", -(1LL << 40) }, { "t.bool", 1 },
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        int64_t v = 0;
        int st = gguf_get_i64(g, ints[i].key, &v);
        ok(st == STATUS_OK && v == ints[i].v, "i64 of %s = %lld", ints[i].key, (long long)v);
    }
    uint32_t v32 = 7;
    int64_t v64 = 7;
    float f = 0;
    int bv = -1;
    const char *s;
    size_t len;
    ok(gguf_get_u32(g, "t.u8", &v32) == STATUS_OK && v32 == 200, "u32 getter widens u8");
    ok(gguf_get_u32(g, "t.u16", &v32) == STATUS_OK && v32 == 60000, "u32 getter widens u16");
    ok(gguf_get_u32(g, "t.u32", &v32) == STATUS_OK && v32 == 4000000000u, "u32 of u32");
    ok(gguf_get_u32(g, "t.i32", &v32) == STATUS_FORMAT, "u32 of a negative i32: FORMAT");
    ok(gguf_get_u32(g, "t.u64", &v32) == STATUS_FORMAT, "u32 of 2^40: FORMAT");
    v32 = 7;
    ok(gguf_get_u32(g, "t.f32", &v32) == STATUS_FORMAT && v32 == 7,
       "u32 of f32: FORMAT, out untouched");
    ok(gguf_get_u32(g, "t.str", &v32) == STATUS_FORMAT, "u32 of string: FORMAT");
    ok(gguf_get_i64(g, "t.u64big", &v64) == STATUS_FORMAT && v64 == 7, "i64 of 2^63+5: FORMAT");
    ok(gguf_get_f32(g, "t.f32", &f) == STATUS_OK && f == 1.5f, "f32 of f32");
    ok(gguf_get_f32(g, "t.f64", &f) == STATUS_OK && f == 2.25f, "f32 accepts f64");
    ok(gguf_get_f32(g, "t.u32", &f) == STATUS_FORMAT, "f32 of u32: FORMAT");
    ok(gguf_get_bool(g, "t.bool", &bv) == STATUS_OK && bv == 1, "bool");
    ok(gguf_get_bool(g, "t.bool2", &bv) == STATUS_OK && bv == 1, "bool byte 2 reads as true");
    ok(gguf_get_bool(g, "t.str", &bv) == STATUS_FORMAT, "bool of string: FORMAT");
    ok(gguf_get_str(g, "t.str", &s, &len) == STATUS_OK && len == 5 && memcmp(s, "hello", 5) == 0,
       "string");
    ok(gguf_get_str(g, "t.empty", &s, &len) == STATUS_OK && len == 0, "empty string");
    ok(gguf_get_str(g, "t.u32", &s, &len) == STATUS_FORMAT, "string of u32: FORMAT");
    enum gguf_type et;
    uint64_t n;
    const void *data;
    ok(gguf_get_arr(g, "t.u32", &et, &n, &data) == STATUS_FORMAT, "array of scalar: FORMAT");
    ok(gguf_arr_str(g, "t.str", 0, &s, &len) == STATUS_FORMAT, "arr_str of string: FORMAT");
    ok(gguf_get_u32(g, "nope", &v32) == STATUS_NOT_FOUND &&
           gguf_get_i64(g, "nope", &v64) == STATUS_NOT_FOUND &&
           gguf_get_f32(g, "nope", &f) == STATUS_NOT_FOUND &&
           gguf_get_bool(g, "nope", &bv) == STATUS_NOT_FOUND &&
           gguf_get_str(g, "nope", &s, &len) == STATUS_NOT_FOUND &&
           gguf_get_arr(g, "nope", &et, &n, &data) == STATUS_NOT_FOUND &&
           gguf_arr_str(g, "nope", 0, &s, &len) == STATUS_NOT_FOUND && gguf_find_key(g, "nope") < 0,
       "absent key: NOT_FOUND from every getter");
    ok(gguf_find_key(g, "t.u") < 0 && gguf_find_key(g, "t.u88") < 0, "no prefix matches");
    gguf_close(g);
}

#define N_STRS 1000

static void test_arrays(void)
{
    struct gguf_writer *w = gguf_writer_new();
    static const uint8_t a_u8[] = { 0, 1, 255 };
    static const int8_t a_i8[] = { -128, 0, 127 };
    static const uint16_t a_u16[] = { 0, 65535 };
    static const int16_t a_i16[] = { -32768, 32767 };
    static const uint32_t a_u32[] = { 0, 4294967295u, 17 };
    static const int32_t a_i32[] = { INT32_MIN, -1, INT32_MAX };
    static const float a_f32[] = { -1.25f, 0.0f, 3.5e30f };
    static const uint8_t a_bool[] = { 1, 0, 1 };
    static const uint64_t a_u64[] = { (uint64_t)1 << 50 };
    static const int64_t a_i64[] = { INT64_MIN, INT64_MAX };
    static const double a_f64[] = { 1e-300, -2.5 };
    static const struct { const char *key; enum gguf_type t; const void *v; uint64_t n; } arrs[] = {
        { "a.u8", GGUF_TYPE_UINT8, a_u8, 3 },      { "a.i8", GGUF_TYPE_INT8, a_i8, 3 },
        { "a.u16", GGUF_TYPE_UINT16, a_u16, 2 },   { "a.i16", GGUF_TYPE_INT16, a_i16, 2 },
        { "a.u32", GGUF_TYPE_UINT32, a_u32, 3 },   { "a.i32", GGUF_TYPE_INT32, a_i32, 3 },
        { "a.f32", GGUF_TYPE_FLOAT32, a_f32, 3 },  { "a.bool", GGUF_TYPE_BOOL, a_bool, 3 },
        { "a.u64", GGUF_TYPE_UINT64, a_u64, 1 },   { "a.i64", GGUF_TYPE_INT64, a_i64, 2 },
        { "a.f64", GGUF_TYPE_FLOAT64, a_f64, 2 },  { "a.empty", GGUF_TYPE_INT32, a_i32, 0 },
    };
    size_t n_arrs = sizeof(arrs) / sizeof(arrs[0]);
    for (size_t i = 0; i < n_arrs; i++)
        gguf_writer_set_arr(w, arrs[i].key, arrs[i].t, arrs[i].v, arrs[i].n);
    /* strings of varying length, every 7th empty, to exercise the offset index */
    static char sbuf[N_STRS][40];
    const char *strs[N_STRS];
    for (int i = 0; i < N_STRS; i++) {
        if (i % 7 == 3)
            sbuf[i][0] = 0;
        else
            snprintf(sbuf[i], sizeof(sbuf[i]), "tok%d%.*s", i, i % 23, "abcdefghijklmnopqrstuvw");
        strs[i] = sbuf[i];
    }
    gguf_writer_set_arr_str(w, "a.str", strs, N_STRS);
    gguf_writer_set_arr_str(w, "a.str_empty", strs, 0);
    const char *path = tmp_file("arrays.gguf");
    ok(gguf_writer_write(w, path, err, sizeof(err)) == STATUS_OK, "write arrays file");
    gguf_writer_free(w);

    struct gguf *g = open_ok(path, "arrays file");
    if (!g)
        return;
    for (size_t i = 0; i < n_arrs; i++) {
        enum gguf_type et;
        uint64_t n;
        const void *data;
        int st = gguf_get_arr(g, arrs[i].key, &et, &n, &data);
        int same = st == STATUS_OK && et == arrs[i].t && n == arrs[i].n;
        for (uint64_t j = 0; same && j < n; j++) {
            if (et == GGUF_TYPE_FLOAT32 || et == GGUF_TYPE_FLOAT64)
                same = gguf_arr_f64(et, data, j) == gguf_arr_f64(et, arrs[i].v, j);
            else
                same = gguf_arr_i64(et, data, j) == gguf_arr_i64(et, arrs[i].v, j);
        }
        ok(same, "array %s round-trips (%llu elements)", arrs[i].key, (unsigned long long)n);
    }
    ok(gguf_arr_f64(GGUF_TYPE_INT8, a_i8, 0) == -128.0 &&
           gguf_arr_i64(GGUF_TYPE_FLOAT32, a_f32, 0) == -1,
       "gguf_arr_f64 / gguf_arr_i64 convert across kinds");
    enum gguf_type et;
    uint64_t n;
    const void *data;
    ok(gguf_get_arr(g, "a.str", &et, &n, &data) == STATUS_OK && et == GGUF_TYPE_STRING &&
           n == N_STRS,
       "string array header");
    /* random access in a scrambled order (i*7919 mod 1000 visits every index once) */
    int bad = 0;
    for (int k = 0; k < N_STRS; k++) {
        int i = (k * 7919) % N_STRS;
        const char *s;
        size_t len;
        if (gguf_arr_str(g, "a.str", (uint64_t)i, &s, &len) != STATUS_OK ||
            len != strlen(strs[i]) || memcmp(s, strs[i], len) != 0)
            bad++;
    }
    ok(bad == 0, "gguf_arr_str random access to %d strings, empty ones included (%d bad)",
       N_STRS, bad);
    const char *s;
    size_t len;
    ok(gguf_arr_str(g, "a.str", N_STRS, &s, &len) == STATUS_INVALID, "index == count: INVALID");
    ok(gguf_arr_str(g, "a.u32", 0, &s, &len) == STATUS_FORMAT, "arr_str on numbers: FORMAT");
    ok(gguf_get_arr(g, "a.str_empty", &et, &n, &data) == STATUS_OK && n == 0 &&
           gguf_arr_str(g, "a.str_empty", 0, &s, &len) == STATUS_INVALID,
       "empty string array");
    ok(gguf_get_u32(g, "a.u32", &(uint32_t){ 0 }) == STATUS_FORMAT, "u32 of an array: FORMAT");
    gguf_close(g);
}

static void test_key_order(void)
{
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "b.count", 3);
    gguf_writer_set_i32(w, "c.signed", -5);
    gguf_writer_set_f32(w, "d.float", 0.5f);
    gguf_writer_set_bool(w, "e.flag", 1);
    gguf_writer_set_u32(w, "b.count", 4); /* replaced in place */
    gguf_writer_set_str(w, "c.signed", "now a string");
    const char *path = tmp_file("order.gguf");
    ok(gguf_writer_write(w, path, err, sizeof(err)) == STATUS_OK, "write order file");
    gguf_writer_free(w);
    struct gguf *g = open_ok(path, "order file");
    if (!g)
        return;
    static const char *order[] = { "general.architecture", "b.count", "c.signed", "d.float",
                                   "e.flag" };
    int same = gguf_n_kv(g) == 5;
    for (int i = 0; same && i < 5; i++) {
        size_t len;
        const char *k = gguf_key_at(g, i, &len);
        same = len == strlen(order[i]) && memcmp(k, order[i], len) == 0 &&
               gguf_find_key(g, order[i]) == i;
    }
    ok(same, "keys in insertion order; replacing a key keeps its place");
    uint32_t u = 0;
    int64_t i64 = 0;
    const char *s;
    size_t len;
    ok(gguf_get_u32(g, "b.count", &u) == STATUS_OK && u == 4, "replaced value");
    ok(gguf_get_str(g, "c.signed", &s, &len) == STATUS_OK && len == 12, "replaced type");
    ok(gguf_get_i64(g, "e.flag", &i64) == STATUS_OK && i64 == 1, "bool readable as integer");
    ok(gguf_kv_type(g, 4) == GGUF_TYPE_BOOL && gguf_kv_type(g, 3) == GGUF_TYPE_FLOAT32,
       "writer's value types");
    ok(gguf_n_tensors(g) == 0 && gguf_tensor_at(g, 0) == NULL && !gguf_find_tensor(g, "x"),
       "no tensors");
    gguf_close(g);
}

// ---- tensors -------------------------------------------------------------------------------

static void test_tensors(void)
{
    static const struct { const char *name; uint32_t type; int n_dims; int64_t ne[4]; } ts[] = {
        { "t.f32", QTYPE_F32, 2, { 7, 3 } },
        { "t.f16", QTYPE_F16, 3, { 5, 2, 3 } },
        { "t.bf16", QTYPE_BF16, 1, { 4 } },
        { "t.q4_0", QTYPE_Q4_0, 2, { 64, 3 } },
        { "t.q8_0", QTYPE_Q8_0, 4, { 32, 2, 2, 2 } },
        { "t.q5_1", QTYPE_Q5_1, 2, { 32, 5 } },
        { "t.q4_k", QTYPE_Q4_K, 2, { 256, 2 } },
        { "t.q6_k", QTYPE_Q6_K, 2, { 512, 1 } },
        { "blk.0.a_name_of_exactly_sixty_three_bytes_0123456789abcdef.w", QTYPE_F32, 1, { 8 } },
    };
    enum { NT = sizeof(ts) / sizeof(ts[0]) };
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "test");
    uint8_t *bufs[NT];
    size_t sizes[NT];
    uint32_t seed = 12345;
    for (int i = 0; i < NT; i++) {
        const struct quant_traits *tr = quant_traits_get(ts[i].type);
        size_t nb = (size_t)(ts[i].ne[0] / tr->blck) * (size_t)tr->size;
        for (int d = 1; d < ts[i].n_dims; d++)
            nb *= (size_t)ts[i].ne[d];
        sizes[i] = nb;
        bufs[i] = malloc(nb);
        for (size_t j = 0; j < nb; j++) {
            seed = seed * 1103515245u + 12345u;
            bufs[i][j] = (uint8_t)(seed >> 16);
        }
        ok(gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, bufs[i]) ==
               STATUS_OK,
           "add %s", ts[i].name);
    }
    ok(gguf_writer_add_tensor(w, "bad", QTYPE_Q4_0, 1, (int64_t[]){ 33 }, bufs[0]) != STATUS_OK,
       "writer refuses a row that is not whole blocks");
    const char *path = tmp_file("tensors.gguf");
    ok(gguf_writer_write(w, path, err, sizeof(err)) == STATUS_OK, "write tensors file");
    gguf_writer_free(w);

    struct gguf *g = open_ok(path, "tensors file");
    if (!g)
        goto out;
    ok(gguf_n_tensors(g) == NT && gguf_version(g) == 3 && strcmp(gguf_path(g), path) == 0,
       "%d tensors, version 3, path", NT);
    uint64_t expect_off = 0;
    for (int i = 0; i < NT; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        int same = t && strcmp(t->name, ts[i].name) == 0 && t->n_dims == ts[i].n_dims &&
                   t->type == ts[i].type && gguf_find_tensor(g, ts[i].name) == t;
        for (int d = 0; same && d < GGUF_MAX_DIMS; d++)
            same = t->ne[d] == (d < ts[i].n_dims ? ts[i].ne[d] : 1);
        ok(same, "%s: name, dims, type", ts[i].name);
        if (!t)
            continue;
        ok(t->nbytes == sizes[i] && t->offset == expect_off && t->offset % 32 == 0 &&
               (uintptr_t)t->data % 32 == 0,
           "%s: nbytes %zu, offset %llu, aligned", ts[i].name, t->nbytes,
           (unsigned long long)t->offset);
        ok(memcmp(t->data, bufs[i], sizes[i]) == 0, "%s: data round-trips", ts[i].name);
        expect_off += (sizes[i] + 31) / 32 * 32;
    }
    const struct gguf_tensor *last = gguf_tensor_at(g, NT - 1);
    ok(last && (const uint8_t *)last->data - (const uint8_t *)gguf_tensor_at(g, 0)->data +
                       (ptrdiff_t)last->nbytes <= (ptrdiff_t)gguf_file_size(g),
       "data section inside the file (%zu bytes)", gguf_file_size(g));
    ok(gguf_tensor_at(g, -1) == NULL && gguf_tensor_at(g, NT) == NULL &&
           gguf_find_tensor(g, "t.f3") == NULL,
       "out-of-range tensor lookups give NULL");
    gguf_close(g);
out:
    for (int i = 0; i < NT; i++)
        free(bufs[i]);
}

/* general.alignment other than 32: offsets and data start follow it. */
static void test_alignment(void)
{
    struct bb b = { 0 };
    bb_header(&b, 3, 2, 2);
    bb_kv_u32(&b, "general.alignment", 64);
    bb_kv_u32(&b, "x.pad", 1);
    bb_tensor(&b, "a", 1, (int64_t[]){ 4 }, QTYPE_F32, 0);
    bb_tensor(&b, "b", 1, (int64_t[]){ 8 }, QTYPE_F32, 64);
    bb_pad(&b, 64);
    bb_fill(&b, 64, 0x11);
    bb_fill(&b, 32, 0x22);
    const char *path = tmp_file("align64.gguf");
    bb_save(&b, path);
    free(b.p);
    struct gguf *g = open_ok(path, "alignment 64 file");
    if (g) {
        const struct gguf_tensor *t0 = gguf_tensor_at(g, 0), *t1 = gguf_tensor_at(g, 1);
        ok((uintptr_t)t0->data % 64 == 0 && (const uint8_t *)t1->data - (const uint8_t *)t0->data ==
               64 && ((const uint8_t *)t1->data)[0] == 0x22,
           "tensors at 64-byte alignment");
        gguf_close(g);
    }
}

// ---- malformed files -----------------------------------------------------------------------

/* A small valid file whose last tensor ends the file exactly (no trailing padding). */
static void make_small_valid(const char *path)
{
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 2);
    const char *toks[] = { "<unk>", "", "a" };
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    float fl[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint8_t q[68];
    memset(q, 0x3c, sizeof(q));
    gguf_writer_add_tensor(w, "q", QTYPE_Q8_0, 2, (int64_t[]){ 32, 2 }, q);
    gguf_writer_add_tensor(w, "f", QTYPE_F32, 1, (int64_t[]){ 8 }, fl);
    if (gguf_writer_write(w, path, err, sizeof(err)) != STATUS_OK) {
        printf("Bail out! %s\n", err);
        exit(99);
    }
    gguf_writer_free(w);
}

static void test_truncation(void)
{
    const char *full = tmp_file("small.gguf");
    make_small_valid(full);
    size_t n;
    char *data = testutil_read_file(full, &n);
    struct gguf *g = open_ok(full, "small valid file");
    gguf_close(g);
    const char *path = tmp_file("trunc.gguf");
    size_t bad = 0, first_bad = 0;
    for (size_t len = 0; len < n; len++) {
        testutil_write_file(path, data, len);
        err[0] = 0;
        g = NULL;
        int st = gguf_open(&g, path, err, sizeof(err));
        if (st >= 0 || g || !msg_ok(path)) {
            if (!bad++)
                first_bad = len;
            gguf_close(g);
        }
    }
    ok(bad == 0, "every one of the %zu proper prefixes is rejected with a message (%zu bad, "
       "first at %zu)", n, bad, first_bad);
    free(data);
}

static void test_bad_headers(void)
{
    struct bb b = { 0 };
    expect_reject_path("a missing file", tmp_file("does-not-exist.gguf"));
    expect_reject_path("a directory", tmpdir);
    expect_reject("an empty file", &b);
    bb_put(&b, "This is a plain text file, long enough to hold a header.\n", 57);
    expect_reject("a text file", &b);
    bb_put(&b, "GGUE", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_reject("wrong magic", &b);
    bb_header(&b, 1, 0, 0);
    ok(expect_reject("version 1", &b) == STATUS_UNSUPPORTED, "version 1 is UNSUPPORTED");
    bb_header(&b, 4, 0, 0);
    expect_reject("version 4", &b);
    bb_header(&b, 0, 0, 0);
    expect_reject("version 0", &b);
    bb_header(&b, 0x03000000u, 0, 0);
    expect_reject("byte-swapped version", &b);
    bb_header(&b, 3, 0, (uint64_t)1 << 62);
    expect_reject("n_kv = 2^62", &b);
    bb_header(&b, 3, 0, UINT64_MAX);
    expect_reject("n_kv = -1", &b);
    bb_header(&b, 3, (uint64_t)1 << 62, 0);
    expect_reject("n_tensors = 2^62", &b);
    bb_header(&b, 3, ((uint64_t)1 << 63) + 1, 0);
    expect_reject("n_tensors negative", &b);
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "a", 1);
    expect_reject("fewer KVs than announced", &b);
}

static void test_bad_kv(void)
{
    struct bb b = { 0 };
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, (uint64_t)1 << 63);
    bb_put(&b, "key", 3);
    expect_reject("key length 2^63", &b);
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "s");
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, (uint64_t)1 << 63);
    bb_put(&b, "value", 5);
    expect_reject("string length 2^63", &b);
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "s");
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, 1000);
    bb_put(&b, "short", 5);
    expect_reject("string past end of file", &b);
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "", 1);
    expect_reject("empty key", &b);
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "t", 13, "\0\0\0\0", 4);
    expect_reject("unknown value type 13", &b);
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "dup", 1);
    bb_kv_u32(&b, "dup", 2);
    expect_reject("duplicate key", &b);

    static const struct { const char *label; uint32_t et; uint64_t n; } arr[] = {
        { "u8 array count 2^62", GGUF_TYPE_UINT8, (uint64_t)1 << 62 },
        { "u64 array count 2^61 (count x 8 overflows)", GGUF_TYPE_UINT64, (uint64_t)1 << 61 },
        { "string array count 2^40", GGUF_TYPE_STRING, (uint64_t)1 << 40 },
        { "string array count 1000 in a tiny file", GGUF_TYPE_STRING, 1000 },
        { "u32 array count past end", GGUF_TYPE_UINT32, 100 },
        { "nested array", GGUF_TYPE_ARRAY, 1 },
        { "unknown array element type", 99, 1 },
    };
    for (size_t i = 0; i < sizeof(arr) / sizeof(arr[0]); i++) {
        bb_header(&b, 3, 0, 1);
        bb_str(&b, "arr");
        bb_u32(&b, GGUF_TYPE_ARRAY);
        bb_u32(&b, arr[i].et);
        bb_u64(&b, arr[i].n);
        if (arr[i].et == GGUF_TYPE_ARRAY) { /* inner array: one u8 */
            bb_u32(&b, GGUF_TYPE_UINT8);
            bb_u64(&b, 1);
        }
        bb_fill(&b, 16, 1);
        expect_reject(arr[i].label, &b);
    }

    /* general.alignment: must be a u32 power of two */
    static const struct { const char *label; uint32_t type; uint64_t v; size_t n; } al[] = {
        { "alignment 0", GGUF_TYPE_UINT32, 0, 4 },
        { "alignment 48", GGUF_TYPE_UINT32, 48, 4 },
        { "alignment as u64", GGUF_TYPE_UINT64, 32, 8 },
        { "alignment as i32", GGUF_TYPE_INT32, 32, 4 },
    };
    for (size_t i = 0; i < sizeof(al) / sizeof(al[0]); i++) {
        bb_header(&b, 3, 1, 1);
        bb_kv(&b, "general.alignment", al[i].type, &al[i].v, al[i].n);
        bb_tensor(&b, "t", 1, (int64_t[]){ 8 }, QTYPE_F32, 0);
        bb_pad(&b, 64);
        bb_fill(&b, 64, 0);
        expect_reject(al[i].label, &b);
    }
}

/* One tensor info with the given fields, then padding and data_bytes of data. */
static void bad_tensor(const char *label, const char *name, uint32_t n_dims, const int64_t *ne,
                       uint32_t type, uint64_t offset, size_t data_bytes)
{
    struct bb b = { 0 };
    bb_header(&b, 3, 1, 1);
    bb_kv_u32(&b, "x", 1);
    bb_tensor(&b, name, n_dims, ne, type, offset);
    bb_pad(&b, 32);
    bb_fill(&b, data_bytes, 0);
    expect_reject(label, &b);
}

static void test_bad_tensors(void)
{
    static const int64_t ne8[] = { 8 }, big[] = { (int64_t)1 << 31, (int64_t)1 << 31,
                                                 (int64_t)1 << 31, (int64_t)1 << 31 };
    static const int64_t huge0[] = { (int64_t)1 << 62 }, neg[] = { -8 }, five[] = { 8, 1, 1, 1, 1 };
    bad_tensor("dims whose product overflows", "t", 4, big, QTYPE_F32, 0, 64);
    bad_tensor("ne0 x type size overflows", "t", 1, huge0, QTYPE_F32, 0, 64);
    bad_tensor("negative dimension", "t", 1, neg, QTYPE_F32, 0, 64);
    bad_tensor("n_dims 5", "t", 5, five, QTYPE_F32, 0, 64);
    bad_tensor("n_dims 0", "t", 0, ne8, QTYPE_F32, 0, 64);
    bad_tensor("removed type id 4", "t", 1, ne8, 4, 0, 64);
    bad_tensor("unknown type id 99", "t", 1, ne8, 99, 0, 64);
    bad_tensor("type id 2^32-1", "t", 1, ne8, UINT32_MAX, 0, 64);
    bad_tensor("q4_0 row of 33", "t", 1, (int64_t[]){ 33 }, QTYPE_Q4_0, 0, 64);
    bad_tensor("q4_K row of 128", "t", 1, (int64_t[]){ 128 }, QTYPE_Q4_K, 0, 256);
    bad_tensor("misaligned offset", "t", 1, ne8, QTYPE_F32, 8, 64);
    bad_tensor("offset past end", "t", 1, ne8, QTYPE_F32, 1 << 20, 64);
    bad_tensor("offset 2^63", "t", 1, ne8, QTYPE_F32, (uint64_t)1 << 63, 64);
    bad_tensor("data runs past end", "t", 2, (int64_t[]){ 8, 1000 }, QTYPE_F32, 0, 64);
    bad_tensor("empty tensor name", "", 1, ne8, QTYPE_F32, 0, 64);
    bad_tensor("tensor name of 64 bytes",
               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1, ne8,
               QTYPE_F32, 0, 64);

    struct bb b = { 0 };
    bb_header(&b, 3, 1, 0);
    bb_u64(&b, 3);
    bb_put(&b, "a\0b", 3);
    bb_u32(&b, 1);
    bb_u64(&b, 8);
    bb_u32(&b, QTYPE_F32);
    bb_u64(&b, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 32, 0);
    expect_reject("tensor name with a NUL byte", &b);

    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "same", 1, ne8, QTYPE_F32, 0);
    bb_tensor(&b, "same", 1, ne8, QTYPE_F32, 32);
    bb_pad(&b, 32);
    bb_fill(&b, 64, 0);
    expect_reject("duplicate tensor name", &b);

    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "t", 1, ne8, QTYPE_F32, 0);
    bb_fill(&b, 16, 0); /* the second info is cut short */
    expect_reject("truncated second tensor info", &b);
}

// ---- real vocab files ----------------------------------------------------------------------

static void test_vocab_files(void)
{
    char dir[4096], path[4096];
    testutil_path(dir, sizeof(dir), testutil_testdata(), "vocab");
    DIR *d = opendir(dir);
    if (!d) {
        skip("no vocab directory at $KF_TESTDATA/vocab");
        return;
    }
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".gguf") != 0)
            continue;
        seen++;
        testutil_path(path, sizeof(path), dir, e->d_name);
        struct gguf *g = open_ok(path, e->d_name);
        if (!g)
            continue;
        enum gguf_type et;
        uint64_t n = 0;
        const void *data;
        const char *s, *m = "";
        size_t len, mlen = 0;
        /* (the checks run before ok() so that its arguments see their results) */
        int good = gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data) == STATUS_OK &&
                   et == GGUF_TYPE_STRING && n >= 1000 && n <= 300000 &&
                   gguf_arr_str(g, "tokenizer.ggml.tokens", n - 1, &s, &len) == STATUS_OK &&
                   gguf_get_str(g, "tokenizer.ggml.model", &m, &mlen) == STATUS_OK;
        ok(good, "%s: %llu tokens, model %.*s", e->d_name, (unsigned long long)n, (int)mlen, m);
        gguf_close(g);
    }
    closedir(d);
    if (!seen)
        skip("no .gguf files in the vocab directory");
}

// ---- kfchat-mkmodel round trip ------------------------------------------------------------

static char mk_prog[4096];
static const char *mk_vocab;

#define MK_VOCAB_N 320

/* A small SPM-style vocab, plus keys that must NOT be copied (general.*). */
static const char *mk_make_vocab(void)
{
    static char toks[MK_VOCAB_N][16];
    const char *tp[MK_VOCAB_N];
    float scores[MK_VOCAB_N];
    int32_t types[MK_VOCAB_N];
    for (int i = 0; i < MK_VOCAB_N; i++) {
        if (i < 3)
            snprintf(toks[i], sizeof(toks[i]), "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(toks[i], sizeof(toks[i]), "<0x%02X>", i - 3);
        else
            snprintf(toks[i], sizeof(toks[i]), "\xe2\x96\x81w%d", i);
        tp[i] = toks[i];
        scores[i] = -(float)i;
        types[i] = i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "vocab");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tp, MK_VOCAB_N);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, MK_VOCAB_N);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, MK_VOCAB_N);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_str(w, "tokenizer.chat_template", "{{ messages }}");
    const char *path = tmp_file("vocab.gguf");
    if (gguf_writer_write(w, path, err, sizeof(err)) != STATUS_OK)
        path = NULL;
    gguf_writer_free(w);
    return path;
}

/* Run kfchat-mkmodel with args (NULL-terminated); output (both streams) into *log. */
static int mk_run(const char *const *args, char **log)
{
    char *argv[48];
    int n = 0;
    argv[n++] = mk_prog;
    for (; *args && n < 47; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    const char *lp = tmp_file("mk.log");
    unlink(lp);
    int st = testutil_run(argv, lp);
    *log = testutil_read_file(lp, NULL);
    if (!*log)
        *log = strdup("");
    return st;
}

static int one_line(const char *s, const char *prefix)
{
    size_t n = strlen(s);
    return n > 1 && s[n - 1] == '\n' && !memchr(s, '\n', n - 1) &&
           strncmp(s, prefix, strlen(prefix)) == 0;
}

struct mk_case {
    const char *arch, *type;
    int64_t embd, layers, heads, kv, ff, head_dim; /* head_dim 0: embd/heads, not given */
    int tied;                                      /* -1: the arch's default */
    int swa_pattern;                               /* 0: not given */
};

static const struct { const char *name; uint32_t base, ftype; } mk_types[] = {
    { "f32", QTYPE_F32, 0 },    { "f16", QTYPE_F16, 1 },    { "bf16", QTYPE_BF16, 32 },
    { "q4_0", QTYPE_Q4_0, 2 },  { "q4_1", QTYPE_Q4_1, 3 },  { "q5_0", QTYPE_Q5_0, 8 },
    { "q5_1", QTYPE_Q5_1, 9 },  { "q8_0", QTYPE_Q8_0, 7 },  { "q2_k", QTYPE_Q2_K, 10 },
    { "q3_k", QTYPE_Q3_K, 11 }, { "q4_k", QTYPE_Q4_K, 14 }, { "q5_k", QTYPE_Q5_K, 16 },
    { "q6_k", QTYPE_Q6_K, 18 }, { "q4_k_m", QTYPE_Q4_K, 15 },
};
enum { MK_NTYPES = sizeof(mk_types) / sizeof(mk_types[0]) };

enum mk_kind { MK_VEC, MK_MAT, MK_EMBD, MK_OUT, MK_V, MK_DOWN };

/* Expected type per engine-reference 2.8 (restated here, independently of mkmodel.c). */
static uint32_t mk_expect_type(const struct mk_case *c, int ti, enum mk_kind k, int64_t layer,
                               int64_t ne0, int tied)
{
    if (k == MK_VEC)
        return QTYPE_F32;
    uint32_t t = mk_types[ti].base;
    int64_t n = c->layers;
    int more = layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
    if (strcmp(c->type, "q4_k_m") == 0 &&
        (k == MK_OUT || (k == MK_EMBD && tied) || ((k == MK_V || k == MK_DOWN) && more)))
        t = QTYPE_Q6_K;
    if (ne0 % quant_traits_get(t)->blck == 0)
        return t;
    t = t == QTYPE_Q4_K ? QTYPE_Q5_0 : t == QTYPE_Q5_K ? QTYPE_Q5_1 : t == QTYPE_Q6_K ? QTYPE_Q8_0
        : (t == QTYPE_Q2_K || t == QTYPE_Q3_K) ? QTYPE_Q4_0 : t;
    return ne0 % quant_traits_get(t)->blck == 0 ? t : QTYPE_F16;
}

struct mk_expect {
    char name[64];
    int64_t ne0, ne1; /* ne1 0: 1-D */
    uint32_t type;
};

/* The tensor list llama.cpp expects for c, in file order. */
static int mk_expect_tensors(const struct mk_case *c, int ti, int tied, struct mk_expect *x)
{
    int64_t E = c->embd, hd = c->head_dim ? c->head_dim : c->embd / c->heads;
    int64_t Q = c->heads * hd, KV = c->kv * hd, F = c->ff, V = MK_VOCAB_N;
    int is_qwen = strcmp(c->arch, "qwen2") == 0, is_gemma = strcmp(c->arch, "gemma3") == 0;
    struct { const char *n; int64_t ne0, ne1; enum mk_kind k; int when; } L[] = {
        /* when: 0 all, 1 qwen2 only, 2 gemma3 only */
        { "attn_norm.weight", E, 0, MK_VEC, 0 },     { "attn_q.weight", E, Q, MK_MAT, 0 },
        { "attn_q.bias", Q, 0, MK_VEC, 1 },          { "attn_k.weight", E, KV, MK_MAT, 0 },
        { "attn_k.bias", KV, 0, MK_VEC, 1 },         { "attn_v.weight", E, KV, MK_V, 0 },
        { "attn_v.bias", KV, 0, MK_VEC, 1 },         { "attn_q_norm.weight", hd, 0, MK_VEC, 2 },
        { "attn_k_norm.weight", hd, 0, MK_VEC, 2 },  { "attn_output.weight", Q, E, MK_MAT, 0 },
        { "post_attention_norm.weight", E, 0, MK_VEC, 2 },
        { "ffn_norm.weight", E, 0, MK_VEC, 0 },      { "ffn_gate.weight", E, F, MK_MAT, 0 },
        { "ffn_up.weight", E, F, MK_MAT, 0 },        { "ffn_down.weight", F, E, MK_DOWN, 0 },
        { "post_ffw_norm.weight", E, 0, MK_VEC, 2 },
    };
    int n = 0;
    snprintf(x[n].name, 64, "token_embd.weight");
    x[n].ne0 = E, x[n].ne1 = V, x[n].type = mk_expect_type(c, ti, MK_EMBD, 0, E, tied), n++;
    for (int64_t l = 0; l < c->layers; l++)
        for (size_t i = 0; i < sizeof(L) / sizeof(L[0]); i++) {
            if ((L[i].when == 1 && !is_qwen) || (L[i].when == 2 && !is_gemma))
                continue;
            snprintf(x[n].name, 64, "blk.%lld.%s", (long long)l, L[i].n);
            x[n].ne0 = L[i].ne0, x[n].ne1 = L[i].ne1;
            x[n].type = mk_expect_type(c, ti, L[i].k, l, L[i].ne0, tied), n++;
        }
    snprintf(x[n].name, 64, "output_norm.weight");
    x[n].ne0 = E, x[n].ne1 = 0, x[n].type = QTYPE_F32, n++;
    if (!tied) {
        snprintf(x[n].name, 64, "output.weight");
        x[n].ne0 = E, x[n].ne1 = V, x[n].type = mk_expect_type(c, ti, MK_OUT, 0, E, tied), n++;
    }
    return n;
}

/* Key present with exactly this type (llama.cpp checks types strictly) and value. */
static int mk_key_u32(struct gguf *g, const char *arch, const char *suffix, uint32_t v)
{
    char k[128];
    uint32_t got;
    snprintf(k, sizeof(k), "%s%s%s", arch ? arch : "", arch ? "." : "", suffix);
    int64_t i = gguf_find_key(g, k);
    int good = i >= 0 && gguf_kv_type(g, i) == GGUF_TYPE_UINT32 &&
               gguf_get_u32(g, k, &got) == STATUS_OK && got == v;
    if (!good)
        diag("key %s: expected u32 %u", k, v);
    return good;
}

static int mk_key_f32(struct gguf *g, const char *arch, const char *suffix, float v)
{
    char k[128];
    float got;
    snprintf(k, sizeof(k), "%s.%s", arch, suffix);
    int64_t i = gguf_find_key(g, k);
    int good = i >= 0 && gguf_kv_type(g, i) == GGUF_TYPE_FLOAT32 &&
               gguf_get_f32(g, k, &got) == STATUS_OK && got == v;
    if (!good)
        diag("key %s: expected f32 %g", k, v);
    return good;
}

static int mk_key_absent(struct gguf *g, const char *arch, const char *suffix)
{
    char k[128];
    snprintf(k, sizeof(k), "%s.%s", arch, suffix);
    if (gguf_find_key(g, k) >= 0)
        diag("key %s should be absent", k);
    return gguf_find_key(g, k) < 0;
}

static int mk_check_keys(struct gguf *g, const struct mk_case *c, int ti)
{
    const char *a = c->arch, *s;
    size_t len;
    int is_llama = strcmp(a, "llama") == 0, is_gemma = strcmp(a, "gemma3") == 0;
    int64_t hd = c->head_dim ? c->head_dim : c->embd / c->heads;
    uint64_t n;
    enum gguf_type et;
    const void *d;
    int good = gguf_get_str(g, "general.architecture", &s, &len) == STATUS_OK &&
               len == strlen(a) && memcmp(s, a, len) == 0;
    good &= gguf_get_str(g, "general.name", &s, &len) == STATUS_OK && len == 14 + strlen(a);
    good &= mk_key_u32(g, NULL, "general.file_type", mk_types[ti].ftype);
    good &= mk_key_u32(g, NULL, "general.quantization_version", 2);
    good &= mk_key_u32(g, a, "context_length", 2048);
    good &= mk_key_u32(g, a, "embedding_length", c->embd);
    good &= mk_key_u32(g, a, "block_count", c->layers);
    good &= mk_key_u32(g, a, "feed_forward_length", c->ff);
    good &= mk_key_u32(g, a, "attention.head_count", c->heads);
    good &= mk_key_u32(g, a, "attention.head_count_kv", c->kv);
    good &= mk_key_f32(g, a, "rope.freq_base", is_llama ? 10000.0f : 1000000.0f);
    good &= mk_key_f32(g, a, "attention.layer_norm_rms_epsilon", is_llama ? 1e-5f : 1e-6f);
    if (is_llama) {
        good &= mk_key_u32(g, a, "rope.dimension_count", hd);
        good &= mk_key_u32(g, a, "vocab_size", MK_VOCAB_N);
    } else {
        good &= mk_key_absent(g, a, "rope.dimension_count") && mk_key_absent(g, a, "vocab_size");
    }
    if (is_gemma || c->head_dim) {
        good &= mk_key_u32(g, a, "attention.key_length", hd);
        good &= mk_key_u32(g, a, "attention.value_length", hd);
    } else {
        good &= mk_key_absent(g, a, "attention.key_length");
    }
    if (is_gemma) {
        good &= mk_key_u32(g, a, "attention.sliding_window", 512);
        const char *pat = "attention.sliding_window_pattern";
        good &= c->swa_pattern ? mk_key_u32(g, a, pat, c->swa_pattern) : mk_key_absent(g, a, pat);
    }
    /* the tokenizer, verbatim */
    good &= gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &d) == STATUS_OK &&
            et == GGUF_TYPE_STRING && n == MK_VOCAB_N;
    good &= gguf_arr_str(g, "tokenizer.ggml.tokens", 300, &s, &len) == STATUS_OK && len == 7 &&
            memcmp(s, "\xe2\x96\x81w300", 7) == 0;
    good &= gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, &d) == STATUS_OK &&
            et == GGUF_TYPE_FLOAT32 && n == MK_VOCAB_N && gguf_arr_f64(et, d, 5) == -5.0;
    good &= mk_key_u32(g, NULL, "tokenizer.ggml.eos_token_id", 2);
    good &= gguf_get_str(g, "tokenizer.chat_template", &s, &len) == STATUS_OK && len == 14;
    good &= gguf_get_str(g, "tokenizer.ggml.model", &s, &len) == STATUS_OK && len == 5;
    return good;
}

/* Names, shapes, types and contents of every tensor. */
static int mk_check_tensors(struct gguf *g, const struct mk_case *c, int ti, int tied)
{
    static struct mk_expect x[1024];
    int n = mk_expect_tensors(c, ti, tied, x);
    int good = gguf_n_tensors(g) == n;
    if (!good)
        diag("%lld tensors, expected %d", (long long)gguf_n_tensors(g), n);
    for (int i = 0; good && i < n; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        if (strcmp(t->name, x[i].name) || t->n_dims != (x[i].ne1 ? 2 : 1) || t->ne[0] != x[i].ne0 ||
            t->ne[1] != (x[i].ne1 ? x[i].ne1 : 1) || t->type != x[i].type) {
            diag("tensor %d: %s [%lld, %lld] %s; expected %s [%lld, %lld] %s", i, t->name,
                 (long long)t->ne[0], (long long)t->ne[1], quant_traits_get(t->type)->name,
                 x[i].name, (long long)x[i].ne0, (long long)x[i].ne1,
                 quant_traits_get(x[i].type)->name);
            good = 0;
            break;
        }
        /* every element finite, not all zero; norm weights positive (gemma's include +1) */
        const struct quant_traits *tr = quant_traits_get(t->type);
        int64_t rows = t->ne[1], nz = 0, bad = 0;
        float *row = malloc((size_t)t->ne[0] * sizeof(float));
        int is_norm = strstr(t->name, "norm.weight") != NULL;
        for (int64_t r = 0; r < rows; r++) {
            tr->to_f32((const uint8_t *)t->data + (size_t)r * (t->nbytes / (size_t)rows), row,
                       t->ne[0]);
            for (int64_t e = 0; e < t->ne[0]; e++) {
                nz += row[e] != 0.0f;
                bad += !isfinite(row[e]) || (is_norm && row[e] <= 0.0f);
            }
        }
        free(row);
        if (bad || nz < t->ne[0] * rows / 2) {
            diag("%s: %lld bad values, %lld nonzero of %lld", t->name, (long long)bad,
                 (long long)nz, (long long)(t->ne[0] * rows));
            good = 0;
        }
    }
    return good;
}

static void mk_case_run(const struct mk_case *c, int ti)
{
    char emb[24], lay[24], hds[24], kvs[24], ffs[24], hdd[24], swp[24];
    const char *out = tmp_file("model.gguf");
    snprintf(emb, sizeof(emb), "%lld", (long long)c->embd);
    snprintf(lay, sizeof(lay), "%lld", (long long)c->layers);
    snprintf(hds, sizeof(hds), "%lld", (long long)c->heads);
    snprintf(kvs, sizeof(kvs), "%lld", (long long)c->kv);
    snprintf(ffs, sizeof(ffs), "%lld", (long long)c->ff);
    snprintf(hdd, sizeof(hdd), "%lld", (long long)c->head_dim);
    snprintf(swp, sizeof(swp), "%d", c->swa_pattern);
    const char *args[40] = { "--arch", c->arch, "--vocab", mk_vocab, "--embd", emb, "--layers",
                             lay, "--heads", hds, "--kv-heads", kvs, "--ff", ffs, "--type",
                             mk_types[ti].name, "-o", out };
    int na = 18;
    if (c->head_dim)
        args[na++] = "--head-dim", args[na++] = hdd;
    if (c->swa_pattern)
        args[na++] = "--swa-pattern", args[na++] = swp;
    if (c->tied >= 0)
        args[na++] = c->tied ? "--tied" : "--untied";
    args[na] = NULL;
    int tied = c->tied >= 0 ? c->tied : strcmp(c->arch, "llama") != 0;
    char *log;
    unlink(out);
    int st = mk_run(args, &log);
    struct gguf *g = NULL;
    int opened = st == 0 && gguf_open(&g, out, err, sizeof(err)) == STATUS_OK;
    ok(st == 0 && one_line(log, "wrote ") && opened, "mkmodel %s %s embd %lld: runs, re-opens",
       c->arch, mk_types[ti].name, (long long)c->embd);
    if (st != 0 || !opened)
        diag("exit %d: %s %s", st, log, opened ? "" : err);
    if (opened) {
        ok(mk_check_keys(g, c, ti), "  keys of %s %s", c->arch, mk_types[ti].name);
        ok(mk_check_tensors(g, c, ti, tied), "  tensors of %s %s", c->arch, mk_types[ti].name);
        gguf_close(g);
    }
    free(log);
}

/* Bytes of a file, for comparing two runs. */
static int mk_same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *pa = testutil_read_file(a, &na), *pb = testutil_read_file(b, &nb);
    int same = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return same;
}

static void mk_determinism(void)
{
    const char *a = tmp_file("det_a.gguf"), *b = tmp_file("det_b.gguf");
    const char *c = tmp_file("det_c.gguf");
    const char *base[] = { "--arch", "llama", "--vocab", mk_vocab, "--embd", "256", "--layers",
                           "2", "--heads", "4", "--ff", "512", "--type", "q4_k", NULL, NULL,
                           NULL, NULL, NULL };
    char *log;
    base[14] = "-o", base[15] = a, base[16] = "-t", base[17] = "1";
    int st = mk_run(base, &log);
    free(log);
    base[15] = b, base[17] = "2";
    st |= mk_run(base, &log);
    free(log);
    ok(st == 0 && mk_same_file(a, b), "same seed, 1 or 2 threads: identical files");
    base[15] = c, base[16] = "--seed", base[17] = "7";
    st = mk_run(base, &log);
    free(log);
    ok(st == 0 && !mk_same_file(a, c), "another seed: a different file");
}

static void mk_errors(void)
{
    const char *nov = tmp_file("novocab.gguf");
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_write(w, nov, err, sizeof(err));
    gguf_writer_free(w);
    const char *out = tmp_file("never.gguf");
#define MK_SHAPE "--embd", "256", "--layers", "2", "--heads", "4", "--ff", "512"
    const char *const cases[][24] = {
        { "--arch", "falcon", "--vocab", mk_vocab, MK_SHAPE, "--type", "f16", "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--type", "q7_k", "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, "--embd", "250", "--layers", "2", "--heads", "4",
          "--ff", "512", "--type", "f16", "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--kv-heads", "3", "--type", "f16",
          "-o", out, NULL },
        { "--arch", "llama", "--vocab", nov, MK_SHAPE, "--type", "f16", "-o", out, NULL },
        { "--arch", "llama", "--vocab", tmp_file("missing.gguf"), MK_SHAPE, "--type", "f16", "-o",
          out, NULL },
        { "--arch", "qwen2", "--vocab", mk_vocab, MK_SHAPE, "--head-dim", "32", "--type", "f16",
          "-o", out, NULL },
        { "--arch", "gemma3", "--vocab", mk_vocab, MK_SHAPE, "--untied", "--type", "f16", "-o",
          out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--swa", "128", "--type", "f16", "-o",
          out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--type", "f16", NULL },
        { "--arch", "llama", "--vocab", mk_vocab, "--embd", "abc", "--layers", "2", "--heads", "4",
          "--ff", "512", "--type", "f16", "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--head-dim", "33", "--type", "f16",
          "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--frobnicate", "--type", "f16", "-o",
          out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--type", NULL },
    };
#undef MK_SHAPE
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *log;
        int st = mk_run(cases[i], &log);
        ok(st == 1 && one_line(log, "kfchat-mkmodel: ") && !testutil_is_file(out),
           "mkmodel error case %zu: exit %d, %.*s", i, st, (int)strcspn(log, "\n"), log);
        free(log);
    }
    char *log;
    const char *help[] = { "--help", NULL }, *ver[] = { "--version", NULL };
    int st = mk_run(help, &log);
    ok(st == 0 && strstr(log, "Usage: kfchat-mkmodel"), "--help");
    free(log);
    st = mk_run(ver, &log);
    ok(st == 0 && one_line(log, "kfchat-mkmodel "), "--version: %.*s", (int)strcspn(log, "\n"),
       log);
    free(log);
}

static void test_mkmodel(void)
{
    testutil_path(mk_prog, sizeof(mk_prog), testutil_builddir(), "kfchat-mkmodel");
    if (!testutil_is_executable(mk_prog)) {
        skip("kfchat-mkmodel is not built");
        return;
    }
    mk_vocab = mk_make_vocab();
    if (!ok(mk_vocab != NULL, "write a small vocab for mkmodel"))
        return;
    static const char *archs[] = { "llama", "qwen2", "gemma3" };
    for (int a = 0; a < 3; a++)
        for (int ti = 0; ti < MK_NTYPES; ti++) {
            struct mk_case c = { archs[a], mk_types[ti].name, 256, 2, 4, 2, 512, 0, -1, 0 };
            mk_case_run(&c, ti);
        }
    /* rows that do not split into 256-blocks fall back; custom head sizes; tie overrides */
    static const struct mk_case more[] = {
        { "llama", "q4_k_m", 96, 3, 4, 2, 512, 0, -1, 0 },
        { "llama", "q2_k", 96, 1, 4, 4, 96, 0, 1, 0 },
        { "qwen2", "q4_k_m", 96, 9, 4, 1, 288, 0, 0, 0 },
        { "gemma3", "q4_k_m", 96, 3, 2, 1, 256, 32, -1, 3 },
        { "llama", "f16", 256, 2, 4, 2, 512, 48, -1, 0 },
        { "llama", "q8_0", 80, 1, 2, 1, 200, 0, -1, 0 },
    };
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
        int ti = 0;
        while (strcmp(mk_types[ti].name, more[i].type) != 0)
            ti++;
        mk_case_run(&more[i], ti);
    }
    mk_determinism();
    mk_errors();
}

int main(void)
{
    quant_init();
    tmpdir = testutil_tmpdir();
    test_scalars();
    test_arrays();
    test_key_order();
    test_tensors();
    test_alignment();
    test_truncation();
    test_bad_headers();
    test_bad_kv();
    test_bad_tensors();
    test_vocab_files();
    test_mkmodel();
    testutil_tmpdir_remove(tmpdir);
    return done_testing();
}
