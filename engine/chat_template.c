/*
 * chat_template.c — detection of a chat template family and hard-coded rendering of it.
 *
 * This module owns the mapping from a model's Jinja chat template to one of a few known
 * prompt formats, and the text of each format: turn markers, generation prompt, the text
 * closing an assistant turn, and the stop texts.  It follows llama.cpp's legacy built-in path
 * (src/llama-chat.cpp): the same substring tests in the same order, and the same rendering
 * (including its deviations from the official Jinja, e.g. Mistral's system message goes into
 * the first [INST] and Llama 3 gets no "Cutting Knowledge Date" header).
 *
 * Invariant: the rendering of a conversation is the concatenation of its per-turn renderings,
 * because chat_template_render is implemented as exactly that loop.  Every piece of state a
 * family needs (is an [INST] open? is there system text waiting to be folded into the next
 * Gemma user turn?) is recomputed from the history, so render_turn needs no hidden state.
 */
#include "config.h"
#include "chat_template.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>

// ---- per-format constants ------------------------------------------------------------------

static const char *const stop_none[] = {NULL};
static const char *const stop_gemma[] = {"<end_of_turn>", "<eos>", NULL};
static const char *const stop_chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
static const char *const stop_llama3[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", NULL};
static const char *const stop_phi3[] = {"<|end|>", "<|endoftext|>", NULL};
static const char *const stop_eos[] = {"</s>", NULL};
/* TinyLlama ends turns with </s>; llama.cpp's zephyr renderer writes <|endoftext|>. */
static const char *const stop_zephyr[] = {"</s>", "<|endoftext|>", NULL};

struct format_info {
    const char *name;
    const char *gen_prompt;      /* what add_generation_prompt appends */
    const char *assistant_close; /* the rest of an assistant turn after its content */
    const char *const *stops;
};

static const struct format_info formats[CHAT_FORMAT_COUNT] = {
    [CHAT_FORMAT_UNKNOWN] = {"unknown", "", "", stop_none},
    [CHAT_FORMAT_GEMMA] = {"gemma", "<start_of_turn>model\n", "<end_of_turn>\n", stop_gemma},
    [CHAT_FORMAT_CHATML] = {"chatml", "<|im_start|>assistant\n", "<|im_end|>\n", stop_chatml},
    [CHAT_FORMAT_LLAMA3] = {"llama3", "<|start_header_id|>assistant<|end_header_id|>\n\n",
                            "<|eot_id|>", stop_llama3},
    [CHAT_FORMAT_PHI3] = {"phi3", "<|assistant|>\n", "<|end|>\n", stop_phi3},
    /* The [INST] families have no generation prompt in llama.cpp: "[/INST]" ends the prompt. */
    [CHAT_FORMAT_MISTRAL] = {"mistral", "", "</s>", stop_eos},
    [CHAT_FORMAT_MISTRAL_V1] = {"mistral-v1", "", "</s>", stop_eos},
    [CHAT_FORMAT_MISTRAL_V3] = {"mistral-v3", "", "</s>", stop_eos},
    [CHAT_FORMAT_MISTRAL_V7] = {"mistral-v7", "", "</s>", stop_eos},
    [CHAT_FORMAT_MISTRAL_V7_TEKKEN] = {"mistral-v7-tekken", "", "</s>", stop_eos},
    [CHAT_FORMAT_ZEPHYR] = {"zephyr", "<|assistant|>\n", "</s>\n", stop_zephyr},
    [CHAT_FORMAT_LLAMA2] = {"llama2", "", "</s>", stop_eos},
};

/* Names accepted by --template; aliases map onto the same format. */
// clang-format off
static const struct {
    const char *name;
    int fmt;
} name_table[] = {
    {"gemma", CHAT_FORMAT_GEMMA},
    {"chatml", CHAT_FORMAT_CHATML},
    {"llama3", CHAT_FORMAT_LLAMA3},
    {"phi3", CHAT_FORMAT_PHI3},
    {"mistral", CHAT_FORMAT_MISTRAL},
    {"mistral-v1", CHAT_FORMAT_MISTRAL_V1},
    {"mistral-v3", CHAT_FORMAT_MISTRAL_V3},
    {"mistral-v3-tekken", CHAT_FORMAT_MISTRAL},
    {"mistral-v7", CHAT_FORMAT_MISTRAL_V7},
    {"mistral-v7-tekken", CHAT_FORMAT_MISTRAL_V7_TEKKEN},
    {"zephyr", CHAT_FORMAT_ZEPHYR},
    {"llama2", CHAT_FORMAT_LLAMA2},
};
// clang-format on

#define N_NAMES (sizeof(name_table) / sizeof(name_table[0]))

static int fmt_valid(int fmt)
{
    return fmt > CHAT_FORMAT_UNKNOWN && fmt < CHAT_FORMAT_COUNT;
}

int chat_template_from_name(const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < N_NAMES; i++)
        if (strcmp(name, name_table[i].name) == 0)
            return name_table[i].fmt;
    return -1;
}

const char *chat_template_name(int fmt)
{
    return fmt_valid(fmt) ? formats[fmt].name : "unknown";
}

const char *chat_template_names(void)
{
    return "gemma, chatml, llama3, phi3, mistral, mistral-v1, mistral-v3, mistral-v3-tekken, "
           "mistral-v7, mistral-v7-tekken, zephyr, llama2";
}

const char *chat_template_generation_prompt(int fmt)
{
    return fmt_valid(fmt) ? formats[fmt].gen_prompt : "";
}

const char *chat_template_assistant_close(int fmt)
{
    return fmt_valid(fmt) ? formats[fmt].assistant_close : "";
}

const char *const *chat_template_stop_texts(int fmt)
{
    return fmt_valid(fmt) ? formats[fmt].stops : stop_none;
}

// ---- detection -----------------------------------------------------------------------------

/* A template is a byte span, not a C string: GGUF strings carry a length. */
struct span {
    const char *p;
    size_t len;
};

static int has(struct span t, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return 1;
    for (size_t i = 0; i + n <= t.len; i++)
        if (t.p[i] == needle[0] && memcmp(t.p + i, needle, n) == 0)
            return 1;
    return 0;
}

static int starts_with(struct span t, const char *prefix)
{
    size_t n = strlen(prefix);
    return t.len >= n && memcmp(t.p, prefix, n) == 0;
}

/* llama.cpp's [INST] branch: mistral-v7, the official v1/v3/v3-tekken templates, else llama2. */
static int detect_inst(struct span t)
{
    if (has(t, "[SYSTEM_PROMPT]"))
        return CHAT_FORMAT_MISTRAL_V7; /* llama.cpp never detects v7-tekken; it is name-only */
    if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
        if (has(t, " [INST]"))
            return CHAT_FORMAT_MISTRAL_V1;
        if (has(t, "\"[INST]\""))
            return CHAT_FORMAT_MISTRAL; /* v3-tekken: Mistral Nemo */
        return CHAT_FORMAT_MISTRAL_V3;
    }
    /* llama.cpp splits llama2 by <<SYS>>, "bos_token + '[INST]" and content.strip(); we
     * render one variant (system supported, content stripped: Meta's official template). */
    return CHAT_FORMAT_LLAMA2;
}

int chat_template_detect(const char *tmpl, size_t len)
{
    struct span t = {tmpl, tmpl ? len : 0};

    for (size_t i = 0; i < N_NAMES; i++)
        if (strlen(name_table[i].name) == t.len && starts_with(t, name_table[i].name))
            return name_table[i].fmt;

    /* The order below is llama.cpp's; families we do not render still get their test so that
     * they come out UNKNOWN instead of being caught by a later, looser test. */
    if (has(t, "<|im_start|>")) {
        if (has(t, "<|im_sep|>") || has(t, "<end_of_utterance>"))
            return CHAT_FORMAT_UNKNOWN; /* phi4, smolvlm */
        return CHAT_FORMAT_CHATML;
    }
    if (starts_with(t, "mistral") || has(t, "[INST]"))
        return detect_inst(t);
    if (has(t, "<|assistant|>") && has(t, "<|end|>"))
        return CHAT_FORMAT_PHI3;
    if (has(t, "[gMASK]<sop>"))
        return CHAT_FORMAT_UNKNOWN; /* chatglm4 */
    if (has(t, "<|assistant|>") && has(t, "<|user|>")) {
        /* llama.cpp: falcon3 if "</s>" is literal, else glmedge.  TinyLlama's template writes
         * the eos_token variable and would land on glmedge; we render it as zephyr. */
        if (!has(t, "</s>") && has(t, "eos_token"))
            return CHAT_FORMAT_ZEPHYR;
        return CHAT_FORMAT_UNKNOWN;
    }
    if (has(t, "<|{{ item['role'] }}|>") && has(t, "<|begin_of_image|>"))
        return CHAT_FORMAT_UNKNOWN; /* glmedge */
    if (has(t, "<|user|>") && has(t, "<|endoftext|>"))
        return CHAT_FORMAT_ZEPHYR;
    if (has(t, "bos_token + message['role']"))
        return CHAT_FORMAT_UNKNOWN; /* monarch */
    if (has(t, "<start_of_turn>"))
        return CHAT_FORMAT_GEMMA;
    if (has(t, "'\\n\\nAssistant: ' + eos_token") || has(t, "GPT4 Correct ") ||
        (has(t, "USER: ") && has(t, "ASSISTANT: ")) ||
        (has(t, "### Instruction:") && has(t, "<|EOT|>")) ||
        (has(t, "<|START_OF_TURN_TOKEN|>") && has(t, "<|USER_TOKEN|>")))
        return CHAT_FORMAT_UNKNOWN; /* orion, openchat, vicuna, deepseek, command-r */
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>"))
        return CHAT_FORMAT_LLAMA3;
    return CHAT_FORMAT_UNKNOWN;
}

// ---- string building -----------------------------------------------------------------------

/* A growable string; an allocation failure is remembered and reported once at the end. */
struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_addn(struct sbuf *sb, const char *s, size_t n)
{
    if (sb->oom)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *p = realloc(sb->p, cap);
        if (!p) {
            sb->oom = 1;
            return;
        }
        sb->p = p;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_add(struct sbuf *sb, const char *s)
{
    sb_addn(sb, s, strlen(s));
}

/* llama.cpp's trim(): isspace() in the C locale, both ends. */
static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void sb_add_trimmed(struct sbuf *sb, const char *s)
{
    size_t b = 0, e = strlen(s);
    while (b < e && is_space(s[b]))
        b++;
    while (e > b && is_space(s[e - 1]))
        e--;
    sb_addn(sb, s + b, e - b);
}

// ---- rendering -----------------------------------------------------------------------------

static const char *content_of(const struct chat_msg *m)
{
    return m->content ? m->content : "";
}

static int role_is(const struct chat_msg *m, const char *role)
{
    return strcmp(m->role, role) == 0;
}

/* In the [INST] families anything that is neither system nor user is an assistant reply. */
static int is_reply(const struct chat_msg *m)
{
    return !role_is(m, "system") && !role_is(m, "user");
}

/* Formats that are "<open>role<mid>content<close>" per message with no cross-turn state. */
static void render_tagged(struct sbuf *sb, const char *open, const char *mid, const char *close,
                          int trim, const struct chat_msg *m)
{
    sb_add(sb, open);
    sb_add(sb, m->role);
    sb_add(sb, mid);
    if (trim)
        sb_add_trimmed(sb, content_of(m));
    else
        sb_add(sb, content_of(m));
    sb_add(sb, close);
}

static int gemma_is_model(const struct chat_msg *m)
{
    return role_is(m, "assistant") || role_is(m, "model");
}

/*
 * Gemma has no system role.  llama.cpp accumulates trimmed system texts (without separator)
 * and emits them, followed by a blank line, at the start of the next non-model turn; a model
 * turn leaves them pending.  Rather than carry that buffer, recompute it from the history.
 */
static void render_gemma(struct sbuf *sb, const struct chat_msg *msgs, size_t i)
{
    const struct chat_msg *m = &msgs[i];
    if (role_is(m, "system"))
        return;
    int model = gemma_is_model(m);
    sb_add(sb, "<start_of_turn>");
    sb_add(sb, model ? "model" : m->role);
    sb_add(sb, "\n");
    if (!model) {
        size_t k = i; /* first system message not yet consumed by an earlier user turn */
        while (k > 0 && (role_is(&msgs[k - 1], "system") || gemma_is_model(&msgs[k - 1])))
            k--;
        size_t before = sb->len;
        for (size_t j = k; j < i; j++)
            if (role_is(&msgs[j], "system"))
                sb_add_trimmed(sb, content_of(&msgs[j]));
        if (sb->len > before)
            sb_add(sb, "\n\n");
    }
    sb_add_trimmed(sb, content_of(m));
    sb_add(sb, "<end_of_turn>\n");
}

/*
 * Mistral v1 / v3 / v3-tekken (llama.cpp's "is_inside_turn" renderer): an [INST] opens
 * before any message that does not follow a system or user message; system text ends with a
 * blank line inside the [INST].
 */
static void render_mistral_inst(struct sbuf *sb, int fmt, const struct chat_msg *msgs, size_t i)
{
    const struct chat_msg *m = &msgs[i];
    const char *lead = fmt == CHAT_FORMAT_MISTRAL_V1 ? " " : "";
    const char *trail = fmt == CHAT_FORMAT_MISTRAL ? "" : " ";
    int inside = i > 0 && !is_reply(&msgs[i - 1]);

    if (!inside) {
        sb_add(sb, lead);
        sb_add(sb, "[INST]");
        sb_add(sb, trail);
    }
    if (role_is(m, "system")) {
        sb_add(sb, content_of(m));
        sb_add(sb, "\n\n");
    } else if (role_is(m, "user")) {
        sb_add(sb, content_of(m));
        sb_add(sb, lead);
        sb_add(sb, "[/INST]");
    } else {
        sb_add(sb, trail);
        if (fmt == CHAT_FORMAT_MISTRAL_V3)
            sb_add_trimmed(sb, content_of(m));
        else
            sb_add(sb, content_of(m));
        sb_add(sb, "</s>");
    }
}

/* Mistral v7 and v7-tekken: every message stands alone. */
static void render_mistral_v7(struct sbuf *sb, int fmt, const struct chat_msg *m)
{
    const char *sp = fmt == CHAT_FORMAT_MISTRAL_V7 ? " " : "";
    if (role_is(m, "system")) {
        sb_add(sb, "[SYSTEM_PROMPT]");
        sb_add(sb, sp);
        sb_add(sb, content_of(m));
        sb_add(sb, "[/SYSTEM_PROMPT]");
    } else if (role_is(m, "user")) {
        sb_add(sb, "[INST]");
        sb_add(sb, sp);
        sb_add(sb, content_of(m));
        sb_add(sb, "[/INST]");
    } else {
        sb_add(sb, sp);
        sb_add(sb, content_of(m));
        sb_add(sb, "</s>");
    }
}

/*
 * Llama 2 (llama.cpp's "llama2-sys-strip"): the conversation opens with "[INST] " and a new
 * "[INST] " opens after each assistant reply; the system prompt sits in <<SYS>> inside the
 * first instruction.
 */
static void render_llama2(struct sbuf *sb, const struct chat_msg *msgs, size_t i)
{
    const struct chat_msg *m = &msgs[i];
    if (i == 0 || is_reply(&msgs[i - 1]))
        sb_add(sb, "[INST] ");
    if (role_is(m, "system")) {
        sb_add(sb, "<<SYS>>\n");
        sb_add_trimmed(sb, content_of(m));
        sb_add(sb, "\n<</SYS>>\n\n");
    } else if (role_is(m, "user")) {
        sb_add_trimmed(sb, content_of(m));
        sb_add(sb, " [/INST]");
    } else {
        sb_add_trimmed(sb, content_of(m));
        sb_add(sb, "</s>");
    }
}

static void render_one(struct sbuf *sb, int fmt, const struct chat_msg *msgs, size_t i)
{
    const struct chat_msg *m = &msgs[i];
    switch (fmt) {
    case CHAT_FORMAT_GEMMA:
        render_gemma(sb, msgs, i);
        break;
    case CHAT_FORMAT_CHATML:
        render_tagged(sb, "<|im_start|>", "\n", "<|im_end|>\n", 0, m);
        break;
    case CHAT_FORMAT_LLAMA3:
        render_tagged(sb, "<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", 1, m);
        break;
    case CHAT_FORMAT_PHI3:
        render_tagged(sb, "<|", "|>\n", "<|end|>\n", 0, m);
        break;
    case CHAT_FORMAT_ZEPHYR:
        render_tagged(sb, "<|", "|>\n", "</s>\n", 0, m);
        break;
    case CHAT_FORMAT_MISTRAL:
    case CHAT_FORMAT_MISTRAL_V1:
    case CHAT_FORMAT_MISTRAL_V3:
        render_mistral_inst(sb, fmt, msgs, i);
        break;
    case CHAT_FORMAT_MISTRAL_V7:
    case CHAT_FORMAT_MISTRAL_V7_TEKKEN:
        render_mistral_v7(sb, fmt, m);
        break;
    case CHAT_FORMAT_LLAMA2:
        render_llama2(sb, msgs, i);
        break;
    default:
        break;
    }
}

/* Validate, render msgs[first..n) plus the optional generation prompt, hand over the buffer. */
static int render_range(int fmt, const struct chat_msg *msgs, size_t first, size_t n, int gen,
                        char **out)
{
    *out = NULL;
    if (!fmt_valid(fmt) || (n > 0 && !msgs))
        return STATUS_INVALID;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role)
            return STATUS_INVALID;

    struct sbuf sb = {0};
    sb_add(&sb, ""); /* an empty rendering is still a malloc'd "" */
    for (size_t i = first; i < n; i++)
        render_one(&sb, fmt, msgs, i);
    if (gen)
        sb_add(&sb, formats[fmt].gen_prompt);
    if (sb.oom) {
        free(sb.p);
        return STATUS_NOMEM;
    }
    *out = sb.p;
    return STATUS_OK;
}

int chat_template_render(int fmt, const struct chat_msg *msgs, size_t n, int add_generation_prompt,
                         char **out)
{
    return render_range(fmt, msgs, 0, n, add_generation_prompt, out);
}

int chat_template_render_turn(int fmt, const struct chat_msg *msgs, size_t i,
                              int add_generation_prompt, char **out)
{
    if (!msgs) {
        *out = NULL;
        return STATUS_INVALID;
    }
    return render_range(fmt, msgs, i, i + 1, add_generation_prompt, out);
}
