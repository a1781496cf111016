/*
 * cli.c — option parsing, engine opening and saved-conversation opening shared by the kfchat
 * subcommands.  Every error is one line on stderr starting with "kfchat: ".
 *
 * A saved session keeps, as JSON in its settings, what it ran with (context, batch, template,
 * KV policy and budget, sampler parameters and the seed in use, reply length); --resume and
 * --session fill every option the command line does not give from there, so that a resumed
 * session runs under the settings its snapshot was taken with and is restored exactly.
 */
#include "config.h"
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "paths.h"
#include "session.h"
#ifdef HAVE_UI
#include "../data/store.h"
#endif

volatile sig_atomic_t cli_interrupted;

void cli_common_init(struct cli_common *c)
{
    memset(c, 0, sizeof(*c));
    c->sp = sampler_params_default();
    c->kv = kv_params_default();
    c->n_gpu_layers = -1; /* every layer on the GPU when there is one */
}

int cli_split_list(const char *opt, const char *what, const char *s, int max, char **owned,
                   const char **items, int *n)
{
    *n = 0;
    if (!s || !*s) {
        fprintf(stderr, "kfchat: %s needs a comma-separated list of %s\n", opt, what);
        return -1;
    }
    free(*owned);
    *owned = strdup(s);
    if (!*owned) {
        fprintf(stderr, "kfchat: %s: out of memory\n", opt);
        return -1;
    }
    char *save = NULL;
    for (char *t = strtok_r(*owned, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == max) {
            fprintf(stderr, "kfchat: %s takes at most %d %s\n", opt, max, what);
            return -1;
        }
        items[(*n)++] = t;
    }
    if (*n == 0) {
        fprintf(stderr, "kfchat: %s needs a comma-separated list of %s\n", opt, what);
        return -1;
    }
    return 0;
}

int cli_int(const char *opt, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "kfchat: %s needs an integer in %ld..%ld (got '%s')\n", opt, lo, hi,
                s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_float(const char *opt, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "kfchat: %s needs a number in %g..%g (got '%s')\n", opt, lo, hi,
                s ? s : "");
        return -1;
    }
    *out = (float)v;
    return 0;
}

static int is(const char *a, const char *s, const char *l)
{
    return (s && strcmp(a, s) == 0) || (l && strcmp(a, l) == 0);
}

/* Which CLI_SET_* bit option a sets (0: none). */
static unsigned set_flag(const char *a)
{
    static const struct {
        const char *opt;
        unsigned flag;
    } t[] = {
        { "-m", CLI_SET_MODEL },           { "--model", CLI_SET_MODEL },
        { "-c", CLI_SET_CTX },             { "--ctx-size", CLI_SET_CTX },
        { "-b", CLI_SET_BATCH },           { "--batch-size", CLI_SET_BATCH },
        { "-t", CLI_SET_THREADS },         { "--threads", CLI_SET_THREADS },
        { "--template", CLI_SET_TEMPLATE }, { "--temp", CLI_SET_TEMP },
        { "--top-k", CLI_SET_TOP_K },      { "--top-p", CLI_SET_TOP_P },
        { "--min-p", CLI_SET_MIN_P },      { "--repeat-penalty", CLI_SET_REPEAT },
        { "--repeat-last-n", CLI_SET_LAST_N }, { "-s", CLI_SET_SEED },
        { "--seed", CLI_SET_SEED },        { "--kv-policy", CLI_SET_KV_POLICY },
        { "--kv-budget", CLI_SET_KV_BUDGET }, { "--kv-recent", CLI_SET_KV_RECENT },
        { "--tau-init", CLI_SET_TAU },     { "--tau-end", CLI_SET_TAU },
        { "--tau-steps", CLI_SET_TAU },    { "--kv-seed", CLI_SET_KV_SEED },
        { "--kv-type", CLI_SET_KV_TYPE },
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        if (!strcmp(a, t[k].opt))
            return t[k].flag;
    return 0;
}

int cli_common_opt(struct cli_common *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int r = 0;
    float f;
    if (is(a, "-v", "--verbose")) {
        c->verbose = 1;
        return 1;
    }
    if (is(a, "-ngl", "--n-gpu-layers")) {
        if (cli_int(a, v, 0, 100000, &c->n_gpu_layers) < 0)
            return -1;
        c->gpu_asked = c->n_gpu_layers > 0;
    } else if (is(a, "--gpu", NULL)) {
        if (!v || (strcmp(v, "on") && strcmp(v, "off") && strcmp(v, "auto"))) {
            fprintf(stderr, "kfchat: --gpu needs on, off or auto (got '%s')\n", v ? v : "");
            return -1;
        }
        c->n_gpu_layers = strcmp(v, "off") ? -1 : 0;
        c->gpu_asked = !strcmp(v, "on");
    } else if (is(a, "--kv-policy", NULL)) {
        if (!v || kv_policy_from_name(v) < 0) {
            fprintf(stderr, "kfchat: --kv-policy needs one of: %s (got '%s')\n", kv_policy_names(),
                    v ? v : "");
            return -1;
        }
        c->kv.policy = (enum kv_policy)kv_policy_from_name(v);
        c->kv_set = 1;
    } else if (is(a, "--kv-type", NULL)) {
        if (!v || kv_type_from_name(v) < 0) {
            fprintf(stderr, "kfchat: --kv-type needs f16 or q8_0 (got '%s')\n", v ? v : "");
            return -1;
        }
        c->kv.type = (enum kv_type)kv_type_from_name(v);
        c->kv_set = 1;
    } else if (is(a, "--kv-budget", NULL)) {
        if (!v) {
            fprintf(stderr, "kfchat: --kv-budget needs a size: tokens (2048), a share (50%%) or "
                            "memory (256MiB)\n");
            return -1;
        }
        c->kv_budget = v;
        c->kv_set = 1;
    } else if (is(a, "--kv-recent", NULL)) {
        float pct;
        char num[64];
        snprintf(num, sizeof num, "%s", v ? v : "");
        size_t nl = strlen(num);
        if (nl && num[nl - 1] == '%')
            num[nl - 1] = 0; /* "30" and "30%" mean the same */
        if (cli_float(a, v ? num : NULL, 0.0, 100.0, &pct) < 0)
            return -1;
        c->kv.recent = pct / 100.0f;
        c->kv_set = 1;
    } else if (is(a, "--tau-init", NULL) || is(a, "--tau-end", NULL)) {
        if (cli_float(a, v, 1e-3, 100.0, a[6] == 'i' ? &c->kv.tau_init : &c->kv.tau_end) < 0)
            return -1;
        c->kv_set = 1;
    } else if (is(a, "--tau-steps", NULL)) {
        if (cli_int(a, v, 1, 1 << 24, &c->kv.tau_steps) < 0)
            return -1;
        c->kv_set = 1;
    } else if (is(a, "--kv-seed", NULL)) {
        int sd;
        if (cli_int(a, v, 0, 0x7fffffff, &sd) < 0)
            return -1;
        c->kv.seed = (uint64_t)sd;
        c->kv_set = 1;
    } else if (is(a, "-m", "--model")) {
        if (!v) {
            fprintf(stderr, "kfchat: %s needs a file name\n", a);
            return -1;
        }
        c->model = v;
    } else if (is(a, "--template", NULL)) {
        if (!v) {
            fprintf(stderr, "kfchat: --template needs a name (%s)\n", chat_template_names());
            return -1;
        }
        c->template_name = v;
    } else if (is(a, "-t", "--threads"))
        r = cli_int(a, v, 1, 256, &c->n_threads);
    else if (is(a, "-c", "--ctx-size"))
        r = cli_int(a, v, 16, 1 << 22, &c->n_ctx);
    else if (is(a, "-b", "--batch-size"))
        r = cli_int(a, v, 1, 8192, &c->n_batch);
    else if (is(a, "--temp", NULL))
        r = cli_float(a, v, 0.0, 100.0, &c->sp.temp);
    else if (is(a, "--top-k", NULL))
        r = cli_int(a, v, 0, INT_MAX, &c->sp.top_k);
    else if (is(a, "--top-p", NULL))
        r = cli_float(a, v, 0.0, 1.0, &c->sp.top_p);
    else if (is(a, "--min-p", NULL))
        r = cli_float(a, v, 0.0, 1.0, &c->sp.min_p);
    else if (is(a, "--repeat-penalty", NULL))
        r = cli_float(a, v, 0.0, 100.0, &c->sp.repeat_penalty);
    else if (is(a, "--repeat-last-n", NULL))
        r = cli_int(a, v, 0, 1 << 20, &c->sp.penalty_last_n);
    else if (is(a, "--seed", "-s")) {
        char *end;
        errno = 0;
        unsigned long long s = v ? strtoull(v, &end, 10) : 0;
        if (!v || errno || end == v || *end || v[0] == '-') {
            fprintf(stderr, "kfchat: --seed needs a non-negative integer (got '%s')\n",
                    v ? v : "");
            return -1;
        }
        c->sp.seed = s;
    } else
        return 0;
    (void)f;
    if (r < 0)
        return -1;
    c->set |= set_flag(a);
    *i += 1;
    return 1;
}

void cli_common_help(FILE *f)
{
    fputs("  -m, --model FILE      GGUF model (default: the installed default model)\n"
          "  -t, --threads N       CPU threads (default: all cores)\n"
          "  -c, --ctx-size N      context size in tokens (default: min(training, 4096); the\n"
          "                        training context with --kv-budget in tokens or memory)\n"
          "  -b, --batch-size N    tokens per prompt batch (default: 512)\n"
          "      --template NAME   chat template override (", f);
    fputs(chat_template_names(), f);
    fputs(")\n"
          "      --temp T          temperature, 0 = greedy (default 0.8)\n"
          "      --top-k K         (default 40, 0 = off)   --top-p P (default 0.95)\n"
          "      --min-p P         (default 0.05)          --repeat-penalty R (default 1.0)\n"
          "      --repeat-last-n N (default 64)            -s, --seed S (default: random)\n"
          "      --kv-policy P     KV cache policy: keyformer (default), keyformer-static, h2o,\n"
          "                        sink, window, full\n"
          "      --kv-budget X     KV entries kept per layer and head: tokens (2048), share of\n"
          "                        the context (50%) or memory (256MiB); default: no eviction\n"
          "      --kv-recent PCT   recent window, % of the budget (default 30)\n"
          "      --tau-init T, --tau-end T, --tau-steps N   Keyformer temperature schedule\n"
          "                        (default 1 -> 2 over 128 steps)   --kv-seed S  noise seed\n"
          "      --kv-type T       KV cache storage: f16 (default) or q8_0 (8-bit blocks: about\n"
          "                        half the GPU memory and reads of f16)\n"
          "      --gpu on|off|auto run on the GPU (auto, the default: when there is one)\n"
          "  -ngl, --n-gpu-layers N  layers on the GPU, counted from the last (default: all)\n"
          "  -v, --verbose         timings and model details on stderr\n", f);
}

/*
 * A CUDA build that runs on the CPU (no device, or none usable) says so on its own once per data
 * directory, when standard error is a terminal: later runs stay quiet (--gpu on or -v repeat it).
 */
static int first_gpu_notice(const char *note)
{
#ifdef HAVE_CUDA
    char dir[4096], path[4200];
    if (!isatty(STDERR_FILENO) || paths_data_dir(dir, sizeof dir) != STATUS_OK)
        return 0;
    snprintf(path, sizeof path, "%s/gpu-notice", dir);
    if (access(path, F_OK) == 0 || paths_mkdir_p(dir, 0700) != STATUS_OK)
        return 0;
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    fprintf(f, "%s\n", note);
    fclose(f);
    return 1;
#else
    (void)note;
    return 0;
#endif
}

struct engine *cli_open_engine(const struct cli_common *c)
{
    char path[4096], err[1024];
    if (c->model)
        snprintf(path, sizeof path, "%s", c->model);
    else if (paths_default_model(path, sizeof path) != STATUS_OK) {
        fprintf(stderr, "kfchat: cannot locate the data directory (set HOME or XDG_DATA_HOME)\n");
        return NULL;
    } else if (access(path, R_OK) != 0) {
        fprintf(stderr, "kfchat: default model %s is not installed (run ./quickstart, or pass -m "
                        "FILE)\n", path);
        return NULL;
    }
    struct engine_params p = { .model_path = path, .n_ctx = c->n_ctx, .n_batch = c->n_batch,
                               .n_threads = c->n_threads, .template_name = c->template_name,
                               .kv = c->kv, .kv_budget = c->kv_budget, .kv_set = c->kv_set,
                               .n_gpu_layers = c->n_gpu_layers };
    struct engine *e;
    if (engine_open(&e, &p, err, sizeof err) != STATUS_OK) {
        fprintf(stderr, "kfchat: %s\n", err);
        return NULL;
    }
    struct engine_info gi;
    engine_get_info(e, &gi);
    if (gi.gpu_note && gi.gpu_note[0] &&
        (c->gpu_asked || c->verbose || (gi.gpu_layers == 0 && first_gpu_notice(gi.gpu_note))))
        fprintf(stderr, "kfchat: %s\n", gi.gpu_note); /* where the layers run */
    if (c->verbose) {
        struct engine_info in;
        engine_get_info(e, &in);
        fprintf(stderr, "kfchat: %s (%s, %.1fM params, %.1f MiB), ctx %d, %d threads, "
                        "template %s, kernels %s, KV %s budget %d, %s (%.1f MiB allocated)\n",
                in.name, in.arch, in.n_params / 1e6, in.file_bytes / 1048576.0, in.n_ctx,
                in.n_threads, in.template_name, in.simd, in.kv_policy, in.kv_budget, in.kv_type,
                in.kv_bytes / 1048576.0);
    }
    return e;
}

char *cli_read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0)
            break;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (!buf || ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void on_sigint(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

void cli_catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// ---- saved conversations ------------------------------------------------------------------

int cli_session_opt(struct cli_session *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "--no-save")) {
        o->no_save = 1;
        return 1;
    }
    if (strcmp(a, "--session") && strcmp(a, "--resume"))
        return 0;
    if (!v || !*v) {
        fprintf(stderr, "kfchat: %s needs a session %s\n", a,
                a[2] == 's' ? "name" : "id or name (or 'last')");
        return -1;
    }
    if (a[2] == 's')
        o->name = v;
    else
        o->resume = v;
    *i += 1;
    return 1;
}

int cli_text_opt(int argc, char **argv, int *i, const char **prompt, const char **file)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    const int p = !strcmp(a, "-p") || !strcmp(a, "--prompt");
    if (!p && strcmp(a, "-f") && strcmp(a, "--file"))
        return 0;
    if (!v) {
        fprintf(stderr, "kfchat: %s needs %s\n", a, p ? "a text" : "a file name");
        return -1;
    }
    *(p ? prompt : file) = v;
    *i += 1;
    return 1;
}

void cli_session_help(FILE *f)
{
    fputs("      --session NAME    continue the saved session NAME, or start it\n"
          "      --resume ID       continue saved session ID (or NAME, or 'last')\n"
          "      --no-save         do not save this conversation\n", f);
}

int cli_store_path(char *buf, size_t n)
{
    char dir[4096];
    int st = paths_data_dir(dir, sizeof dir);
    if (st != STATUS_OK)
        return st;
    if ((size_t)snprintf(buf, n, "%s/kfchat.db", dir) >= n)
        return STATUS_INVALID;
    return STATUS_OK;
}

/*
 * The value of key in a flat JSON object written by settings_json (strings unescaped, other
 * values as written) into out; 0 if found.  Enough for our own settings, not general JSON.
 */
static int json_get(const char *js, const char *key, char *out, size_t n)
{
    const char *p = js ? strchr(js, '{') : NULL;
    while (p && *p && *p != '}') {
        p++;
        while (*p == ' ' || *p == ',' || *p == '\n')
            p++;
        if (*p != '"')
            return -1;
        const char *k = ++p;
        while (*p && *p != '"')
            p++;
        size_t klen = (size_t)(p - k);
        if (*p++ != '"' || *p++ != ':')
            return -1;
        size_t o = 0;
        int match = klen == strlen(key) && !strncmp(k, key, klen);
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                char ch = *p;
                if (ch == '\\' && p[1])
                    ch = *++p == 'n' ? '\n' : *p;
                if (match && o + 1 < n)
                    out[o++] = ch;
            }
            if (*p++ != '"')
                return -1;
        } else
            for (; *p && *p != ',' && *p != '}'; p++)
                if (match && o + 1 < n)
                    out[o++] = *p;
        if (match) {
            out[o] = 0;
            return 0;
        }
    }
    return -1;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

int cli_budget_ctx(const struct cli_common *c, const char *kv_budget, const struct engine *e)
{
    struct engine_info in;
    if (!e || c->n_ctx > 0 || kv_budget_fixed(kv_budget) ||
        (c->kv_set && c->kv.policy == KV_POLICY_FULL))
        return 0;
    engine_get_info(e, &in);
    return in.n_ctx < in.n_ctx_fixed_budget ? in.n_ctx_fixed_budget : 0;
}

char *cli_settings_json(const struct cli_common *c, const struct cli_session *o,
                        const struct engine *e, uint64_t seed)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "{\"n_ctx\":%d,\"n_batch\":%d,\"n_predict\":%d,\"template\":", engine_n_ctx(e),
            c->n_batch, o->n_predict);
    if (c->template_name)
        json_str(f, c->template_name);
    else
        fputs("null", f);
    fprintf(f, ",\"kv_policy\":\"%s\",\"kv_budget\":", kv_policy_name(c->kv.policy));
    if (c->kv_budget)
        json_str(f, c->kv_budget);
    else
        fputs("null", f);
    fprintf(f, ",\"kv_type\":\"%s\"", kv_type_name(c->kv.type));
    fprintf(f, ",\"kv_recent\":%.9g,\"tau_init\":%.9g,\"tau_end\":%.9g,\"tau_steps\":%d,"
               "\"kv_seed\":%llu,\"kv_set\":%d,\"temp\":%.9g,\"top_k\":%d,\"top_p\":%.9g,"
               "\"min_p\":%.9g,\"repeat_penalty\":%.9g,\"repeat_last_n\":%d,\"seed\":%llu}",
            c->kv.recent, c->kv.tau_init, c->kv.tau_end, c->kv.tau_steps,
            (unsigned long long)c->kv.seed, c->kv_set, c->sp.temp, c->sp.top_k, c->sp.top_p,
            c->sp.min_p, c->sp.repeat_penalty, c->sp.penalty_last_n, (unsigned long long)seed);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

void cli_settings_apply(struct cli_common *c, struct cli_session *o, const char *js,
                        char *keep[2])
{
    char v[1024];
#define GET(flag, key) (!(c->set & (flag)) && json_get(js, key, v, sizeof v) == 0)
    if (GET(CLI_SET_CTX, "n_ctx"))
        c->n_ctx = atoi(v);
    if (GET(CLI_SET_BATCH, "n_batch"))
        c->n_batch = atoi(v);
    if (!o->n_predict_set && json_get(js, "n_predict", v, sizeof v) == 0)
        o->n_predict = atoi(v);
    if (GET(CLI_SET_TEMPLATE, "template") && strcmp(v, "null") && (keep[0] = strdup(v)))
        c->template_name = keep[0];
    /* a session that ran with a full cache (no --kv-* option) keeps the defaults */
    int kv_saved = json_get(js, "kv_set", v, sizeof v) == 0 && atoi(v) != 0;
    if (kv_saved && GET(CLI_SET_KV_POLICY, "kv_policy") && kv_policy_from_name(v) >= 0)
        c->kv.policy = (enum kv_policy)kv_policy_from_name(v);
    if (kv_saved && GET(CLI_SET_KV_BUDGET, "kv_budget") && strcmp(v, "null") &&
        (keep[1] = strdup(v)))
        c->kv_budget = keep[1];
    if (kv_saved && GET(CLI_SET_KV_TYPE, "kv_type") && kv_type_from_name(v) >= 0)
        c->kv.type = (enum kv_type)kv_type_from_name(v);
    if (kv_saved && GET(CLI_SET_KV_RECENT, "kv_recent"))
        c->kv.recent = strtof(v, NULL);
    if (kv_saved && GET(CLI_SET_TAU, "tau_init"))
        c->kv.tau_init = strtof(v, NULL);
    if (kv_saved && GET(CLI_SET_TAU, "tau_end"))
        c->kv.tau_end = strtof(v, NULL);
    if (kv_saved && GET(CLI_SET_TAU, "tau_steps"))
        c->kv.tau_steps = atoi(v);
    if (kv_saved && GET(CLI_SET_KV_SEED, "kv_seed"))
        c->kv.seed = strtoull(v, NULL, 10);
    if (kv_saved)
        c->kv_set = 1;
    if (GET(CLI_SET_TEMP, "temp"))
        c->sp.temp = strtof(v, NULL);
    if (GET(CLI_SET_TOP_K, "top_k"))
        c->sp.top_k = atoi(v);
    if (GET(CLI_SET_TOP_P, "top_p"))
        c->sp.top_p = strtof(v, NULL);
    if (GET(CLI_SET_MIN_P, "min_p"))
        c->sp.min_p = strtof(v, NULL);
    if (GET(CLI_SET_REPEAT, "repeat_penalty"))
        c->sp.repeat_penalty = strtof(v, NULL);
    if (GET(CLI_SET_LAST_N, "repeat_last_n"))
        c->sp.penalty_last_n = atoi(v);
    if (GET(CLI_SET_SEED, "seed"))
        c->sp.seed = strtoull(v, NULL, 10);
#undef GET
}

#ifdef HAVE_UI

struct store *cli_open_store(int readonly)
{
    char path[4200], dir[4096], err[1024];
    if (cli_store_path(path, sizeof path) != STATUS_OK || paths_data_dir(dir, sizeof dir)) {
        fprintf(stderr, "kfchat: cannot locate the data directory (set HOME or XDG_DATA_HOME)\n");
        return NULL;
    }
    if (!readonly && paths_mkdir_p(dir, 0700) != STATUS_OK) {
        fprintf(stderr, "kfchat: cannot create %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    struct store *st;
    if (store_open(&st, path, readonly ? STORE_READONLY : 0, err, sizeof err) != STATUS_OK) {
        fprintf(stderr, "kfchat: %s\n", err);
        return NULL;
    }
    return st;
}

/* The saved session o names (--resume ID|NAME|last, or an existing --session NAME) into rec;
 * 1 if found, 0 if not (a new --session), -1 after printing why. */
static int find_saved(struct store *st, const struct cli_session *o, struct store_session *rec)
{
    const char *key = o->resume ? o->resume : o->name;
    char *end;
    int rc = STATUS_NOT_FOUND;
    long long id = strtoll(key, &end, 10);
    if (o->resume && *end == 0 && id > 0)
        rc = store_session_get(st, id, rec);
    else if (o->resume && !strcmp(key, "last")) {
        struct store_session *v = NULL;
        size_t n = 0;
        rc = store_session_list(st, 1, &v, &n);
        if (rc == STATUS_OK && n == 0)
            rc = STATUS_NOT_FOUND;
        if (rc == STATUS_OK) {
            *rec = v[0];
            memset(&v[0], 0, sizeof v[0]);
        }
        store_session_array_free(v, n);
    }
    if (rc == STATUS_NOT_FOUND && (o->name || *end != 0))
        rc = store_session_find(st, key, rec);
    if (rc == STATUS_OK)
        return 1;
    if (rc == STATUS_NOT_FOUND && !o->resume)
        return 0;
    if (rc == STATUS_NOT_FOUND)
        fprintf(stderr, "kfchat: no saved session '%s' (see kfchat sessions)\n", key);
    else
        fprintf(stderr, "kfchat: %s\n", store_errmsg(st));
    return -1;
}

int cli_open_chat(struct cli_chat *ch, struct cli_common *c, struct cli_session *o)
{
    struct store_session rec = { 0 };
    char *settings = NULL, err[1024];
    int found = 0, rc = 1;
    memset(ch, 0, sizeof(*ch));
    if (o->no_save && (o->name || o->resume)) {
        fprintf(stderr, "kfchat: --no-save cannot be combined with --session or --resume\n");
        return 2;
    }
    if ((o->name || o->resume || o->save) && !o->no_save && !(ch->st = cli_open_store(0)))
        return 1;
    if (ch->st && store_is_readonly(ch->st)) {
        char path[4200];
        cli_store_path(path, sizeof path);
        fprintf(stderr, "kfchat: %s is read-only (--no-save chats without saving)\n", path);
        cli_close_chat(ch);
        return 1;
    }
    if (ch->st && (o->name || o->resume) && (found = find_saved(ch->st, o, &rec)) < 0)
        goto out;
    if (found) {
        if (!(c->set & CLI_SET_MODEL) && rec.model_path && *rec.model_path)
            c->model = ch->model = strdup(rec.model_path);
        cli_settings_apply(c, o, rec.settings, ch->keep);
    }
    char abs[PATH_MAX];
    if (ch->st && c->model && !ch->model && realpath(c->model, abs))
        c->model = ch->model = strdup(abs); /* a saved session must find its model from anywhere */
    if (!(ch->e = cli_open_engine(c)))
        goto out;
    if (sampler_new(&ch->s, &c->sp, engine_n_vocab(ch->e)) != STATUS_OK) {
        fprintf(stderr, "kfchat: cannot create the sampler\n");
        goto out;
    }
    settings = cli_settings_json(c, o, ch->e, sampler_seed(ch->s));
    struct sampler_params sp = c->sp;
    sp.seed = sampler_seed(ch->s);
    struct session_opts so = { .name = found ? NULL : o->name, .resume_id = found ? rec.id : 0,
                               .system = o->system, .n_predict = o->n_predict,
                               .sampling = &sp, .settings = settings };
    if (session_open(&ch->ss, ch->e, ch->s, ch->st, &so, err, sizeof err) != STATUS_OK) {
        fprintf(stderr, "kfchat: %s\n", err);
        goto out;
    }
    if (*session_resume_note(ch->ss))
        fprintf(stderr, "kfchat: session %lld: %s\n", (long long)session_id(ch->ss),
                session_resume_note(ch->ss));
    rc = 0;
out:
    store_session_clear(&rec);
    free(settings);
    if (rc)
        cli_close_chat(ch);
    return rc;
}

int cli_chat_resume(struct cli_chat *ch, const struct cli_common *c, const struct cli_session *o,
                    const char *key)
{
    struct store_session rec = { 0 };
    struct cli_session q = *o;
    char err[1024];
    q.name = NULL;
    q.resume = key;
    if (find_saved(ch->st, &q, &rec) <= 0)
        return 1;
    struct sampler_params sp = c->sp;
    sp.seed = sampler_seed(ch->s);
    struct session_opts so = { .resume_id = rec.id, .n_predict = o->n_predict, .sampling = &sp };
    store_session_clear(&rec);
    session_close(ch->ss);
    engine_reset(ch->e);
    if (session_open(&ch->ss, ch->e, ch->s, ch->st, &so, err, sizeof err) != STATUS_OK) {
        ch->ss = NULL;
        fprintf(stderr, "kfchat: %s\n", err);
        return -1;
    }
    if (*session_resume_note(ch->ss))
        fprintf(stderr, "kfchat: session %lld: %s\n", (long long)session_id(ch->ss),
                session_resume_note(ch->ss));
    return 0;
}

void cli_close_chat(struct cli_chat *ch)
{
    session_close(ch->ss);
    sampler_free(ch->s);
    engine_close(ch->e);
    store_close(ch->st);
    free(ch->model);
    free(ch->keep[0]);
    free(ch->keep[1]);
    memset(ch, 0, sizeof(*ch));
}

#else /* built without the session store: conversations live in memory only */

struct store *cli_open_store(int readonly)
{
    (void)readonly;
    fprintf(stderr, "kfchat: this kfchat was built without the session store (--without-ui)\n");
    return NULL;
}

int cli_open_chat(struct cli_chat *ch, struct cli_common *c, struct cli_session *o)
{
    char err[1024];
    memset(ch, 0, sizeof(*ch));
    if ((o->name || o->resume) && !cli_open_store(0))
        return 1;
    if (!(ch->e = cli_open_engine(c)))
        return 1;
    struct session_opts so = { .system = o->system, .n_predict = o->n_predict, .sampling = &c->sp };
    if (sampler_new(&ch->s, &c->sp, engine_n_vocab(ch->e)) != STATUS_OK)
        snprintf(err, sizeof err, "cannot create the sampler");
    else if (session_open(&ch->ss, ch->e, ch->s, NULL, &so, err, sizeof err) == STATUS_OK)
        return 0;
    fprintf(stderr, "kfchat: %s\n", err);
    cli_close_chat(ch);
    return 1;
}

int cli_chat_resume(struct cli_chat *ch, const struct cli_common *c, const struct cli_session *o,
                    const char *key)
{
    (void)ch, (void)c, (void)o, (void)key;
    cli_open_store(0);
    return 1;
}

void cli_close_chat(struct cli_chat *ch)
{
    session_close(ch->ss);
    sampler_free(ch->s);
    engine_close(ch->e);
    memset(ch, 0, sizeof(*ch));
}
#endif
