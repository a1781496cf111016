/*
 * test_template.c — chat template detection, rendering, per-turn rendering and names.
 *
 * Template samples come from $KF_TESTDATA/templates (default: ../shared/testdata relative to
 * the source tree top); without them those checks are skipped.  Expected renderings are
 * written out by hand from llama.cpp's built-in renderer rules.
 */
#include "config.h"
#include "chat_template.h"
#include "status.h"
#include "tap.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const int all_formats[] = {
    CHAT_FORMAT_GEMMA,      CHAT_FORMAT_CHATML,     CHAT_FORMAT_LLAMA3,
    CHAT_FORMAT_PHI3,       CHAT_FORMAT_MISTRAL,    CHAT_FORMAT_MISTRAL_V1,
    CHAT_FORMAT_MISTRAL_V3, CHAT_FORMAT_MISTRAL_V7, CHAT_FORMAT_MISTRAL_V7_TEKKEN,
    CHAT_FORMAT_ZEPHYR,     CHAT_FORMAT_LLAMA2,
};

// ---- detection of the sample files ---------------------------------------------------------

static const struct {
    const char *file;
    int fmt;
} sample_expect[] = {
    {"HuggingFaceTB-SmolLM3-3B.jinja", CHAT_FORMAT_CHATML}, /* ChatML family (think header) */
    {"Qwen-Qwen2.5-7B-Instruct.jinja", CHAT_FORMAT_CHATML},
    {"google-gemma-2-2b-it.jinja", CHAT_FORMAT_GEMMA},
    {"meta-llama-Llama-3.2-3B-Instruct.jinja", CHAT_FORMAT_LLAMA3},
    {"microsoft-Phi-3.5-mini-instruct.jinja", CHAT_FORMAT_PHI3},
    /* [AVAILABLE_TOOLS] and a double-quoted "[INST]": llama.cpp's mistral-v3-tekken */
    {"mistralai-Mistral-Nemo-Instruct-2407.jinja", CHAT_FORMAT_MISTRAL},
};

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf; /* deliberately not NUL-terminated: detect takes a length */
}

static const char *testdata_dir(char *buf, size_t len)
{
    const char *env = getenv("KF_TESTDATA");
    if (env && *env)
        return env;
    const char *src = getenv("KF_SRCDIR");
    snprintf(buf, len, "%s/../shared/testdata", src && *src ? src : ".");
    return buf;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void test_sample_files(void)
{
    char buf[4096], path[8192];
    snprintf(path, sizeof(path), "%s/templates", testdata_dir(buf, sizeof(buf)));
    DIR *d = opendir(path);
    if (!d) {
        skip("no template samples (set KF_TESTDATA)");
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!ends_with(de->d_name, ".jinja"))
            continue;
        char file[8192 + 256];
        snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
        size_t len;
        char *t = read_file(file, &len);
        if (!t) {
            ok(0, "read %s", file);
            continue;
        }
        int got = chat_template_detect(t, len);
        free(t);
        int expect = -1;
        for (size_t i = 0; i < ARRAY_LEN(sample_expect); i++)
            if (strcmp(sample_expect[i].file, de->d_name) == 0)
                expect = sample_expect[i].fmt;
        if (expect < 0)
            ok(got != CHAT_FORMAT_UNKNOWN, "%s detected as %s (no expectation on file)", de->d_name,
               chat_template_name(got));
        else
            ok(got == expect, "%s detected as %s (want %s)", de->d_name, chat_template_name(got),
               chat_template_name(expect));
    }
    closedir(d);
}

// ---- detection of snippets -----------------------------------------------------------------

static int detect(const char *s)
{
    return chat_template_detect(s, strlen(s));
}

static void test_detect_snippets(void)
{
    static const struct {
        const char *tmpl;
        int fmt;
        const char *why;
    } cases[] = {
        {"{{'<|im_start|>' + role}}", CHAT_FORMAT_CHATML, "chatml"},
        {"<|im_start|>x<|im_sep|>", CHAT_FORMAT_UNKNOWN, "phi4 is not chatml"},
        {"<|im_start|>User:<end_of_utterance>", CHAT_FORMAT_UNKNOWN, "smolvlm is not chatml"},
        {"<|im_start|> [INST] <start_of_turn>", CHAT_FORMAT_CHATML, "chatml wins over later tests"},
        {"[SYSTEM_PROMPT] [INST]", CHAT_FORMAT_MISTRAL_V7, "v7"},
        {"{{ ' [INST] ' + system_message }}", CHAT_FORMAT_MISTRAL_V1, "v1"},
        {"[AVAILABLE_TOOLS] {{ \"[INST]\" + c }}", CHAT_FORMAT_MISTRAL, "v3-tekken"},
        {"[AVAILABLE_TOOLS] {{ \"[INST] \" + c }}", CHAT_FORMAT_MISTRAL_V3, "v3"},
        {"{{ '[INST] ' + content.strip() + ' [/INST]' }}", CHAT_FORMAT_LLAMA2, "llama2"},
        {"mistral-ish", CHAT_FORMAT_LLAMA2, "name prefix mistral goes to the [INST] branch"},
        {"<|user|>\n{{c}}<|end|>\n<|assistant|>", CHAT_FORMAT_PHI3, "phi3"},
        {"<|user|>\n' + c + eos_token <|assistant|>", CHAT_FORMAT_ZEPHYR, "TinyLlama zephyr"},
        {"<|user|>\n' + c + '</s>' <|assistant|>", CHAT_FORMAT_UNKNOWN, "falcon3"},
        {"<|user|>\n<|assistant|>", CHAT_FORMAT_UNKNOWN, "glmedge"},
        {"<|user|>\n{{c}}<|endoftext|>", CHAT_FORMAT_ZEPHYR, "llama.cpp zephyr"},
        {"{{ '<start_of_turn>' + role }}", CHAT_FORMAT_GEMMA, "gemma"},
        {"USER: ASSISTANT: <|start_header_id|><|end_header_id|>", CHAT_FORMAT_UNKNOWN,
         "vicuna is tested before llama3"},
        {"<|start_header_id|>{{r}}<|end_header_id|>", CHAT_FORMAT_LLAMA3, "llama3"},
        {"chatml", CHAT_FORMAT_CHATML, "exact name"},
        {"mistral-v7-tekken", CHAT_FORMAT_MISTRAL_V7_TEKKEN, "exact name v7-tekken"},
        {"llama3", CHAT_FORMAT_LLAMA3, "exact name llama3"},
        {"hello world", CHAT_FORMAT_UNKNOWN, "no marker"},
        {"", CHAT_FORMAT_UNKNOWN, "empty"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        ok(detect(cases[i].tmpl) == cases[i].fmt, "detect %s -> %s (got %s)", cases[i].why,
           chat_template_name(cases[i].fmt), chat_template_name(detect(cases[i].tmpl)));

    /* The length is honoured: a marker cut by len does not match. */
    const char *t = "<start_of_turn>";
    ok(chat_template_detect(t, strlen(t) - 1) == CHAT_FORMAT_UNKNOWN, "detect honours len");
    ok(chat_template_detect(NULL, 0) == CHAT_FORMAT_UNKNOWN, "detect(NULL) is unknown");
}

// ---- rendering -----------------------------------------------------------------------------

static const struct chat_msg conv[] = {
    {"system", "You are terse."},
    {"user", "Hello"},
    {"assistant", "  Hi there.  "},
    {"user", "Who are you?"},
};

static const struct {
    int fmt;
    const char *want;
} expect_render[] = {
    {CHAT_FORMAT_GEMMA, "<start_of_turn>user\nYou are terse.\n\nHello<end_of_turn>\n"
                        "<start_of_turn>model\nHi there.<end_of_turn>\n"
                        "<start_of_turn>user\nWho are you?<end_of_turn>\n"
                        "<start_of_turn>model\n"},
    {CHAT_FORMAT_CHATML, "<|im_start|>system\nYou are terse.<|im_end|>\n"
                         "<|im_start|>user\nHello<|im_end|>\n"
                         "<|im_start|>assistant\n  Hi there.  <|im_end|>\n"
                         "<|im_start|>user\nWho are you?<|im_end|>\n"
                         "<|im_start|>assistant\n"},
    {CHAT_FORMAT_LLAMA3, "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {CHAT_FORMAT_PHI3, "<|system|>\nYou are terse.<|end|>\n"
                       "<|user|>\nHello<|end|>\n"
                       "<|assistant|>\n  Hi there.  <|end|>\n"
                       "<|user|>\nWho are you?<|end|>\n"
                       "<|assistant|>\n"},
    {CHAT_FORMAT_MISTRAL, "[INST]You are terse.\n\nHello[/INST]  Hi there.  </s>"
                          "[INST]Who are you?[/INST]"},
    {CHAT_FORMAT_MISTRAL_V1, " [INST] You are terse.\n\nHello [/INST]   Hi there.  </s>"
                             " [INST] Who are you? [/INST]"},
    {CHAT_FORMAT_MISTRAL_V3, "[INST] You are terse.\n\nHello[/INST] Hi there.</s>"
                             "[INST] Who are you?[/INST]"},
    {CHAT_FORMAT_MISTRAL_V7, "[SYSTEM_PROMPT] You are terse.[/SYSTEM_PROMPT]"
                             "[INST] Hello[/INST]   Hi there.  </s>"
                             "[INST] Who are you?[/INST]"},
    {CHAT_FORMAT_MISTRAL_V7_TEKKEN, "[SYSTEM_PROMPT]You are terse.[/SYSTEM_PROMPT]"
                                    "[INST]Hello[/INST]  Hi there.  </s>"
                                    "[INST]Who are you?[/INST]"},
    {CHAT_FORMAT_ZEPHYR, "<|system|>\nYou are terse.</s>\n"
                         "<|user|>\nHello</s>\n"
                         "<|assistant|>\n  Hi there.  </s>\n"
                         "<|user|>\nWho are you?</s>\n"
                         "<|assistant|>\n"},
    {CHAT_FORMAT_LLAMA2, "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello [/INST]Hi there.</s>"
                         "[INST] Who are you? [/INST]"},
};

static void show_diff(const char *want, const char *got)
{
    diag("want: \"%s\"", want);
    diag("got:  \"%s\"", got ? got : "(null)");
}

static void test_render_expected(void)
{
    ok(ARRAY_LEN(expect_render) == ARRAY_LEN(all_formats), "an expected rendering per format");
    for (size_t i = 0; i < ARRAY_LEN(expect_render); i++) {
        char *out = NULL;
        int rc = chat_template_render(expect_render[i].fmt, conv, ARRAY_LEN(conv), 1, &out);
        int same = rc == STATUS_OK && out && strcmp(out, expect_render[i].want) == 0;
        if (!ok(same, "render %s", chat_template_name(expect_render[i].fmt)))
            show_diff(expect_render[i].want, out);
        free(out);
    }
}

/* Conversations whose turn structure stresses cross-turn state. */
static const struct chat_msg conv_nosys[] = {
    {"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}};
static const struct chat_msg conv_odd[] = {{"system", " s1 "}, {"assistant", "x"},
                                           {"system", "s2"},   {"user", "u"},
                                           {"user", "v"},      {"assistant", "w"}};
static const struct chat_msg conv_sys_only[] = {{"system", "lonely"}};

static void check_concat(int fmt, const struct chat_msg *msgs, size_t n, const char *what)
{
    for (int gen = 0; gen <= 1; gen++) {
        char *whole = NULL;
        int rc = chat_template_render(fmt, msgs, n, gen, &whole);
        size_t cap = 64, len = 0;
        char *cat = calloc(cap, 1);
        int good = rc == STATUS_OK && cat;
        for (size_t i = 0; good && i < n; i++) {
            char *turn = NULL;
            good = chat_template_render_turn(fmt, msgs, i, gen && i + 1 == n, &turn) == STATUS_OK;
            if (!good)
                break;
            size_t tl = strlen(turn);
            if (len + tl + 1 > cap) {
                cap = (len + tl + 1) * 2;
                cat = realloc(cat, cap);
            }
            memcpy(cat + len, turn, tl + 1);
            len += tl;
            free(turn);
        }
        if (good && n == 0 && gen) {
            const char *g = chat_template_generation_prompt(fmt);
            free(cat);
            cat = strdup(g);
        }
        int same = good && strcmp(whole, cat) == 0;
        if (!ok(same, "%s: render == concat of turns (%s, gen=%d)", chat_template_name(fmt), what,
                gen))
            show_diff(whole, cat);
        free(whole);
        free(cat);
    }
}

static void test_render_turns(void)
{
    for (size_t f = 0; f < ARRAY_LEN(all_formats); f++) {
        int fmt = all_formats[f];
        check_concat(fmt, conv, ARRAY_LEN(conv), "sys/user/asst/user");
        check_concat(fmt, conv_nosys, ARRAY_LEN(conv_nosys), "no system");
        check_concat(fmt, conv_odd, ARRAY_LEN(conv_odd), "odd order");
        check_concat(fmt, conv_sys_only, ARRAY_LEN(conv_sys_only), "system only");
    }
}

/* Gemma's folding follows llama.cpp across model turns and repeated system messages. */
static void test_gemma_folding(void)
{
    char *out = NULL;
    chat_template_render(CHAT_FORMAT_GEMMA, conv_odd, ARRAY_LEN(conv_odd), 0, &out);
    const char *want = "<start_of_turn>model\nx<end_of_turn>\n"
                       "<start_of_turn>user\ns1s2\n\nu<end_of_turn>\n"
                       "<start_of_turn>user\nv<end_of_turn>\n"
                       "<start_of_turn>model\nw<end_of_turn>\n";
    if (!ok(out && strcmp(out, want) == 0, "gemma folds pending system texts into next user"))
        show_diff(want, out);
    free(out);

    chat_template_render(CHAT_FORMAT_GEMMA, conv_sys_only, 1, 1, &out);
    ok(out && strcmp(out, "<start_of_turn>model\n") == 0, "gemma drops a trailing system text");
    free(out);
}

/* gen_prompt + content + close reproduces the assistant turn the next render will contain. */
static void test_generation_roundtrip(void)
{
    const char *content = "Fine, thanks.";
    for (size_t f = 0; f < ARRAY_LEN(all_formats); f++) {
        int fmt = all_formats[f];
        struct chat_msg msgs[] = {{"user", "How are you?"}, {"assistant", content}};
        char *turn = NULL;
        chat_template_render_turn(fmt, msgs, 1, 0, &turn);
        /* v1/v3/v7 put a space before assistant content that the prompt does not contain */
        int space = fmt == CHAT_FORMAT_MISTRAL_V1 || fmt == CHAT_FORMAT_MISTRAL_V3 ||
                    fmt == CHAT_FORMAT_MISTRAL_V7;
        char want[256];
        snprintf(want, sizeof(want), "%s%s%s%s", chat_template_generation_prompt(fmt),
                 space ? " " : "", content, chat_template_assistant_close(fmt));
        if (!ok(turn && strcmp(turn, want) == 0, "%s: gen prompt + reply + close == turn",
                chat_template_name(fmt)))
            show_diff(want, turn);
        free(turn);
    }
}

static void test_render_edges(void)
{
    char *out = (char *)1;
    ok(chat_template_render(CHAT_FORMAT_UNKNOWN, conv, 1, 0, &out) == STATUS_INVALID && !out,
       "render unknown format is STATUS_INVALID, *out NULL");
    out = (char *)1;
    ok(chat_template_render(CHAT_FORMAT_COUNT + 3, conv, 1, 0, &out) == STATUS_INVALID && !out,
       "render out-of-range format is STATUS_INVALID");
    struct chat_msg bad[] = {{"user", "a"}, {NULL, "b"}};
    ok(chat_template_render(CHAT_FORMAT_CHATML, bad, 2, 0, &out) == STATUS_INVALID,
       "NULL role is STATUS_INVALID");
    ok(chat_template_render(CHAT_FORMAT_CHATML, NULL, 0, 1, &out) == STATUS_OK && out &&
           strcmp(out, "<|im_start|>assistant\n") == 0,
       "zero messages + generation prompt");
    free(out);
    struct chat_msg nullc[] = {{"user", NULL}};
    ok(chat_template_render(CHAT_FORMAT_LLAMA3, nullc, 1, 0, &out) == STATUS_OK && out &&
           strcmp(out, "<|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>") == 0,
       "NULL content renders as empty");
    free(out);
    struct chat_msg tool[] = {{"tool", "42"}};
    ok(chat_template_render(CHAT_FORMAT_CHATML, tool, 1, 0, &out) == STATUS_OK && out &&
           strcmp(out, "<|im_start|>tool\n42<|im_end|>\n") == 0,
       "other roles pass through in chatml");
    free(out);
    struct chat_msg nosys[] = {{"user", "hi"}};
    ok(chat_template_render(CHAT_FORMAT_CHATML, nosys, 1, 1, &out) == STATUS_OK && out &&
           strstr(out, "system") == NULL,
       "no default system prompt is injected");
    free(out);
}

// ---- names and stop texts ------------------------------------------------------------------

static void test_names(void)
{
    for (size_t f = 0; f < ARRAY_LEN(all_formats); f++) {
        int fmt = all_formats[f];
        const char *name = chat_template_name(fmt);
        ok(chat_template_from_name(name) == fmt, "name round trip %s", name);
        ok(strstr(chat_template_names(), name) != NULL, "%s listed in names", name);
    }
    static const char *const required[] = {"gemma",   "chatml", "llama3", "phi3",
                                           "mistral", "zephyr", "llama2"};
    for (size_t i = 0; i < ARRAY_LEN(required); i++)
        ok(chat_template_from_name(required[i]) > CHAT_FORMAT_UNKNOWN, "name %s accepted",
           required[i]);
    ok(chat_template_from_name("mistral-v3-tekken") == CHAT_FORMAT_MISTRAL,
       "mistral-v3-tekken is an alias of mistral");
    ok(chat_template_from_name("vicuna") == -1, "unknown name -> -1");
    ok(chat_template_from_name("") == -1, "empty name -> -1");
    ok(chat_template_from_name(NULL) == -1, "NULL name -> -1");
    ok(chat_template_from_name("ChatML") == -1, "names are case-sensitive");
    ok(strcmp(chat_template_name(CHAT_FORMAT_UNKNOWN), "unknown") == 0, "name of unknown");
    ok(strcmp(chat_template_name(-7), "unknown") == 0, "name of out-of-range");
}

static int stops_contain(int fmt, const char *text)
{
    for (const char *const *s = chat_template_stop_texts(fmt); *s; s++)
        if (strcmp(*s, text) == 0)
            return 1;
    return 0;
}

static void test_stops(void)
{
    ok(stops_contain(CHAT_FORMAT_GEMMA, "<end_of_turn>"), "gemma stops at <end_of_turn>");
    ok(stops_contain(CHAT_FORMAT_CHATML, "<|im_end|>"), "chatml stops at <|im_end|>");
    ok(stops_contain(CHAT_FORMAT_LLAMA3, "<|eot_id|>") &&
           stops_contain(CHAT_FORMAT_LLAMA3, "<|eom_id|>"),
       "llama3 stops at <|eot_id|> and <|eom_id|>");
    ok(stops_contain(CHAT_FORMAT_PHI3, "<|end|>"), "phi3 stops at <|end|>");
    ok(stops_contain(CHAT_FORMAT_MISTRAL, "</s>"), "mistral stops at </s>");
    ok(stops_contain(CHAT_FORMAT_ZEPHYR, "</s>"), "zephyr stops at </s>");
    ok(stops_contain(CHAT_FORMAT_LLAMA2, "</s>"), "llama2 stops at </s>");
    ok(chat_template_stop_texts(CHAT_FORMAT_UNKNOWN) &&
           chat_template_stop_texts(CHAT_FORMAT_UNKNOWN)[0] == NULL,
       "unknown has an empty stop list");
    /* The close text starts with a stop text: the token that ended the reply. */
    for (size_t f = 0; f < ARRAY_LEN(all_formats); f++) {
        int fmt = all_formats[f];
        const char *close = chat_template_assistant_close(fmt);
        const char *first = chat_template_stop_texts(fmt)[0];
        ok(first && strncmp(close, first, strlen(first)) == 0, "%s: close begins with %s",
           chat_template_name(fmt), first ? first : "?");
    }
}

int main(void)
{
    test_sample_files();
    test_detect_snippets();
    test_render_expected();
    test_render_turns();
    test_gemma_folding();
    test_generation_roundtrip();
    test_render_edges();
    test_names();
    test_stops();
    return done_testing();
}
