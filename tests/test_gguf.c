/*
 * test_gguf.c — the GGUF reader (engine/gguf.c) against files made by the writer and by hand,
 * and the real vocab files (kfchat-mkmodel's output: test_mkmodel.c).
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

static const char *tmp_file(const char *name)
{
    return testutil_tmp_file(tmpdir, name);
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
    size_t n = 0;
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
    testutil_tmpdir_remove(tmpdir);
    return done_testing();
}
