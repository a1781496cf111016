/*
 * cmd_eval.c — `kfchat eval`: how much a KV cache policy costs in quality on long real texts.
 *
 * For each document (its first N tokens) and each (policy, budget):
 *   - teacher-forced perplexity: the document is fed in chunks of C tokens with every token's
 *     logits; PPL = exp(mean −log p(token i | tokens < i)) over i = 1 .. N−1;
 *   - greedy agreement: after the document, the `full` cache generates G greedy tokens; the policy
 *     run continues from its own (evicted) cache and is teacher-forced with those G tokens one
 *     decode step at a time; the share of steps whose argmax equals full's token is reported.
 * `full` runs once per document (its NLLs and continuation are kept for all policies, and with
 * --ref-dir in a file that later runs reuse); results are averaged over documents as the mean of
 * per-document ratios.  Eviction happens only between
 * forward calls, so C bounds how far a chunk's tokens see past the budget (small C = faithful).
 *
 * Exactness shortcut: a chunk that starts at a position <= the budget attends over a cache from
 * which nothing has been evicted yet, through the same code as `full`, so its logits are full's
 * bit for bit.  Such chunks are fed without logits and full's NLLs are reused (--recompute
 * turns this off; tests/test_eval.sh checks both ways give the same numbers).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_LIST 32

struct doc {
    const char *path;
    int32_t *tok;       /* the first n tokens */
    double *nll;        /* [n] full's NLL of token i (i >= 1) */
    int32_t *cont;      /* [G] full's greedy continuation */
    double ppl, cont_ppl;
};

struct run_cfg {
    enum kv_policy policy;
    const char *budget_arg; /* as given ("50%", "1500", "64MiB") */
    char budget_str[32];    /* what the engine is given */
    int budget;             /* entries per layer and KV head, from the engine */
    double *ppl, *ratio, *agree, *cont_ppl; /* per document */
};

struct eval_opts {
    int n_tok, chunk, greedy, json, recompute;
    const char *ref_dir;
};

static void help(void)
{
    puts("usage: kfchat eval [options] --text FILE [--text FILE...] [--kv-policy P[,P...]]\n"
         "                   [--kv-budget X[,X...]] [--tokens N] [--chunk C] [--greedy G] [--json]\n"
         "  Teacher-forced perplexity of each text's first N tokens under each KV policy and\n"
         "  budget, relative to the full cache, and greedy agreement with full's continuation.\n"
         "      --text FILE       a UTF-8 text (repeat; shorter than N tokens: skipped with a note)\n"
         "      --kv-policy LIST  policies, comma separated (default keyformer; full is always\n"
         "                        the reference)\n"
         "      --kv-budget LIST  budgets, comma separated: X% of N, tokens, or memory (default 50%)\n"
         "      --tokens N        tokens per document (default 3000)\n"
         "      --chunk C         tokens per forward call; eviction happens between calls\n"
         "                        (default 16; also the batch size)\n"
         "      --greedy G        continuation tokens for the agreement (default 256; 0 = off)\n"
         "      --recompute       compute logits the budget cannot have changed yet (a check)\n"
         "      --ref-dir DIR     keep full's results per document in DIR and reuse them (lets\n"
         "                        a sweep run as parallel jobs without repeating full)\n"
         "      --json            every number as JSON on standard output\n"
         "  Keyformer's tau follows the position, as in a chat (engine/kv_cache.h).");
    cli_common_help(stdout);
}

/* A budget for the engine: "X%" is a share of the evaluated length N, not of the context. */
static int budget_to_engine(const char *arg, int n_tok, char *out, size_t len)
{
    size_t k = strlen(arg);
    if (k > 1 && arg[k - 1] == '%') {
        char num[32];
        char *end;
        snprintf(num, sizeof num, "%.*s", (int)(k - 1), arg);
        double v = strtod(num, &end);
        if (end == num || *end || !(v > 0 && v <= 100)) {
            fprintf(stderr, "kfchat: --kv-budget %s: a share must be in (0, 100%%]\n", arg);
            return -1;
        }
        int t = (int)floor(v / 100.0 * n_tok + 1e-9);
        snprintf(out, len, "%d", t < 1 ? 1 : t);
    } else
        snprintf(out, len, "%s", arg);
    return 0;
}

static double log_sum_exp(const float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp((double)(x[i] - mx));
    return mx + log(s);
}

static int32_t argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Read a file and keep its first n_tok tokens (no special-token parsing; BOS as the model wants). */
static int load_doc(struct engine *e, const char *path, int n_tok, int32_t **out, int *got)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "kfchat: cannot open %s\n", path);
        return -1;
    }
    size_t len;
    char *text = cli_read_all(f, &len);
    fclose(f);
    if (!text) {
        fprintf(stderr, "kfchat: cannot read %s\n", path);
        return -1;
    }
    /*
     * Tokenize a prefix only (books can be long): ~4 bytes a token in English, grown until N
     * tokens plus a margin fit, so the cut (at a UTF-8 boundary) never changes the kept tokens.
     */
    size_t pre = (size_t)n_tok * 6 + 4096;
    int32_t *toks = NULL;
    int n = 0;
    for (;;) {
        if (pre >= len)
            pre = len;
        while (pre < len && ((unsigned char)text[pre] & 0xc0) == 0x80)
            pre--;
        free(toks);
        toks = NULL;
        if (engine_tokenize(e, text, pre, 1, 0, &toks, &n) != STATUS_OK) {
            fprintf(stderr, "kfchat: %s: %s\n", path, engine_errmsg(e));
            free(text);
            return -1;
        }
        if (pre == len || n >= n_tok + 64)
            break;
        pre *= 2;
    }
    free(text);
    *out = toks;
    *got = pre == len ? n : n_tok; /* whole text: the true count (for the skip note) */
    return 0;
}

/*
 * One document through one engine.  ref == NULL: this is `full`; fill d->nll, d->cont and the
 * continuation's own perplexity.  Else: fill nll (the policy's), count agreement with ref, and
 * the perplexity of ref under the policy.  reuse_below: chunks starting at a position <= this
 * take full's NLLs (see the file comment); -1 = never.
 */
static int run_doc(struct engine *e, const struct eval_opts *o, struct doc *d, double *nll,
                   const int32_t *ref, int reuse_below, float *logits, int *agree, double *cont_ppl)
{
    int N = o->n_tok, C = o->chunk, V = engine_n_vocab(e);
    engine_reset(e);
    const float *last = NULL;
    for (int p0 = 0; p0 < N; p0 += C) {
        int c = N - p0 < C ? N - p0 : C;
        if (cli_interrupted)
            return -1;
        if (p0 <= reuse_below && p0 + c < N) {
            if (engine_eval(e, d->tok + p0, c, NULL, NULL, NULL)) {
                fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
                return -1;
            }
            for (int p = p0; p < p0 + c; p++)
                nll[p + 1] = d->nll[p + 1];
            continue;
        }
        if (engine_eval_all(e, d->tok + p0, c, logits)) {
            fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
            return -1;
        }
        for (int r = 0; r < c; r++) {
            int p = p0 + r;
            const float *row = logits + (size_t)r * V;
            if (p + 1 < N)
                nll[p + 1] = log_sum_exp(row, V) - row[d->tok[p + 1]];
            else
                last = row;
        }
    }
    /* the continuation: one decode step per token, so eviction works per step */
    int G = o->greedy, hits = 0;
    double cnll = 0;
    const float *row = last;
    for (int g = 0; g < G; g++) {
        if (g > 0) {
            int32_t t = ref ? ref[g - 1] : d->cont[g - 1];
            if (engine_eval(e, &t, 1, NULL, NULL, NULL)) {
                fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
                return -1;
            }
            row = engine_logits(e);
        }
        int32_t best = argmax(row, V);
        if (!ref)
            d->cont[g] = best;
        int32_t want = ref ? ref[g] : best;
        hits += best == want;
        cnll += log_sum_exp(row, V) - row[want];
    }
    *agree = hits;
    *cont_ppl = G ? exp(cnll / G) : 0;
    return 0;
}

static double ppl_of(const double *nll, int n)
{
    double s = 0;
    for (int i = 1; i < n; i++)
        s += nll[i];
    return exp(s / (n - 1));
}

/*
 * The reference cache: full's NLLs and continuation of one document, keyed by everything they
 * depend on (model file, tokens, N, G, chunk).  Written to a temporary name and renamed, so
 * parallel jobs never read half a file.
 */
#define REF_MAGIC "KFEVREF1"

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void ref_path(struct engine *e, const struct eval_opts *o, const struct doc *d, char *out,
                     size_t len)
{
    const char *fp = engine_model_fingerprint(e);
    int dims[3] = { o->n_tok, o->greedy, o->chunk };
    uint64_t h = fnv(0xcbf29ce484222325ULL, fp, strlen(fp));
    h = fnv(h, dims, sizeof dims);
    h = fnv(h, d->tok, (size_t)o->n_tok * sizeof(int32_t));
    snprintf(out, len, "%s/ref-%016llx.bin", o->ref_dir, (unsigned long long)h);
}

static int ref_load(const char *path, const struct eval_opts *o, struct doc *d)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char magic[8];
    int dims[3], ok = 0;
    int32_t *tok = malloc((size_t)o->n_tok * sizeof(int32_t));
    if (tok && fread(magic, 1, 8, f) == 8 && !memcmp(magic, REF_MAGIC, 8) &&
        fread(dims, sizeof dims, 1, f) == 1 && dims[0] == o->n_tok && dims[1] == o->greedy &&
        dims[2] == o->chunk && fread(tok, sizeof(int32_t), (size_t)o->n_tok, f) == (size_t)o->n_tok &&
        !memcmp(tok, d->tok, (size_t)o->n_tok * sizeof(int32_t)) &&
        fread(d->nll, sizeof(double), (size_t)o->n_tok, f) == (size_t)o->n_tok &&
        fread(d->cont, sizeof(int32_t), (size_t)o->greedy, f) == (size_t)o->greedy &&
        fread(&d->cont_ppl, sizeof(double), 1, f) == 1)
        ok = 1;
    free(tok);
    fclose(f);
    return ok ? 0 : -1;
}

static void ref_save(const char *path, const struct eval_opts *o, const struct doc *d)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int dims[3] = { o->n_tok, o->greedy, o->chunk };
    if (!f) {
        fprintf(stderr, "kfchat: eval: cannot write %s (reference not kept)\n", tmp);
        return;
    }
    int bad = fwrite(REF_MAGIC, 1, 8, f) != 8 || fwrite(dims, sizeof dims, 1, f) != 1 ||
              fwrite(d->tok, sizeof(int32_t), (size_t)o->n_tok, f) != (size_t)o->n_tok ||
              fwrite(d->nll, sizeof(double), (size_t)o->n_tok, f) != (size_t)o->n_tok ||
              fwrite(d->cont, sizeof(int32_t), (size_t)o->greedy, f) != (size_t)o->greedy ||
              fwrite(&d->cont_ppl, sizeof(double), 1, f) != 1;
    if (fclose(f) || bad || rename(tmp, path)) {
        fprintf(stderr, "kfchat: eval: cannot write %s (reference not kept)\n", path);
        remove(tmp);
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : 0;
}

static void print_table(const struct engine_info *in, const struct eval_opts *o,
                        const struct kv_params *kv, const struct doc *docs, int nd, int ns,
                        const struct run_cfg *cfg, int nc)
{
    double full_ppl[4096];
    for (int i = 0; i < nd; i++)
        full_ppl[i] = docs[i].ppl;
    printf("model %s; %d documents x %d tokens, chunk %d, greedy %d; recent %.0f%% of the "
           "budget, tau %g -> %g over %d tokens past the budget, noise seed %llu\n\n",
           in->name, nd, o->n_tok, o->chunk, o->greedy, kv->recent * 100.0, kv->tau_init,
           kv->tau_end, kv->tau_steps, (unsigned long long)kv->seed);
    if (ns)
        printf("(%d shorter text%s skipped)\n\n", ns, ns > 1 ? "s" : "");
    printf("| policy | budget | docs | PPL | PPL/full | Δ%% | greedy agreement |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    printf("| full | - | %d | %.3f | 1.0000 | +0.00 | %s |\n", nd, mean(full_ppl, nd),
           o->greedy ? "100.0%" : "-");
    for (int k = 0; k < nc; k++) {
        const struct run_cfg *r = &cfg[k];
        double ratio = mean(r->ratio, nd);
        char ag[32] = "-";
        if (o->greedy)
            snprintf(ag, sizeof ag, "%.1f%%", 100.0 * mean(r->agree, nd));
        printf("| %s | %s (%d) | %d | %.3f | %.4f | %+.2f | %s |\n", kv_policy_name(r->policy),
               r->budget_arg, r->budget, nd, mean(r->ppl, nd), ratio, 100.0 * (ratio - 1.0), ag);
    }
}

static void print_json(const struct engine_info *in, const struct eval_opts *o,
                       const struct kv_params *kv, const struct doc *docs, int nd,
                       const char *const *skipped, int ns, const struct run_cfg *cfg, int nc)
{
    printf("{\"model\": ");
    json_str(in->name);
    printf(", \"path\": ");
    json_str(in->path);
    printf(", \"tokens\": %d, \"chunk\": %d, \"greedy\": %d, \"kv_recent\": %.4f, "
           "\"tau_init\": %g, \"tau_end\": %g, \"tau_steps\": %d, \"kv_seed\": %llu, "
           "\"threads\": %d, \"kernels\": \"%s\",\n \"documents\": [",
           o->n_tok, o->chunk, o->greedy, kv->recent, kv->tau_init, kv->tau_end, kv->tau_steps,
           (unsigned long long)kv->seed, in->n_threads, in->simd);
    for (int i = 0; i < nd; i++) {
        printf("%s\n  {\"path\": ", i ? "," : "");
        json_str(docs[i].path);
        printf(", \"ppl_full\": %.6f, \"continuation_ppl_full\": %.6f}", docs[i].ppl,
               docs[i].cont_ppl);
    }
    printf("],\n \"skipped\": [");
    for (int i = 0; i < ns; i++) {
        printf("%s", i ? ", " : "");
        json_str(skipped[i]);
    }
    printf("],\n \"results\": [");
    for (int k = 0; k < nc; k++) {
        const struct run_cfg *r = &cfg[k];
        double ratio = mean(r->ratio, nd);
        printf("%s\n  {\"policy\": \"%s\", \"budget\": ", k ? "," : "", kv_policy_name(r->policy));
        json_str(r->budget_arg);
        printf(", \"budget_tokens\": %d, \"docs\": %d, \"ppl_mean\": %.6f, \"ppl_ratio_mean\": "
               "%.6f, \"delta_pct\": %.4f, \"agreement_mean\": %.6f, \"per_doc\": [",
               r->budget, nd, mean(r->ppl, nd), ratio, 100.0 * (ratio - 1.0),
               o->greedy ? mean(r->agree, nd) : 0.0);
        for (int i = 0; i < nd; i++)
            printf("%s{\"doc\": %d, \"ppl\": %.6f, \"ppl_ratio\": %.6f, \"agreement\": %.6f, "
                   "\"continuation_ppl\": %.6f}",
                   i ? ", " : "", i, r->ppl[i], r->ratio[i], r->agree[i], r->cont_ppl[i]);
        printf("]}");
    }
    printf("]}\n");
}

static struct engine *open_cfg(const struct cli_common *c, enum kv_policy pol, const char *budget)
{
    struct cli_common cc = *c;
    cc.kv.policy = pol;
    cc.kv_set = pol != KV_POLICY_FULL;
    cc.kv_budget = pol != KV_POLICY_FULL ? budget : NULL;
    return cli_open_engine(&cc);
}

int cmd_eval(int argc, char **argv)
{
    struct cli_common c;
    struct eval_opts o = { .n_tok = 3000, .chunk = 16, .greedy = 256 };
    const char *texts[4096], *pol_items[MAX_LIST], *bud_items[MAX_LIST];
    const char *skipped[4096];
    char *pol_owned = NULL, *bud_owned = NULL;
    int nt = 0, np = 0, nb = 0, rc = 1, r = 0;
    cli_common_init(&c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--kv-policy"))
            r = cli_split_list(a, "policies", v, MAX_LIST, &pol_owned, pol_items, &np), i++;
        else if (!strcmp(a, "--kv-budget"))
            r = cli_split_list(a, "budgets", v, MAX_LIST, &bud_owned, bud_items, &nb), i++;
        else if (!strcmp(a, "--text")) {
            if (!v || nt == 4096) {
                fprintf(stderr, "kfchat: --text needs a file name (at most 4096 texts)\n");
                r = -1;
            } else
                texts[nt++] = v;
            i++;
        } else if (!strcmp(a, "--tokens"))
            r = cli_int(a, v, 16, 1 << 20, &o.n_tok), i++;
        else if (!strcmp(a, "--chunk"))
            r = cli_int(a, v, 1, 4096, &o.chunk), i++;
        else if (!strcmp(a, "--greedy"))
            r = cli_int(a, v, 0, 1 << 16, &o.greedy), i++;
        else if (!strcmp(a, "--json"))
            o.json = 1;
        else if (!strcmp(a, "--recompute"))
            o.recompute = 1;
        else if (!strcmp(a, "--ref-dir")) {
            if (!v) {
                fprintf(stderr, "kfchat: --ref-dir needs a directory\n");
                r = -1;
            }
            o.ref_dir = v;
            i++;
        }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            free(pol_owned);
            free(bud_owned);
            return 0;
        } else {
            r = cli_common_opt(&c, argc, argv, &i);
            if (r == 0) {
                fprintf(stderr, "kfchat: eval: unknown option '%s'\n", a);
                r = -1;
            }
        }
        if (r < 0)
            goto usage_error;
    }
    if (nt == 0) {
        fprintf(stderr, "kfchat: eval needs at least one --text FILE\n");
        goto usage_error;
    }
    static const char *def_pol = "keyformer", *def_bud = "50%";
    if (np == 0)
        pol_items[np++] = def_pol;
    if (nb == 0)
        bud_items[nb++] = def_bud;
    enum kv_policy pols[MAX_LIST];
    for (int k = 0; k < np; k++) {
        int p = kv_policy_from_name(pol_items[k]);
        if (p < 0) {
            fprintf(stderr, "kfchat: --kv-policy needs names from: %s (got '%s')\n",
                    kv_policy_names(), pol_items[k]);
            goto usage_error;
        }
        pols[k] = (enum kv_policy)p;
    }
    /* the context holds the document and the continuation; one chunk is one forward call */
    int need = o.n_tok + o.greedy + 1;
    if (c.n_ctx && c.n_ctx < need) {
        fprintf(stderr, "kfchat: eval needs a context of %d tokens (-c %d is too small)\n", need,
                c.n_ctx);
        goto usage_error;
    }
    if (!c.n_ctx)
        c.n_ctx = need;
    c.n_batch = o.chunk; /* τ is per position, so C does not change it (kv_cache.h) */

    int nc = 0;
    struct run_cfg *cfg = calloc((size_t)np * nb + 1, sizeof(*cfg));
    struct doc *docs = calloc((size_t)nt, sizeof(*docs));
    float *logits = NULL;
    struct engine *e = NULL;
    int nd = 0, ns = 0;
    if (!cfg || !docs)
        goto nomem;
    for (int k = 0; k < np; k++)
        for (int b = 0; b < nb; b++) {
            struct run_cfg *rc_ = &cfg[nc];
            rc_->policy = pols[k];
            rc_->budget_arg = pols[k] == KV_POLICY_FULL ? "-" : bud_items[b];
            if (pols[k] != KV_POLICY_FULL &&
                budget_to_engine(bud_items[b], o.n_tok, rc_->budget_str, sizeof rc_->budget_str))
                goto out;
            nc++;
            if (pols[k] == KV_POLICY_FULL)
                break; /* full has no budget: one row */
        }

    /* open every configuration once first: a bad budget fails now, not after the full pass */
    for (int k = 0; k < nc; k++) {
        if (!(e = open_cfg(&c, cfg[k].policy, cfg[k].budget_str)))
            goto out;
        struct engine_info ri;
        engine_get_info(e, &ri);
        cfg[k].budget = ri.kv_budget;
        engine_close(e);
        e = NULL;
    }

    /* full: tokenize, reference NLLs and continuation */
    e = open_cfg(&c, KV_POLICY_FULL, NULL);
    if (!e)
        goto out;
    /* the info's strings belong to the engine, which is closed before the output */
    struct engine_info in;
    char model_name[256], model_path[4096];
    engine_get_info(e, &in);
    snprintf(model_name, sizeof model_name, "%s", in.name);
    snprintf(model_path, sizeof model_path, "%s", in.path);
    in.name = model_name;
    in.path = model_path;
    in.template_name = in.kv_policy = NULL;
    int V = engine_n_vocab(e);
    logits = malloc((size_t)o.chunk * V * sizeof(float));
    if (!logits)
        goto nomem;
    cli_catch_sigint();
    for (int i = 0; i < nt; i++) {
        struct doc *d = &docs[nd];
        int got;
        if (load_doc(e, texts[i], o.n_tok, &d->tok, &got))
            goto out;
        if (got < o.n_tok) {
            fprintf(stderr, "kfchat: eval: %s has %d tokens (< %d): skipped\n", texts[i], got,
                    o.n_tok);
            skipped[ns++] = texts[i];
            free(d->tok);
            d->tok = NULL;
            continue;
        }
        d->path = texts[i];
        d->nll = calloc((size_t)o.n_tok, sizeof(double));
        d->cont = calloc((size_t)o.greedy + 1, sizeof(int32_t));
        if (!d->nll || !d->cont)
            goto nomem;
        int hits;
        double t0 = cli_now();
        char ref[4096];
        if (o.ref_dir)
            ref_path(e, &o, d, ref, sizeof ref);
        if (o.ref_dir && ref_load(ref, &o, d) == 0) {
            d->ppl = ppl_of(d->nll, o.n_tok);
            fprintf(stderr, "kfchat: eval: full          doc %d/%d ppl %8.3f  (from %s) %s\n",
                    nd + 1, nt, d->ppl, ref, d->path);
            nd++;
            continue;
        }
        if (run_doc(e, &o, d, d->nll, NULL, -1, logits, &hits, &d->cont_ppl))
            goto stopped;
        d->ppl = ppl_of(d->nll, o.n_tok);
        if (o.ref_dir)
            ref_save(ref, &o, d);
        fprintf(stderr, "kfchat: eval: full          doc %d/%d ppl %8.3f  (%.1f s) %s\n", nd + 1,
                nt, d->ppl, cli_now() - t0, d->path);
        nd++;
    }
    if (nd == 0) {
        fprintf(stderr, "kfchat: eval: no text has %d tokens (use --tokens)\n", o.n_tok);
        goto out;
    }
    engine_close(e);
    e = NULL;

    double *nll = malloc((size_t)o.n_tok * sizeof(double));
    if (!nll)
        goto nomem;
    for (int k = 0; k < nc; k++) {
        struct run_cfg *rk = &cfg[k];
        rk->ppl = calloc((size_t)nd * 4, sizeof(double));
        if (!rk->ppl) {
            free(nll);
            goto nomem;
        }
        rk->ratio = rk->ppl + nd;
        rk->agree = rk->ppl + 2 * nd;
        rk->cont_ppl = rk->ppl + 3 * nd;
        if (rk->policy == KV_POLICY_FULL && !o.recompute) { /* it is the reference */
            for (int i = 0; i < nd; i++) {
                rk->ppl[i] = docs[i].ppl;
                rk->ratio[i] = rk->agree[i] = 1.0;
                rk->cont_ppl[i] = docs[i].cont_ppl;
            }
            continue;
        }
        e = open_cfg(&c, rk->policy, rk->budget_str);
        if (!e) {
            free(nll);
            goto out;
        }
        int reuse = o.recompute ? -1 : rk->budget;
        for (int i = 0; i < nd; i++) {
            int hits;
            double t0 = cli_now();
            nll[0] = 0;
            if (run_doc(e, &o, &docs[i], nll, docs[i].cont, reuse, logits, &hits,
                        &rk->cont_ppl[i])) {
                free(nll);
                goto stopped;
            }
            rk->ppl[i] = ppl_of(nll, o.n_tok);
            rk->ratio[i] = rk->ppl[i] / docs[i].ppl;
            rk->agree[i] = o.greedy ? (double)hits / o.greedy : 0;
            fprintf(stderr, "kfchat: eval: %-16s %6s doc %d/%d ppl %8.3f ratio %.4f agree "
                            "%5.1f%%  (%.1f s)\n",
                    kv_policy_name(rk->policy), rk->budget_arg, i + 1, nd, rk->ppl[i],
                    rk->ratio[i], 100.0 * rk->agree[i], cli_now() - t0);
        }
        engine_close(e);
        e = NULL;
    }
    free(nll);
    if (o.json)
        print_json(&in, &o, &c.kv, docs, nd, skipped, ns, cfg, nc);
    else
        print_table(&in, &o, &c.kv, docs, nd, ns, cfg, nc);
    rc = 0;
    goto out;
stopped:
    if (cli_interrupted)
        fprintf(stderr, "kfchat: eval: interrupted\n");
    goto out;
nomem:
    fprintf(stderr, "kfchat: eval: out of memory\n");
out:
    engine_close(e);
    free(logits);
    for (int i = 0; i < nt; i++) {
        free(docs ? docs[i].tok : NULL);
        free(docs ? docs[i].nll : NULL);
        free(docs ? docs[i].cont : NULL);
    }
    for (int k = 0; cfg && k < nc; k++)
        free(cfg[k].ppl);
    free(cfg);
    free(docs);
    free(pol_owned);
    free(bud_owned);
    return rc;
usage_error:
    free(pol_owned);
    free(bud_owned);
    return 2;
}
