/*
 * cmd_bench.c — `kfchat bench`: prompt-processing and generation speed, as llama-bench
 * measures them: ppN = N prompt tokens evaluated in batches after DEPTH tokens already in the
 * context; tgN = N tokens evaluated one at a time after DEPTH tokens.  Tokens are random ids
 * (speed does not depend on them).  Each figure is the median over the repeats, after one
 * untimed run of the same test (as llama-bench warms up; --no-warmup leaves it out): a test's
 * first run in a process is slow (an H100's first pp512 at a fifth of the speed of the next
 * ones: docs/cuda.md, session 20).  Peak RSS is the process's high-water mark.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "cuda/cuda_backend.h"

#define MAX_DEPTHS 32
#define MAX_REPEATS 100

struct bench_result {
    const char *kind; /* "pp" or "tg" */
    int n, depth;
    double tps;       /* median tokens/s */
    double samples[MAX_REPEATS];
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_REPEATS];
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void fill_random(int32_t *t, int n, int n_vocab, uint64_t *state)
{
    for (int i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        t[i] = (int32_t)((*state >> 33) % (uint64_t)n_vocab);
    }
}

static int parse_depths(const char *s, int *d, int *nd)
{
    char *owned = NULL;
    const char *items[MAX_DEPTHS];
    int r = cli_split_list("-d", "depths", s, MAX_DEPTHS, &owned, items, nd);
    for (int i = 0; i < *nd && !r; i++)
        r = cli_int("-d", items[i], 0, 1 << 22, &d[i]);
    free(owned);
    return r;
}

/* Time one test; returns tokens/s or a negative value on error. */
static double run_one(struct engine *e, const int32_t *toks, int depth, int n, int batch)
{
    engine_truncate(e, depth);
    double t0 = cli_now();
    if (batch) {
        if (engine_eval(e, toks, n, NULL, NULL, NULL))
            return -1;
    } else {
        for (int i = 0; i < n; i++)
            if (engine_eval(e, toks + i, 1, NULL, NULL, NULL))
                return -1;
    }
    return n / (cli_now() - t0);
}

static void print_table(const struct engine_info *in, const struct bench_result *r, int nr,
                        long rss_kb)
{
    printf("| %-28s | %9s | %8s | %7s | %-14s | %10s |\n", "model", "size", "params", "threads",
           "test", "t/s");
    printf("|%s|%s|%s|%s|%s|%s|\n", "------------------------------", "-----------:",
           "---------:", "--------:", "----------------", "-----------:");
    for (int i = 0; i < nr; i++) {
        char test[32];
        if (r[i].depth)
            snprintf(test, sizeof test, "%s%d @ d%d", r[i].kind, r[i].n, r[i].depth);
        else
            snprintf(test, sizeof test, "%s%d", r[i].kind, r[i].n);
        printf("| %-28.28s | %5.1f MiB | %7.1fM | %7d | %-14s | %10.2f |\n", in->name,
               in->file_bytes / 1048576.0, in->n_params / 1e6, in->n_threads, test, r[i].tps);
    }
    char gpu[256];
    cuda_probe(gpu, sizeof gpu);
    printf("\npeak RSS %.1f MiB, KV cache %.1f MiB allocated (type %s), kernels %s\n",
           rss_kb / 1024.0, in->kv_bytes / 1048576.0, in->kv_type, in->simd);
    if (in->gpu_layers > 0) {
        size_t fr, tot;
        cuda_mem_info(&fr, &tot);
        printf("backend CUDA, %d/%d layers on %s; GPU memory: model %.1f MiB, device in use "
               "%.1f of %.1f MiB\n", in->gpu_layers, in->n_layer, gpu, in->gpu_bytes / 1048576.0,
               (tot - fr) / 1048576.0, tot / 1048576.0);
    } else
        printf("backend CPU; GPU: %s\n", in->gpu_note && in->gpu_note[0] ? in->gpu_note : gpu);
}

static void print_json(const struct engine_info *in, const struct bench_result *r, int nr,
                       int reps, int warmup, long rss_kb)
{
    printf("{\"model\": \"%s\", \"path\": \"%s\", \"arch\": \"%s\", \"file_bytes\": %zu, "
           "\"n_params\": %llu, \"threads\": %d, \"kernels\": \"%s\", \"kv_bytes\": %zu, "
           "\"kv_type\": \"%s\", \"peak_rss_bytes\": %ld, \"gpu_layers\": %d, "
           "\"gpu_bytes\": %zu, \"warmup\": %s, \"results\": [",
           in->name, in->path, in->arch, in->file_bytes, (unsigned long long)in->n_params,
           in->n_threads, in->simd, in->kv_bytes, in->kv_type, rss_kb * 1024, in->gpu_layers,
           in->gpu_bytes, warmup ? "true" : "false");
    for (int i = 0; i < nr; i++) {
        printf("%s{\"test\": \"%s%d\", \"n\": %d, \"depth\": %d, \"tokens_per_s\": %.3f, "
               "\"samples\": [", i ? ", " : "", r[i].kind, r[i].n, r[i].n, r[i].depth, r[i].tps);
        for (int k = 0; k < reps; k++)
            printf("%s%.3f", k ? ", " : "", r[i].samples[k]);
        printf("]}");
    }
    printf("]}\n");
}

int cmd_bench(int argc, char **argv)
{
    struct cli_common c;
    int n_prompt = 512, n_gen = 128, reps = 3, json = 0, depths[MAX_DEPTHS] = { 0 }, nd = 1;
    int warmup = 1;
    cli_common_init(&c);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt(&c, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r)
            continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt"))
            r = cli_int(a, v, 0, 1 << 20, &n_prompt), i++;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen"))
            r = cli_int(a, v, 0, 1 << 20, &n_gen), i++;
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions"))
            r = cli_int(a, v, 1, MAX_REPEATS, &reps), i++;
        else if (!strcmp(a, "-d") || !strcmp(a, "--depth"))
            r = parse_depths(v, depths, &nd), i++;
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--no-warmup"))
            warmup = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: kfchat bench [options] [-p 512] [-n 128] [-d DEPTH[,DEPTH...]] "
                 "[-r REPEATS] [--no-warmup] [--json]\n"
                 "  each figure is the median of REPEATS runs (default 3), after an untimed one");
            cli_common_help(stdout);
            return 0;
        } else {
            fprintf(stderr, "kfchat: bench: unknown option '%s'\n", a);
            return 2;
        }
        if (r < 0)
            return 2;
    }
    int max_depth = 0;
    for (int i = 0; i < nd; i++)
        if (depths[i] > max_depth)
            max_depth = depths[i];
    int need = max_depth + (n_prompt > n_gen ? n_prompt : n_gen);
    if (c.n_ctx == 0)
        c.n_ctx = need > 16 ? need : 16;
    else if (c.n_ctx < need) {
        fprintf(stderr, "kfchat: bench needs a context of %d tokens (-c %d is too small)\n", need,
                c.n_ctx);
        return 2;
    }
    struct engine *e = cli_open_engine(&c);
    if (!e)
        return 1;
    struct engine_info in;
    engine_get_info(e, &in);
    int32_t *toks = malloc((size_t)(need + 1) * sizeof(int32_t));
    struct bench_result res[2 * MAX_DEPTHS];
    int nr = 0, rc = 1;
    uint64_t rng = 12345;
    if (!toks)
        goto out;
    fill_random(toks, need, in.n_vocab, &rng);
    for (int di = 0; di < nd; di++) {
        int d = depths[di];
        engine_reset(e);
        if (d && engine_eval(e, toks, d, NULL, NULL, NULL)) {
            fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
            goto out;
        }
        for (int kind = 0; kind < 2; kind++) {
            int n = kind == 0 ? n_prompt : n_gen;
            if (!n)
                continue;
            struct bench_result *r = &res[nr++];
            r->kind = kind == 0 ? "pp" : "tg";
            r->n = n;
            r->depth = d;
            /* the warm-up: the same test, untimed (16 tokens of a generation test) */
            if (warmup && run_one(e, toks + d, d, kind == 0 || n < 16 ? n : 16, kind == 0) < 0) {
                fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
                goto out;
            }
            for (int k = 0; k < reps; k++) {
                r->samples[k] = run_one(e, toks + d, d, n, kind == 0);
                if (r->samples[k] < 0) {
                    fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
                    goto out;
                }
            }
            r->tps = median(r->samples, reps);
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (json)
        print_json(&in, res, nr, reps, warmup, ru.ru_maxrss);
    else
        print_table(&in, res, nr, ru.ru_maxrss);
    rc = 0;
out:
    free(toks);
    engine_close(e);
    return rc;
}
