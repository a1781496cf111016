/*
 * gguf_write.h — build a GGUF v3 file in memory and write it out (kfchat-mkmodel, tests).
 *
 * Keys and tensors are written in the order they were added; tensor data is copied at add
 * time and laid out at general.alignment (32) with zero padding, as llama.cpp requires.
 * Setting a key twice replaces its value (keeps its position).
 */
#ifndef KF_GGUF_WRITE_H
#define KF_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

struct gguf_writer;

struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w);

void gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(struct gguf_writer *w, const char *key, int v);
void gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *s);
/* Array of n numeric elements of type t, copied from data (packed, native little-endian). */
void gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_type t,
                         const void *data, uint64_t n);
void gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *s,
                             uint64_t n);
/* Copy key i of src (any type, arrays included) verbatim. */
void gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf *src, int64_t i);

/* Add a tensor; data holds exactly the tensor's byte size for ggml type `type`. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
                           const int64_t *ne, const void *data);

/* Write to path (atomically: a temp file renamed into place).  0 or a status with err set. */
int gguf_writer_write(struct gguf_writer *w, const char *path, char *err, size_t errlen);

#endif
