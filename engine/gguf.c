/*
 * gguf.c — GGUF reader: maps the file, validates every byte it will ever hand out, and then
 * answers lookups.  The format is documented in gguf.h.
 *
 * Validation happens once, in gguf_open, with a cursor that refuses to move past the end of the
 * mapping and arithmetic that refuses to overflow; after that, accessors trust the parsed
 * tables.  A truncated or hostile file therefore fails with one line naming the file, the byte
 * offset and what was wrong, never with a crash.
 */
#include "config.h"
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"
#include "status.h"

#define GGUF_MAGIC 0x46554747u         /* "GGUF" read as u32 LE */
#define GGUF_MAX_LEN ((uint64_t)1 << 30) /* llama.cpp's limit for strings and array counts */
#define GGUF_MAX_NAME 64
#define GGUF_DEFAULT_ALIGNMENT 32

struct gguf_kv {
    const char *key;         /* into the mapping, not NUL-terminated */
    size_t key_len;
    enum gguf_type type;
    const uint8_t *val;      /* encoded value (for arrays: starting at the element type) */
    size_t val_bytes;
    /* arrays only */
    enum gguf_type elem_type;
    uint64_t n;
    const uint8_t *elems;    /* first element */
    uint64_t *str_offsets;   /* string arrays: offset of element i's u64 length from elems */
};

struct gguf {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version;
    uint32_t alignment;
    int64_t n_kv;
    struct gguf_kv *kv;
    int64_t n_tensors;
    struct gguf_tensor *tensors;
    char *names;             /* n_tensors × GGUF_MAX_NAME, NUL-terminated copies */
    size_t data_start;
};

/* A read cursor over the mapping that fails instead of overrunning it. */
struct cursor {
    const uint8_t *base;
    size_t off, size;
};

static int cur_need(const struct cursor *c, uint64_t n)
{
    return n <= c->size - c->off;
}

static int cur_read(struct cursor *c, void *dst, size_t n)
{
    if (!cur_need(c, n))
        return 0;
    memcpy(dst, c->base + c->off, n);
    c->off += n;
    return 1;
}

size_t gguf_type_size(enum gguf_type t)
{
    static const size_t sizes[GGUF_TYPE_COUNT] = {
        [GGUF_TYPE_UINT8] = 1,  [GGUF_TYPE_INT8] = 1,    [GGUF_TYPE_UINT16] = 2,
        [GGUF_TYPE_INT16] = 2,  [GGUF_TYPE_UINT32] = 4,  [GGUF_TYPE_INT32] = 4,
        [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,   [GGUF_TYPE_STRING] = 0,
        [GGUF_TYPE_ARRAY] = 0,  [GGUF_TYPE_UINT64] = 8,  [GGUF_TYPE_INT64] = 8,
        [GGUF_TYPE_FLOAT64] = 8,
    };
    return (unsigned)t < GGUF_TYPE_COUNT ? sizes[t] : 0;
}

static int fail(struct gguf *g, char *err, size_t errlen, int st, size_t off, const char *what)
{
    return status_set(err, errlen, st, "%s: %s (at byte %zu)", g->path, what, off);
}

/* Read a GGUF string: u64 length + bytes.  Returns 0 and sets *what on failure. */
static int read_str(struct cursor *c, const char **s, size_t *len, const char **what)
{
    uint64_t n;
    if (!cur_read(c, &n, 8)) {
        *what = "truncated string length";
        return 0;
    }
    if (n > GGUF_MAX_LEN || !cur_need(c, n)) {
        *what = n > GGUF_MAX_LEN ? "string length too large" : "string runs past end of file";
        return 0;
    }
    *s = (const char *)c->base + c->off;
    *len = (size_t)n;
    c->off += (size_t)n;
    return 1;
}

/* Skip over one value of type t (not ARRAY), checking bounds. */
static int skip_scalar(struct cursor *c, enum gguf_type t, const char **what)
{
    if (t == GGUF_TYPE_STRING) {
        const char *s;
        size_t len;
        return read_str(c, &s, &len, what);
    }
    size_t sz = gguf_type_size(t);
    if (!sz) {
        *what = "unknown value type";
        return 0;
    }
    if (!cur_need(c, sz)) {
        *what = "truncated value";
        return 0;
    }
    c->off += sz;
    return 1;
}

static int parse_kv(struct gguf *g, struct cursor *c, struct gguf_kv *kv, const char **what)
{
    uint32_t t;
    if (!read_str(c, &kv->key, &kv->key_len, what))
        return 0;
    if (kv->key_len == 0) {
        *what = "empty metadata key";
        return 0;
    }
    if (!cur_read(c, &t, 4)) {
        *what = "truncated value type";
        return 0;
    }
    if (t >= GGUF_TYPE_COUNT) {
        *what = "unknown value type";
        return 0;
    }
    kv->type = (enum gguf_type)t;
    kv->val = c->base + c->off;
    if (kv->type != GGUF_TYPE_ARRAY) {
        if (!skip_scalar(c, kv->type, what))
            return 0;
    } else {
        uint32_t et;
        uint64_t n;
        if (!cur_read(c, &et, 4) || !cur_read(c, &n, 8)) {
            *what = "truncated array header";
            return 0;
        }
        if (et >= GGUF_TYPE_COUNT || et == GGUF_TYPE_ARRAY) {
            *what = et == GGUF_TYPE_ARRAY ? "nested arrays are not supported"
                                          : "unknown array element type";
            return 0;
        }
        if (n > GGUF_MAX_LEN) {
            *what = "array too long";
            return 0;
        }
        kv->elem_type = (enum gguf_type)et;
        kv->n = n;
        kv->elems = c->base + c->off;
        if (et == GGUF_TYPE_STRING) {
            /* each string needs at least its 8-byte length: reject absurd counts before malloc */
            if (!cur_need(c, n * 8)) {
                *what = "array runs past end of file";
                return 0;
            }
            kv->str_offsets = malloc((n ? n : 1) * sizeof(uint64_t));
            if (!kv->str_offsets) {
                *what = "out of memory";
                return 0;
            }
            for (uint64_t i = 0; i < n; i++) {
                kv->str_offsets[i] = (uint64_t)(c->base + c->off - kv->elems);
                if (!skip_scalar(c, GGUF_TYPE_STRING, what))
                    return 0;
            }
        } else {
            size_t sz = gguf_type_size(kv->elem_type);
            if (n > (c->size - c->off) / sz) {
                *what = "array runs past end of file";
                return 0;
            }
            c->off += (size_t)(n * sz);
        }
    }
    kv->val_bytes = (size_t)(c->base + c->off - kv->val);
    (void)g;
    return 1;
}

static int key_eq(const struct gguf_kv *kv, const char *key, size_t len)
{
    return kv->key_len == len && memcmp(kv->key, key, len) == 0;
}

/* Multiply with overflow detection: 0 on overflow. */
static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

static int parse_tensor(struct gguf *g, struct cursor *c, int64_t i, const char **what)
{
    struct gguf_tensor *t = &g->tensors[i];
    const char *name;
    size_t len;
    uint32_t n_dims, type;
    if (!read_str(c, &name, &len, what))
        return 0;
    if (len == 0 || len >= GGUF_MAX_NAME) {
        *what = len ? "tensor name longer than 63 bytes" : "empty tensor name";
        return 0;
    }
    char *dst = g->names + (size_t)i * GGUF_MAX_NAME;
    memcpy(dst, name, len);
    dst[len] = 0;
    if (strlen(dst) != len) {
        *what = "tensor name contains a NUL byte";
        return 0;
    }
    t->name = dst;
    if (!cur_read(c, &n_dims, 4)) {
        *what = "truncated tensor info";
        return 0;
    }
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) {
        *what = "tensor has an invalid number of dimensions";
        return 0;
    }
    t->n_dims = (int)n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (!cur_read(c, &t->ne[d], 8)) {
            *what = "truncated tensor dimensions";
            return 0;
        }
        if (t->ne[d] < 0) {
            *what = "negative tensor dimension";
            return 0;
        }
    }
    if (!cur_read(c, &type, 4) || !cur_read(c, &t->offset, 8)) {
        *what = "truncated tensor info";
        return 0;
    }
    const struct quant_traits *tr = quant_traits_get(type);
    if (!tr || tr->blck <= 0) {
        *what = "tensor has an unknown type id";
        return 0;
    }
    t->type = type;
    if (t->ne[0] % tr->blck) {
        *what = "tensor row length is not a multiple of its type's block size";
        return 0;
    }
    uint64_t nb = (uint64_t)(t->ne[0] / tr->blck);
    int okm = mul_ok(nb, (uint64_t)tr->size, &nb);
    for (int d = 1; d < GGUF_MAX_DIMS && okm; d++)
        okm = mul_ok(nb, (uint64_t)t->ne[d], &nb);
    if (!okm || nb > (uint64_t)SIZE_MAX / 2) {
        *what = "tensor dimensions overflow";
        return 0;
    }
    t->nbytes = (size_t)nb;
    return 1;
}

static int map_file(struct gguf *g, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return status_set(err, errlen, STATUS_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return status_set(err, errlen, STATUS_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return status_set(err, errlen, STATUS_IO, "%s: %s", path,
                          S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
    }
    g->size = (size_t)st.st_size;
    if (g->size < 24) {
        close(fd);
        return status_set(err, errlen, STATUS_FORMAT,
                          "%s: not a GGUF file (only %zu bytes)", path, g->size);
    }
    void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return status_set(err, errlen, STATUS_NOMEM, "%s: mmap failed: %s", path,
                          strerror(errno));
    g->map = m;
    return STATUS_OK;
}

static int parse(struct gguf *g, char *err, size_t errlen)
{
    struct cursor c = { g->map, 0, g->size };
    const char *what = NULL;
    uint32_t magic = 0;
    int64_t n_tensors = 0, n_kv = 0;
    cur_read(&c, &magic, 4);
    if (magic != GGUF_MAGIC)
        return status_set(err, errlen, STATUS_FORMAT, "%s: not a GGUF file (bad magic)", g->path);
    cur_read(&c, &g->version, 4);
    if (g->version == 1)
        return status_set(err, errlen, STATUS_UNSUPPORTED,
                          "%s: GGUF version 1 is no longer supported; re-convert the model",
                          g->path);
    if (g->version != 2 && g->version != 3)
        return status_set(err, errlen, STATUS_FORMAT, "%s: unsupported GGUF version %u%s",
                          g->path, g->version,
                          (g->version & 0xffff) == 0 ? " (wrong endianness?)" : "");
    cur_read(&c, &n_tensors, 8);
    cur_read(&c, &n_kv, 8);
    /* every KV needs >= 12 bytes and every tensor info >= 32: bound counts before allocating */
    if (n_kv < 0 || (uint64_t)n_kv > g->size / 12)
        return fail(g, err, errlen, STATUS_FORMAT, 16, "absurd metadata count");
    if (n_tensors < 0 || (uint64_t)n_tensors > g->size / 32)
        return fail(g, err, errlen, STATUS_FORMAT, 8, "absurd tensor count");
    g->n_kv = n_kv;
    g->n_tensors = n_tensors;
    g->kv = calloc((size_t)n_kv + 1, sizeof(*g->kv));
    g->tensors = calloc((size_t)n_tensors + 1, sizeof(*g->tensors));
    g->names = calloc((size_t)n_tensors + 1, GGUF_MAX_NAME);
    if (!g->kv || !g->tensors || !g->names)
        return status_set(err, errlen, STATUS_NOMEM, "%s: out of memory", g->path);

    for (int64_t i = 0; i < n_kv; i++) {
        size_t at = c.off;
        if (!parse_kv(g, &c, &g->kv[i], &what))
            return fail(g, err, errlen, STATUS_FORMAT, at, what);
        for (int64_t j = 0; j < i; j++)
            if (key_eq(&g->kv[j], g->kv[i].key, g->kv[i].key_len))
                return fail(g, err, errlen, STATUS_FORMAT, at, "duplicate metadata key");
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        if (g->kv[ai].type != GGUF_TYPE_UINT32)
            return fail(g, err, errlen, STATUS_FORMAT, 0, "general.alignment is not a u32");
        memcpy(&g->alignment, g->kv[ai].val, 4);
        if (g->alignment == 0 || (g->alignment & (g->alignment - 1)))
            return fail(g, err, errlen, STATUS_FORMAT, 0,
                        "general.alignment is not a power of two");
    }
    for (int64_t i = 0; i < n_tensors; i++) {
        size_t at = c.off;
        if (!parse_tensor(g, &c, i, &what))
            return fail(g, err, errlen, STATUS_FORMAT, at, what);
    }
    /* uniqueness of names: sort-free O(n^2) is fine for the few hundred tensors of a model */
    for (int64_t i = 0; i < n_tensors; i++)
        for (int64_t j = 0; j < i; j++)
            if (strcmp(g->tensors[i].name, g->tensors[j].name) == 0)
                return status_set(err, errlen, STATUS_FORMAT, "%s: duplicate tensor name '%s'",
                                  g->path, g->tensors[i].name);
    size_t ds = c.off;
    if (n_tensors > 0)
        ds = (c.off + g->alignment - 1) / g->alignment * g->alignment;
    g->data_start = ds;
    for (int64_t i = 0; i < n_tensors; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return status_set(err, errlen, STATUS_FORMAT,
                              "%s: tensor '%s' offset is not aligned", g->path, t->name);
        if (ds > g->size || t->offset > g->size - ds || t->nbytes > g->size - ds - t->offset)
            return status_set(err, errlen, STATUS_FORMAT,
                              "%s: tensor '%s' data lies past the end of the file "
                              "(file truncated? %zu bytes)",
                              g->path, t->name, g->size);
        t->data = g->map + ds + t->offset;
    }
    return STATUS_OK;
}

int gguf_open(struct gguf **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    struct gguf *g = calloc(1, sizeof(*g));
    if (!g)
        return status_set(err, errlen, STATUS_NOMEM, "out of memory");
    g->path = strdup(path);
    if (!g->path) {
        free(g);
        return status_set(err, errlen, STATUS_NOMEM, "out of memory");
    }
    int st = map_file(g, path, err, errlen);
    if (st == STATUS_OK)
        st = parse(g, err, errlen);
    if (st != STATUS_OK) {
        gguf_close(g);
        return st;
    }
    *out = g;
    return STATUS_OK;
}

void gguf_release_pages(const struct gguf *g)
{
    /* a read-only file mapping: dropped pages are re-read, never lost */
    if (g && g->map)
        (void)madvise((void *)g->map, g->size, MADV_DONTNEED);
}

void gguf_close(struct gguf *g)
{
    if (!g)
        return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].str_offsets);
    free(g->kv);
    free(g->tensors);
    free(g->names);
    if (g->map)
        munmap((void *)g->map, g->size);
    free(g->path);
    free(g);
}

uint32_t gguf_version(const struct gguf *g)
{
    return g->version;
}

size_t gguf_file_size(const struct gguf *g)
{
    return g->size;
}

const char *gguf_path(const struct gguf *g)
{
    return g->path;
}

int64_t gguf_n_kv(const struct gguf *g)
{
    return g->n_kv;
}

int64_t gguf_find_key(const struct gguf *g, const char *key)
{
    size_t len = strlen(key);
    for (int64_t i = 0; i < g->n_kv; i++)
        if (key_eq(&g->kv[i], key, len))
            return i;
    return -1;
}

const char *gguf_key_at(const struct gguf *g, int64_t i, size_t *len)
{
    *len = g->kv[i].key_len;
    return g->kv[i].key;
}

enum gguf_type gguf_kv_type(const struct gguf *g, int64_t i)
{
    return g->kv[i].type;
}

int gguf_kv_raw(const struct gguf *g, int64_t i, const void **data, size_t *nbytes)
{
    if (i < 0 || i >= g->n_kv)
        return STATUS_NOT_FOUND;
    *data = g->kv[i].val;
    *nbytes = g->kv[i].val_bytes;
    return STATUS_OK;
}

static int is_int_type(enum gguf_type t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_UINT16 ||
           t == GGUF_TYPE_INT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

int64_t gguf_arr_i64(enum gguf_type t, const void *data, uint64_t i)
{
    const uint8_t *p = (const uint8_t *)data + i * gguf_type_size(t);
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: return *p;
    case GGUF_TYPE_INT8: return (int8_t)*p;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_TYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); return (int64_t)v; }
    case GGUF_TYPE_FLOAT64: { double v; memcpy(&v, p, 8); return (int64_t)v; }
    default: return 0;
    }
}

double gguf_arr_f64(enum gguf_type t, const void *data, uint64_t i)
{
    const uint8_t *p = (const uint8_t *)data + i * gguf_type_size(t);
    if (t == GGUF_TYPE_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    if (t == GGUF_TYPE_FLOAT64) {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    if (t == GGUF_TYPE_UINT64) {
        uint64_t v;
        memcpy(&v, p, 8);
        return (double)v;
    }
    return (double)gguf_arr_i64(t, data, i);
}

/* Look up a scalar key: NOT_FOUND, or FORMAT if it is an array/string. */
static int scalar(const struct gguf *g, const char *key, const struct gguf_kv **kv)
{
    int64_t i = gguf_find_key(g, key);
    if (i < 0)
        return STATUS_NOT_FOUND;
    *kv = &g->kv[i];
    if ((*kv)->type == GGUF_TYPE_STRING || (*kv)->type == GGUF_TYPE_ARRAY)
        return STATUS_FORMAT;
    return STATUS_OK;
}

int gguf_get_i64(const struct gguf *g, const char *key, int64_t *out)
{
    const struct gguf_kv *kv;
    int st = scalar(g, key, &kv);
    if (st)
        return st;
    if (!is_int_type(kv->type) && kv->type != GGUF_TYPE_BOOL)
        return STATUS_FORMAT;
    if (kv->type == GGUF_TYPE_UINT64) {
        uint64_t v;
        memcpy(&v, kv->val, 8);
        if (v > INT64_MAX)
            return STATUS_FORMAT;
    }
    *out = gguf_arr_i64(kv->type, kv->val, 0);
    return STATUS_OK;
}

int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out)
{
    int64_t v;
    int st = gguf_get_i64(g, key, &v);
    if (st)
        return st;
    if (v < 0 || v > UINT32_MAX)
        return STATUS_FORMAT;
    *out = (uint32_t)v;
    return STATUS_OK;
}

int gguf_get_f32(const struct gguf *g, const char *key, float *out)
{
    const struct gguf_kv *kv;
    int st = scalar(g, key, &kv);
    if (st)
        return st;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)
        return STATUS_FORMAT;
    *out = (float)gguf_arr_f64(kv->type, kv->val, 0);
    return STATUS_OK;
}

int gguf_get_bool(const struct gguf *g, const char *key, int *out)
{
    const struct gguf_kv *kv;
    int st = scalar(g, key, &kv);
    if (st)
        return st;
    if (kv->type != GGUF_TYPE_BOOL && !is_int_type(kv->type))
        return STATUS_FORMAT;
    *out = gguf_arr_i64(kv->type, kv->val, 0) != 0;
    return STATUS_OK;
}

int gguf_get_str(const struct gguf *g, const char *key, const char **s, size_t *len)
{
    int64_t i = gguf_find_key(g, key);
    if (i < 0)
        return STATUS_NOT_FOUND;
    if (g->kv[i].type != GGUF_TYPE_STRING)
        return STATUS_FORMAT;
    uint64_t n;
    memcpy(&n, g->kv[i].val, 8);
    *s = (const char *)g->kv[i].val + 8;
    *len = (size_t)n;
    return STATUS_OK;
}

int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_type *elem_type, uint64_t *n,
                 const void **data)
{
    int64_t i = gguf_find_key(g, key);
    if (i < 0)
        return STATUS_NOT_FOUND;
    if (g->kv[i].type != GGUF_TYPE_ARRAY)
        return STATUS_FORMAT;
    *elem_type = g->kv[i].elem_type;
    *n = g->kv[i].n;
    *data = g->kv[i].elems;
    return STATUS_OK;
}

int gguf_arr_str(const struct gguf *g, const char *key, uint64_t i, const char **s, size_t *len)
{
    int64_t k = gguf_find_key(g, key);
    if (k < 0)
        return STATUS_NOT_FOUND;
    const struct gguf_kv *kv = &g->kv[k];
    if (kv->type != GGUF_TYPE_ARRAY || kv->elem_type != GGUF_TYPE_STRING)
        return STATUS_FORMAT;
    if (i >= kv->n)
        return STATUS_INVALID;
    const uint8_t *p = kv->elems + kv->str_offsets[i];
    uint64_t n;
    memcpy(&n, p, 8);
    *s = (const char *)p + 8;
    *len = (size_t)n;
    return STATUS_OK;
}

int64_t gguf_n_tensors(const struct gguf *g)
{
    return g->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}
