/*
 * unicode.h — the Unicode facts the tokenizer needs: UTF-8 coding, code point classes (what regex
 * \p{L} \p{N} \p{P} \s test), GPT-2's byte-level alphabet, and the pre-tokenizer "regexes" of
 * byte-level BPE, hand-coded as matchers over code points.
 *
 * Everything here follows llama.cpp's src/unicode.cpp semantics, including its quirks, because
 * the token ids a model expects are the ones llama.cpp's tokenizer produced when the model's
 * tests were generated:
 *   - invalid UTF-8 decodes to U+FFFD one byte at a time (overlong forms and surrogates are
 *     accepted, as there);
 *   - \s is the Unicode White_Space property; classes come from the general category, with
 *     unassigned code points in a class of their own;
 *   - a pre-tokenizer rule re-splits pieces: each match becomes a piece and so does every run
 *     of text between matches (nothing is dropped), like std::regex_iterator over each piece.
 *
 * All functions are pure; the only data are const tables (unicode_data.h).
 */
#ifndef KF_UNICODE_H
#define KF_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Code point class: the general category's major class.  Stored in the low 3 bits of a flags
 * byte; UNICODE_WHITESPACE is or'ed in for White_Space code points. */
enum unicode_class {
    UNICODE_UNASSIGNED = 0,
    UNICODE_LETTER = 1,    /* \p{L} */
    UNICODE_NUMBER = 2,    /* \p{N} */
    UNICODE_PUNCT = 3,     /* \p{P} */
    UNICODE_SYMBOL = 4,    /* \p{S} */
    UNICODE_MARK = 5,      /* \p{M} */
    UNICODE_SEPARATOR = 6, /* \p{Z} */
    UNICODE_CONTROL = 7,   /* \p{C} except unassigned */
};
#define UNICODE_CLASS_MASK 0x07u
#define UNICODE_WHITESPACE 0x08u /* \s */

/* Flags of cp: its enum unicode_class | UNICODE_WHITESPACE if \s matches it.  Code points past
 * U+10FFFF are UNICODE_UNASSIGNED. */
unsigned unicode_flags(uint32_t cp);

/* Byte length of the UTF-8 sequence that starts with lead byte b (1 for continuation and invalid
 * bytes), without validating what follows — SPM splits text into "characters" this way. */
size_t unicode_utf8_len(unsigned char b);

/*
 * Decode one code point from s (n > 0 bytes available); *used gets the bytes consumed.  An
 * invalid or truncated sequence yields U+FFFD and consumes one byte.
 */
uint32_t unicode_utf8_decode(const char *s, size_t n, size_t *used);

/* Encode cp (≤ U+10FFFF) into out (room for 4 bytes); returns the byte count. */
size_t unicode_utf8_encode(uint32_t cp, char *out);

/*
 * GPT-2's byte-level alphabet: every byte value stands for one printable code point.  Bytes
 * 0x21–0x7E, 0xA1–0xAC and 0xAE–0xFF stand for themselves; the other 68, in increasing order,
 * for U+0100, U+0101, ... (so ' ' is U+0120 'Ġ' and '\n' is U+010A 'Ċ').
 */
uint32_t unicode_byte_to_cpt(unsigned char b);
/* The inverse: the byte cp stands for, or -1 if cp is not in the alphabet. */
int unicode_cpt_to_byte(uint32_t cp);

/* --- pre-tokenizer splitting ------------------------------------------------------------- */

/*
 * One regex of a pre-tokenizer list.  C = 's|'t|'re|'ve|'m|'ll|'d ; Ci = the same, letters
 * matched case-insensitively.  The GPT2/LLAMA3/QWEN2 rules end with an implicit \s+ alternative,
 * as llama.cpp's hand-written matchers do (it changes no split).
 */
enum unicode_rule {
    UNICODE_RULE_GPT2,          /* C| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
    UNICODE_RULE_LLAMA3,        /* Ci|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
                                   \s*[\r\n]+|\s+(?!\S)|\s+ */
    UNICODE_RULE_QWEN2,         /* LLAMA3 with \p{N} (one digit) instead of \p{N}{1,3} */
    UNICODE_RULE_NUMBER,        /* \p{N} */
    UNICODE_RULE_NUMBERS,       /* \p{N}+ */
    UNICODE_RULE_DIGIT3,        /* [0-9][0-9][0-9] */
    UNICODE_RULE_PUNCT,         /* [\p{P}\$\+<=>\^~\|]+          (default pre-tokenizer) */
    UNICODE_RULE_PUNCT_FALCON,  /* [\p{P}\$\+<=>\^~\|`]+ */
    UNICODE_RULE_NEWLINE,       /* [\r\n] */
    UNICODE_RULE_SPACE_LETTERS, /* \s?\p{L}+ */
    UNICODE_RULE_SPACE_PUNCT,   /* \s?\p{P}+ */
    UNICODE_RULE_DSK_LETTERS,   /* \s?[A-Za-zµÀ-ÖØ-öø-ƺ...]+      (deepseek-llm's letter class) */
    UNICODE_RULE_DSK_PUNCT,     /* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
    UNICODE_RULE_TRAILING_SPACE, /* \s+$ */
    UNICODE_RULE_CJK,           /* [一-龥ࠀ-一가-퟿]+ */
};

/* The text being split: code points and their unicode_flags, computed once. */
struct unicode_text {
    const uint32_t *cpts;
    const uint8_t *flags;
    size_t n;
};

/* A partition of a unicode_text into consecutive pieces, as lengths in code points. */
struct unicode_pieces {
    size_t *len;
    size_t n, cap;
};

/* Append one piece of length len (ignored if 0).  0 or STATUS_NOMEM. */
int unicode_pieces_push(struct unicode_pieces *p, size_t len);
void unicode_pieces_free(struct unicode_pieces *p);

/*
 * Apply rule to every piece of in (which must partition text) and append the resulting pieces to
 * out (which is not cleared).  0 or STATUS_NOMEM.
 */
int unicode_split(enum unicode_rule rule, const struct unicode_text *text,
                  const struct unicode_pieces *in, struct unicode_pieces *out);

#endif
