/*
 * cli.c — option parsing and engine opening shared by the kfchat subcommands.  Every error is
 * one line on stderr starting with "kfchat: ".
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

volatile sig_atomic_t cli_interrupted;

void cli_common_init(struct cli_common *c)
{
    memset(c, 0, sizeof(*c));
    c->sp = sampler_params_default();
    c->kv = kv_params_default();
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
    if (is(a, "--kv-policy", NULL)) {
        if (!v || kv_policy_from_name(v) < 0) {
            fprintf(stderr, "kfchat: --kv-policy needs one of: %s (got '%s')\n", kv_policy_names(),
                    v ? v : "");
            return -1;
        }
        c->kv.policy = (enum kv_policy)kv_policy_from_name(v);
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
    *i += 1;
    return 1;
}

void cli_common_help(FILE *f)
{
    fputs("  -m, --model FILE      GGUF model (default: the installed default model)\n"
          "  -t, --threads N       CPU threads (default: all cores)\n"
          "  -c, --ctx-size N      context size in tokens (default: min(training, 4096))\n"
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
          "  -v, --verbose         timings and model details on stderr\n", f);
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
                               .kv = c->kv, .kv_budget = c->kv_budget, .kv_set = c->kv_set };
    struct engine *e;
    if (engine_open(&e, &p, err, sizeof err) != STATUS_OK) {
        fprintf(stderr, "kfchat: %s\n", err);
        return NULL;
    }
    if (c->verbose) {
        struct engine_info in;
        engine_get_info(e, &in);
        fprintf(stderr, "kfchat: %s (%s, %.1fM params, %.1f MiB), ctx %d, %d threads, "
                        "template %s, kernels %s, KV %s budget %d (%.1f MiB allocated)\n",
                in.name, in.arch, in.n_params / 1e6, in.file_bytes / 1048576.0, in.n_ctx,
                in.n_threads, in.template_name, in.simd, in.kv_policy, in.kv_budget,
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
