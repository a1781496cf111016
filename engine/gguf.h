/*
 * gguf.h — a bounds-checked reader of GGUF v2/v3 files over mmap.
 *
 * File layout (all little-endian):
 *   magic "GGUF" | u32 version (2 or 3) | i64 n_tensors | i64 n_kv
 *   n_kv × { string key | u32 type | value }              string = u64 len + bytes (no NUL)
 *   n_tensors × { string name | u32 n_dims (≤4) | n_dims × i64 ne | u32 ggml type | u64 offset }
 *   padding to general.alignment (default 32, a power of two), then the tensor data section.
 *   An ARRAY value is u32 element type + u64 count + elements; arrays of arrays are rejected.
 *
 * gguf_open validates everything before anyone uses it: every length, count, dimension and
 * offset is checked against the file size (with overflow-safe arithmetic), keys and tensor names
 * must be unique, tensor data must lie inside the file.  After a successful open all accessors are
 * infallible lookups.  Pointers returned are borrowed from the mapping and valid until gguf_close.
 * Strings from the file are NOT NUL-terminated: they come with a length.
 */
#ifndef KF_GGUF_H
#define KF_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

#define GGUF_MAX_DIMS 4

struct gguf;

/* One tensor's description.  data points into the mapping; nbytes is its exact byte size. */
struct gguf_tensor {
    const char *name;          /* NUL-terminated copy */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] contiguous; missing dims are 1 */
    uint32_t type;             /* ggml type id (see quant.h enum qtype) */
    uint64_t offset;           /* relative to the data section */
    size_t nbytes;
    const void *data;
};

/*
 * Open and validate path.  On success *out owns the mapping; on failure *out is NULL, err holds
 * one line naming the file and the problem, and the status is STATUS_IO / STATUS_FORMAT /
 * STATUS_UNSUPPORTED / STATUS_NOMEM.  Tensor types are checked to be known ggml ids with a
 * nonzero block size (quant_traits); whether the engine can *compute* with them is the model's
 * business.
 */
int gguf_open(struct gguf **out, const char *path, char *err, size_t errlen);
void gguf_close(struct gguf *g);
/* Drop the mapping's pages from the process's resident set (madvise MADV_DONTNEED); whatever is
 * touched again is read back from the file.  For weights that now live elsewhere (on the GPU):
 * the file's pages stay in the page cache, which the kernel reclaims as it needs. */
void gguf_release_pages(const struct gguf *g);

uint32_t gguf_version(const struct gguf *g);
size_t gguf_file_size(const struct gguf *g);
const char *gguf_path(const struct gguf *g);

/* --- metadata ------------------------------------------------------------------------------ */
int64_t gguf_n_kv(const struct gguf *g);
int64_t gguf_find_key(const struct gguf *g, const char *key);  /* index or -1 */
const char *gguf_key_at(const struct gguf *g, int64_t i, size_t *len);
enum gguf_type gguf_kv_type(const struct gguf *g, int64_t i);

/*
 * Typed getters by key.  Return STATUS_OK, STATUS_NOT_FOUND if the key is absent, or
 * STATUS_FORMAT if it has an incompatible type (out untouched then).  Integer getters accept any
 * integer width whose value fits (llama.cpp writes u32 but others write i32/u64); the float getter
 * accepts F32 and F64; bool accepts BOOL (nonzero = true) and integers.
 */
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out);
int gguf_get_i64(const struct gguf *g, const char *key, int64_t *out);
int gguf_get_f32(const struct gguf *g, const char *key, float *out);
int gguf_get_bool(const struct gguf *g, const char *key, int *out);
int gguf_get_str(const struct gguf *g, const char *key, const char **s, size_t *len);

/*
 * Arrays.  gguf_get_arr gives the element type and count, and for non-string arrays a pointer to
 * the packed elements (possibly unaligned: read with memcpy or the helpers below).
 * gguf_arr_str returns element i of a string array in O(1).
 */
int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_type *elem_type, uint64_t *n,
                 const void **data);
int gguf_arr_str(const struct gguf *g, const char *key, uint64_t i, const char **s, size_t *len);
/* Element i of a numeric array as double / int64 (any numeric element type). */
double gguf_arr_f64(enum gguf_type elem_type, const void *data, uint64_t i);
int64_t gguf_arr_i64(enum gguf_type elem_type, const void *data, uint64_t i);

/* Raw access to a value for copying (gguf_write_copy_kv): the encoded value bytes after the type. */
int gguf_kv_raw(const struct gguf *g, int64_t i, const void **data, size_t *nbytes);

/* --- tensors ------------------------------------------------------------------------------- */
int64_t gguf_n_tensors(const struct gguf *g);
const struct gguf_tensor *gguf_tensor_at(const struct gguf *g, int64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name); /* or NULL */

/* Size in bytes of one element of a scalar GGUF type (0 for STRING/ARRAY). */
size_t gguf_type_size(enum gguf_type t);

#endif
