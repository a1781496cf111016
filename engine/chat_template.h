/*
 * chat_template.h — prompt formatting per model family.
 *
 * Templates are matched, never executed: chat_template_detect() classifies a GGUF
 * tokenizer.chat_template (Jinja text) by substring tests in llama.cpp's order, and hard-coded
 * renderers reproduce llama.cpp's built-in (non-Jinja) rendering of each family.  The rendered
 * text never contains the BOS text (the tokenizer adds BOS) and no default system prompt is
 * ever injected.  The module is pure: no tokenizer, no model, no global state.
 *
 * Incremental chats.  Rendering is defined turn by turn: rendering msgs[0..n) is by definition
 * the concatenation of chat_template_render_turn(fmt, msgs, i, 0) for i < n, followed by the
 * generation prompt.  A turn's text may depend on the history before it (Gemma folds pending
 * system text into the next user turn, [INST] formats open a new [INST] only after an
 * assistant reply), which is why render_turn takes the whole history and an index rather
 * than one message.  So an engine that keeps its KV cache can append message i by tokenizing
 * only render_turn(msgs, i, ...).
 *
 * After the model has generated an assistant reply following the generation prompt, the
 * assistant turn is completed by chat_template_assistant_close() (it begins with the text of
 * the stop token that ended the reply); then the next user turn follows.  For every format,
 *   generation_prompt + content + assistant_close == render_turn(assistant message content)
 * when the previous message is a user turn and content has no surrounding white space, except
 * that mistral-v1, mistral-v3 and mistral-v7 put one space before assistant content that is
 * not part of the generation prompt (as in llama.cpp; SentencePiece models produce it as the
 * "▁" of their first token).
 */
#ifndef KF_CHAT_TEMPLATE_H
#define KF_CHAT_TEMPLATE_H

#include <stddef.h>

enum chat_format {
    CHAT_FORMAT_UNKNOWN = 0,
    CHAT_FORMAT_GEMMA,             /* <start_of_turn>role\n...<end_of_turn>\n, assistant→model  */
    CHAT_FORMAT_CHATML,            /* <|im_start|>role\n...<|im_end|>\n (Qwen, SmolLM)          */
    CHAT_FORMAT_LLAMA3,            /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    CHAT_FORMAT_PHI3,              /* <|role|>\n...<|end|>\n                                    */
    CHAT_FORMAT_MISTRAL,           /* llama.cpp "mistral-v3-tekken": [INST]u[/INST]a</s> (Nemo) */
    CHAT_FORMAT_MISTRAL_V1,        /* " [INST] u [/INST] a</s>"                                */
    CHAT_FORMAT_MISTRAL_V3,        /* "[INST] u[/INST] a</s>", assistant content trimmed        */
    CHAT_FORMAT_MISTRAL_V7,        /* [SYSTEM_PROMPT] s[/SYSTEM_PROMPT][INST] u[/INST] a</s>    */
    CHAT_FORMAT_MISTRAL_V7_TEKKEN, /* as v7 without the spaces                                 */
    CHAT_FORMAT_ZEPHYR,            /* <|role|>\n...</s>\n (TinyLlama chat)                      */
    CHAT_FORMAT_LLAMA2,            /* [INST] <<SYS>>\ns\n<</SYS>>\n\nu [/INST]a</s>, stripped   */
    CHAT_FORMAT_COUNT
};

/* One chat message; both strings are borrowed.  A NULL content renders as empty. */
struct chat_msg {
    const char *role; /* "system", "user", "assistant" (others pass through where llama.cpp does) */
    const char *content;
};

/*
 * The format of a template text of len bytes (need not be NUL-terminated), or
 * CHAT_FORMAT_UNKNOWN.  A text equal to a format name ("chatml", ...) selects that format, as
 * in llama.cpp.  Families llama.cpp recognises but we do not render (phi4, glmedge, vicuna,
 * ...) are UNKNOWN, tested in llama.cpp's order so that they do not fall through to a later
 * test.
 */
int chat_template_detect(const char *tmpl, size_t len);

/* The format for a --template NAME (see chat_template_names), or -1 if the name is unknown. */
int chat_template_from_name(const char *name);

/* The canonical name of a format ("unknown" for CHAT_FORMAT_UNKNOWN or out-of-range values). */
const char *chat_template_name(int fmt);

/* A constant, comma-separated list of the names chat_template_from_name accepts. */
const char *chat_template_names(void);

/*
 * Render msgs[0..n) and, if add_generation_prompt, the generation prompt, into *out, a
 * malloc'd NUL-terminated string the caller frees.  Returns STATUS_OK, STATUS_INVALID (unknown
 * format, NULL role or msgs) or STATUS_NOMEM; *out is NULL on error.
 */
int chat_template_render(int fmt, const struct chat_msg *msgs, size_t n, int add_generation_prompt,
                         char **out);

/*
 * Render only message i given the history msgs[0..i), followed by the generation prompt if
 * add_generation_prompt.  Same ownership and return codes as chat_template_render.
 */
int chat_template_render_turn(int fmt, const struct chat_msg *msgs, size_t i,
                              int add_generation_prompt, char **out);

/* The generation prompt ("" for the [INST] families, whose user turn ends the prompt). */
const char *chat_template_generation_prompt(int fmt);

/* The text that completes an assistant turn after its generated content (see above). */
const char *chat_template_assistant_close(int fmt);

/*
 * A NULL-terminated, constant list of the token texts that end an assistant turn in this
 * format (the engine maps them to token ids and adds them to the EOG set).  Never NULL; empty
 * for CHAT_FORMAT_UNKNOWN.
 */
const char *const *chat_template_stop_texts(int fmt);

#endif
