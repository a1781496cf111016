/*
 * gguf_write.c — GGUF v3 writer used by kfchat-mkmodel and the tests.
 *
 * Everything is accumulated in memory (keys as encoded bytes, tensors as copies) and written in
 * one pass to a temporary file that is renamed over the target only after fsync, so an
 * interrupted write never leaves a half-written model behind.  Allocation failures abort: this
 * is a tool path, not the chat's.
 */
#include "config.h"
#include "gguf_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant.h"
#include "status.h"

#define ALIGNMENT 32

struct buf {
    uint8_t *p;
    size_t n, cap;
};

struct wkv {
    char *key;
    struct buf val; /* type (u32) + encoded value */
};

struct wtensor {
    char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    void *data;
    size_t nbytes;
};

struct gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "kfchat: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

static void buf_put(struct buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void buf_u32(struct buf *b, uint32_t v)
{
    buf_put(b, &v, 4);
}

static void buf_u64(struct buf *b, uint64_t v)
{
    buf_put(b, &v, 8);
}

static void buf_str(struct buf *b, const char *s, size_t len)
{
    buf_u64(b, len);
    buf_put(b, s, len);
}

struct gguf_writer *gguf_writer_new(void)
{
    struct gguf_writer *w = calloc(1, sizeof(*w));
    if (!w)
        abort();
    return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* The value buffer for key, emptied; a new entry at the end if the key is new. */
static struct buf *kv_slot(struct gguf_writer *w, const char *key, size_t key_len)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (strlen(w->kv[i].key) == key_len && memcmp(w->kv[i].key, key, key_len) == 0) {
            w->kv[i].val.n = 0;
            return &w->kv[i].val;
        }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv * 2 + 16;
        w->kv = xrealloc(w->kv, w->cap_kv * sizeof(*w->kv));
    }
    struct wkv *kv = &w->kv[w->n_kv++];
    kv->key = xrealloc(NULL, key_len + 1);
    memcpy(kv->key, key, key_len);
    kv->key[key_len] = 0;
    memset(&kv->val, 0, sizeof(kv->val));
    return &kv->val;
}

static void set_scalar(struct gguf_writer *w, const char *key, enum gguf_type t, const void *v)
{
    struct buf *b = kv_slot(w, key, strlen(key));
    buf_u32(b, t);
    buf_put(b, v, gguf_type_size(t));
}

void gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    set_scalar(w, key, GGUF_TYPE_UINT32, &v);
}

void gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    set_scalar(w, key, GGUF_TYPE_INT32, &v);
}

void gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    set_scalar(w, key, GGUF_TYPE_FLOAT32, &v);
}

void gguf_writer_set_bool(struct gguf_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    set_scalar(w, key, GGUF_TYPE_BOOL, &b);
}

void gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *s)
{
    struct buf *b = kv_slot(w, key, strlen(key));
    buf_u32(b, GGUF_TYPE_STRING);
    buf_str(b, s, strlen(s));
}

void gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_type t,
                         const void *data, uint64_t n)
{
    struct buf *b = kv_slot(w, key, strlen(key));
    buf_u32(b, GGUF_TYPE_ARRAY);
    buf_u32(b, t);
    buf_u64(b, n);
    buf_put(b, data, (size_t)n * gguf_type_size(t));
}

void gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *s,
                             uint64_t n)
{
    struct buf *b = kv_slot(w, key, strlen(key));
    buf_u32(b, GGUF_TYPE_ARRAY);
    buf_u32(b, GGUF_TYPE_STRING);
    buf_u64(b, n);
    for (uint64_t i = 0; i < n; i++)
        buf_str(b, s[i], strlen(s[i]));
}

void gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf *src, int64_t i)
{
    size_t klen, n;
    const char *key = gguf_key_at(src, i, &klen);
    const void *raw;
    if (gguf_kv_raw(src, i, &raw, &n) != STATUS_OK)
        return;
    struct buf *b = kv_slot(w, key, klen);
    buf_u32(b, gguf_kv_type(src, i));
    buf_put(b, raw, n);
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
                           const int64_t *ne, const void *data)
{
    const struct quant_traits *tr = quant_traits_get(type);
    if (!tr || n_dims < 1 || n_dims > GGUF_MAX_DIMS || ne[0] % tr->blck)
        return STATUS_INVALID;
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t * 2 + 16;
        w->t = xrealloc(w->t, w->cap_t * sizeof(*w->t));
    }
    struct wtensor *t = &w->t[w->n_t++];
    t->name = xrealloc(NULL, strlen(name) + 1);
    strcpy(t->name, name);
    t->type = type;
    t->n_dims = n_dims;
    size_t nbytes = quant_row_size(type, ne[0]);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        if (d > 0)
            nbytes *= (size_t)t->ne[d];
    }
    t->nbytes = nbytes;
    t->data = xrealloc(NULL, nbytes);
    memcpy(t->data, data, nbytes);
    return STATUS_OK;
}

static size_t pad_to(size_t n)
{
    return (n + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
}

int gguf_writer_write(struct gguf_writer *w, const char *path, char *err, size_t errlen)
{
    struct buf h = { 0 };
    buf_u32(&h, 0x46554747u);
    buf_u32(&h, 3);
    buf_u64(&h, w->n_t);
    buf_u64(&h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        buf_put(&h, w->kv[i].val.p, w->kv[i].val.n);
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        struct wtensor *t = &w->t[i];
        buf_str(&h, t->name, strlen(t->name));
        buf_u32(&h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            buf_u64(&h, (uint64_t)t->ne[d]);
        buf_u32(&h, t->type);
        buf_u64(&h, off);
        off += pad_to(t->nbytes);
    }
    static const uint8_t zeros[ALIGNMENT];
    if (w->n_t)
        buf_put(&h, zeros, pad_to(h.n) - h.n);

    size_t plen = strlen(path);
    char *tmp = xrealloc(NULL, plen + 16);
    snprintf(tmp, plen + 16, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    int st = STATUS_OK;
    if (!f) {
        st = status_set(err, errlen, STATUS_IO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    int ok = fwrite(h.p, 1, h.n, f) == h.n;
    for (size_t i = 0; ok && i < w->n_t; i++) {
        struct wtensor *t = &w->t[i];
        ok = fwrite(t->data, 1, t->nbytes, f) == t->nbytes &&
             fwrite(zeros, 1, pad_to(t->nbytes) - t->nbytes, f) == pad_to(t->nbytes) - t->nbytes;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        st = status_set(err, errlen, STATUS_IO, "%s: write failed: %s", path, strerror(e));
    }
out:
    free(tmp);
    free(h.p);
    return st;
}
