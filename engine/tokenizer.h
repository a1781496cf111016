/*
 * tokenizer.h — text ⇄ token ids for the vocabularies stored in GGUF files, reproducing
 * llama.cpp's tokenizer (src/llama-vocab.cpp) id for id.
 *
 * Two tokenizer models are supported, chosen by tokenizer.ggml.model:
 *   "llama" — SentencePiece BPE (SPM): score-ordered merges over UTF-8 characters, spaces
 *             written as U+2581, <0xXX> byte fallback (Llama 2, Mistral, Phi-3, Gemma, ...);
 *   "gpt2"  — byte-level BPE: a pre-tokenizer (tokenizer.ggml.pre) cuts the text into words,
 *             each word's bytes are spelled in GPT-2's byte alphabet and merged by merge rank
 *             (GPT-2, Llama 3, Qwen2, SmolLM, StarCoder, Falcon, DeepSeek, MPT, ...).
 *
 * Encoding first cuts the text at special tokens (CONTROL / USER_DEFINED / UNKNOWN tokens found
 * verbatim, longest first; CONTROL and UNKNOWN only when parse_special is set), then runs the
 * model tokenizer on the text between them.  Decoding maps ids back to bytes.
 *
 * A struct tokenizer is immutable after tokenizer_open: all functions taking a const pointer may
 * be called from several threads at once.  Token ids are int32_t in [0, n_vocab).
 */
#ifndef KF_TOKENIZER_H
#define KF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct gguf;
struct tokenizer;

/*
 * Load the vocabulary of an open GGUF file (a model or a vocab-only file) into *out.  Everything
 * needed is copied: g may be closed afterwards.  Returns STATUS_OK, or with *out = NULL and one
 * line in err: STATUS_NOT_FOUND (no tokenizer.ggml.model / tokens / merges), STATUS_FORMAT
 * (wrong key types, empty vocabulary, scores or token types not one per token, duplicate token,
 * special id out of range, a merge that does not parse), STATUS_UNSUPPORTED (a tokenizer model
 * or BPE pre-tokenizer we do not implement), STATUS_NOMEM.
 */
int tokenizer_open(struct tokenizer **out, const struct gguf *g, char *err, size_t errlen);
void tokenizer_close(struct tokenizer *t);

/*
 * Encode len bytes of text (need not be NUL-terminated nor valid UTF-8; invalid sequences are
 * encoded as U+FFFD by BPE models and as byte tokens by SPM models).
 *   add_special:   prepend BOS if tokenizer_add_bos(), append EOS if tokenizer_add_eos();
 *   parse_special: CONTROL tokens written in the text ("<|im_start|>") become their ids;
 *                  without it only USER_DEFINED tokens are matched, as in llama.cpp.
 * Returns the number of tokens the text encodes to, of which the first min(result, max_out) are
 * stored in out (the snprintf convention: call again with a larger buffer if result > max_out;
 * out may be NULL when max_out is 0).  Negative status on error: STATUS_NOMEM, or STATUS_INVALID
 * if the result would not fit in an int.
 */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int add_special,
                     int parse_special, int32_t *out, int max_out);

/*
 * The bytes of token id: raw bytes, not necessarily complete UTF-8 (a byte token gives one byte,
 * so a streaming caller must hold back an incomplete sequence until the next piece completes
 * it).  CONTROL and UNKNOWN tokens give nothing unless special is set, then their text.
 * Returns the piece length, of which min(result, len) bytes are stored in buf (no NUL is
 * written); STATUS_INVALID for an id out of range.
 */
int tokenizer_token_to_piece(const struct tokenizer *t, int32_t id, int special, char *buf,
                             int len);

/*
 * Decode a whole sequence: the pieces concatenated, except that for vocabularies that add a
 * space prefix (SPM) one leading space of the first piece is dropped, so that
 * detokenize(encode(s)) == s.  HF's clean_up_tokenization_spaces is not applied (llama.cpp does
 * for some BPE models), so the result always equals the streamed pieces.  Returns the text
 * length; min(result, len) bytes are stored in buf, then a NUL if there is room left.
 * STATUS_INVALID if an id is out of range.
 */
int tokenizer_detokenize(const struct tokenizer *t, const int32_t *ids, int n, int special,
                         char *buf, int len);

/* --- vocabulary facts ---------------------------------------------------------------------- */
int tokenizer_n_vocab(const struct tokenizer *t);
int32_t tokenizer_bos(const struct tokenizer *t);   /* -1 if none */
int32_t tokenizer_eos(const struct tokenizer *t);   /* -1 if none */
int32_t tokenizer_eot(const struct tokenizer *t);   /* end of turn (<|im_end|>, ...); -1 if none */
int tokenizer_add_bos(const struct tokenizer *t);   /* whether add_special prepends BOS */
int tokenizer_add_eos(const struct tokenizer *t);
/* Name of the tokenizer model ("llama" or "gpt2"); borrowed, valid until tokenizer_close. */
const char *tokenizer_model(const struct tokenizer *t);

/*
 * End of generation: eos, eot, eom and every token whose text is one of the usual end markers
 * (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, <|eom_id|>, <|end_of_text|>,
 * <EOT>, ...).  Stop generating when the sampled token is one of them.  0 for ids out of range.
 */
int tokenizer_is_eog(const struct tokenizer *t, int32_t id);

/* The id of the token whose text is exactly text (NUL-terminated), or -1. */
int32_t tokenizer_find(const struct tokenizer *t, const char *text);

/*
 * The stored text of token id (SPM spaces are U+2581, BPE bytes are in GPT-2's alphabet):
 * NUL-terminated, length in *len if len is not NULL.  Borrowed, valid until tokenizer_close.
 * NULL for ids out of range.
 */
const char *tokenizer_token_text(const struct tokenizer *t, int32_t id, size_t *len);

#endif
