/*
 * tokenizer_impl.h — the inside of struct tokenizer, shared by tokenizer.c (loading, special
 * tokens, decoding), tokenizer_spm.c and tokenizer_bpe.c (the two model tokenizers).
 *
 * Strings are interned in one table (struct tokenizer_strtab): ids below n_vocab are the tokens,
 * ids from n_vocab up are strings that occur only in BPE merges (a merge of two pieces whose
 * concatenation is not itself a token), so that merging can run on integer ids throughout.
 */
#ifndef KF_TOKENIZER_IMPL_H
#define KF_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"
#include "unicode.h"

struct gguf;

/* Token attributes.  TOKEN_* follow tokenizer.ggml.token_type; the rest are derived. */
enum tokenizer_attr {
    TOKEN_NORMAL = 1u << 0,
    TOKEN_UNKNOWN = 1u << 1,
    TOKEN_CONTROL = 1u << 2,
    TOKEN_USER_DEFINED = 1u << 3,
    TOKEN_UNUSED = 1u << 4,
    TOKEN_BYTE = 1u << 5,
    TOKEN_UNDEFINED = 1u << 6,
    TOKEN_LSTRIP = 1u << 7, /* eat the spaces before it when splitting at special tokens */
    TOKEN_RSTRIP = 1u << 8, /* ... and after it */
    TOKEN_EOG = 1u << 9,
};

enum tokenizer_kind {
    TOKENIZER_SPM,
    TOKENIZER_BPE,
};

#define TOKENIZER_MAX_RULES 8

/* An open-addressing hash set of byte strings, each identified by its insertion index. */
struct tokenizer_str {
    uint32_t off, len, hash; /* where it starts in blob, its length, its hash */
};

struct tokenizer_strtab {
    char *blob;                /* the strings, each followed by a NUL */
    size_t blob_len, blob_cap;
    struct tokenizer_str *str; /* (n) */
    size_t n, cap;
    int32_t *slots;            /* (mask + 1) ids, -1 = empty; kept at most half full */
    uint32_t mask;
};

/* BPE merge (left id, right id) → rank and the id of the concatenation. */
struct tokenizer_merge {
    uint64_t key;         /* left << 32 | right; UINT64_MAX = empty slot */
    int32_t rank;
    int32_t result;
};

struct tokenizer {
    enum tokenizer_kind kind;
    char model[16];                 /* "llama" / "gpt2" */
    int32_t n_vocab;
    struct tokenizer_strtab text;   /* [0, n_vocab): tokens; above: merge-only strings */
    float *scores;                  /* (n_vocab) SPM merge priority */
    uint16_t *attr;                 /* (n_vocab) enum tokenizer_attr */

    int32_t bos, eos, eot, eom, unk;
    int add_bos, add_eos, add_space_prefix;

    int32_t *special;               /* special-token candidates, longest text first */
    int32_t n_special;

    /* SPM */
    int32_t byte_token[256];        /* byte fallback token for each byte value, -1 if none */

    /* BPE */
    enum unicode_rule rules[TOKENIZER_MAX_RULES]; /* the pre-tokenizer, applied in order */
    int n_rules;
    int ignore_merges;              /* a word that is a token is emitted whole (llama3) */
    int32_t byte_sym[256];          /* string id of each byte's GPT-2 alphabet char, -1 if none */
    struct tokenizer_merge *merges; /* (merge_mask + 1) */
    uint64_t merge_mask;
};

/* Where encoding goes: ids are stored while they fit and counted regardless. */
struct tokenizer_out {
    int32_t *buf;
    int64_t cap, n;
};

static inline void tokenizer_out_push(struct tokenizer_out *o, int32_t id)
{
    if (o->n < o->cap)
        o->buf[o->n] = id;
    o->n++;
}

/* The id of the string s[0..n) in the table, or -1. */
int32_t tokenizer_strtab_find(const struct tokenizer_strtab *st, const char *s, size_t n);
/* The id of s[0..n), added if absent.  0 or STATUS_NOMEM. */
int tokenizer_strtab_intern(struct tokenizer_strtab *st, const char *s, size_t n, int32_t *id);

/* The id of a token (not a merge-only string) with text s[0..n), or -1. */
static inline int32_t tokenizer_token_id(const struct tokenizer *t, const char *s, size_t n)
{
    int32_t id = tokenizer_strtab_find(&t->text, s, n);
    return id < t->n_vocab ? id : -1;
}

/* (left, right) → merge entry, or NULL if the pair does not merge. */
const struct tokenizer_merge *tokenizer_merge_find(const struct tokenizer *t, int32_t left,
                                                   int32_t right);

/* SPM: encode one fragment of raw text, with a leading space if prefix_space. */
int tokenizer_spm_encode(const struct tokenizer *t, const char *text, size_t len,
                         int prefix_space, struct tokenizer_out *out);

/* BPE: load tokenizer.ggml.merges and the byte alphabet's ids (after the tokens). */
int tokenizer_bpe_load(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen);
/* BPE: select the pre-tokenizer named pre (NULL: "default") and its flags; STATUS_UNSUPPORTED
 * for a name we do not know. */
int tokenizer_bpe_set_pre(struct tokenizer *t, const char *pre, size_t pre_len);
/* BPE: encode one fragment of raw text. */
int tokenizer_bpe_encode(const struct tokenizer *t, const char *text, size_t len,
                         struct tokenizer_out *out);

#endif
