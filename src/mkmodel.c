/*
 * mkmodel.c — kfchat-mkmodel: write a GGUF model of a supported architecture and any shape, with
 * deterministic random weights, for tests and benchmarks that must not download anything.
 *
 * The files are meant to load in llama.cpp as well as in our engine, so that the two can be
 * compared on them: hyperparameter keys and their value types, tensor names, shapes and order
 * follow llama.cpp's converter; the tokenizer is copied verbatim from a vocab GGUF; the q4_k_m
 * mix follows llama-quant's rules (engine-reference 2.8).  An architecture is one row of
 * the table in mkmodel_arch.c (which keys it writes, which tensors it has).
 *
 * Weights come from a counter-based PRNG keyed by (seed, tensor name, row), so a file depends only
 * on its options — not on the thread count, the CPU, nor on which other tensors exist — and
 * each row is quantized (reference quantizers) as soon as it is drawn: only the quantized tensor
 * is ever held (gguf_writer then keeps its own copy until the file is written).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "quant_ref.h"
#include "status.h"
#include "mkmodel_arch.h"

#define PROG "kfchat-mkmodel"

// ---- tensor types --------------------------------------------------------------------------

struct type_opt {
    const char *name;
    uint32_t base;  /* qtype of the 2-D weights */
    uint32_t ftype; /* general.file_type (llama.cpp's LLAMA_FTYPE_*) */
    int mix;        /* 1 = apply the Q4_K_M rules */
};

static const struct type_opt type_table[] = {
    { "f32", QTYPE_F32, 0, 0 },    { "f16", QTYPE_F16, 1, 0 },   { "bf16", QTYPE_BF16, 32, 0 },
    { "q4_0", QTYPE_Q4_0, 2, 0 },  { "q4_1", QTYPE_Q4_1, 3, 0 }, { "q5_0", QTYPE_Q5_0, 8, 0 },
    { "q5_1", QTYPE_Q5_1, 9, 0 },  { "q8_0", QTYPE_Q8_0, 7, 0 }, { "q2_k", QTYPE_Q2_K, 10, 0 },
    /* pure K-quant files carry the "_S" label, as llama-quantize --pure would write */
    { "q3_k", QTYPE_Q3_K, 11, 0 }, { "q4_k", QTYPE_Q4_K, 14, 0 }, { "q5_k", QTYPE_Q5_K, 16, 0 },
    { "q6_k", QTYPE_Q6_K, 18, 0 }, { "q4_k_m", QTYPE_Q4_K, 15, 1 },
};

// ---- options -------------------------------------------------------------------------------

struct hparams {
    const struct arch_desc *arch;
    const struct type_opt *type;
    const char *vocab_path, *out_path, *name;
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, head_dim, n_vocab;
    int64_t n_swa, swa_pattern;
    int64_t n_rot;           /* rope.dimension_count (gptj's rotary_dim) */
    float rope_base, eps;
    float alibi_bias, clamp_kqv; /* mpt; clamp_kqv < 0: key not written */
    int tied;
    int head_dim_given, swa_pattern_given;
    uint64_t seed;
    int n_threads;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Every user-facing error: one line, prefixed with the program name, exit 1. */
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static int64_t parse_int(const char *opt, const char *arg, int64_t min, int64_t max)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max)
        die("%s: expected an integer in [%lld, %lld], got '%s'", opt, (long long)min,
            (long long)max, arg);
    return v;
}

static float parse_float(const char *opt, const char *arg)
{
    char *end;
    errno = 0;
    float v = strtof(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v <= 0)
        die("%s: expected a positive number, got '%s'", opt, arg);
    return v;
}

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " --arch ARCH --vocab VOCAB.gguf --embd N --layers L --heads H\n"
"       [--kv-heads K] --ff F --type TYPE -o OUT.gguf [options]\n"
"Write a GGUF model with deterministic random weights (for tests and benchmarks).\n"
"\n"
"  --arch ARCH       llama, qwen2, gemma3, gptj, gpt2, mpt\n"
"  --vocab FILE      GGUF whose tokenizer.* keys are copied; n_vocab = its token count\n"
"  --embd N          embedding length\n"
"  --layers L        number of blocks\n"
"  --heads H         attention heads\n"
"  --kv-heads K      key/value heads (default H; must divide H)\n"
"  --ff F            feed-forward length\n"
"  --type TYPE       type of the 2-D weights: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0\n"
"                    q2_k q3_k q4_k q5_k q6_k, or the llama.cpp mix q4_k_m; norms and\n"
"                    biases stay f32; rows that do not fit a block fall back as in llama.cpp\n"
"  -o, --output FILE the model to write\n"
"  --ctx N           context_length key (default 2048)\n"
"  --seed S          random seed (default 42)\n"
"  --head-dim D      per-head size (default embd/heads)\n"
"  --rope-base B     rope.freq_base (default: llama 10000, qwen2 and gemma3 1000000)\n"
"  --eps E           RMSNorm epsilon (default: llama 1e-5, qwen2 and gemma3 1e-6)\n"
"  --swa N           gemma3 sliding window (default 512)\n"
"  --rope-dim N      gptj rotary_dim: rotated dims per head (default the head size)\n"
"  --alibi-bias B    mpt max_alibi_bias (default 8; 0 = no ALiBi)\n"
"  --clamp-kqv C     mpt clamp_kqv (default: key not written, no clamping)\n"
"  --swa-pattern P   gemma3: every P-th layer is global (default 6, llama.cpp's; the key\n"
"                    is written only when given)\n"
"  --tied, --untied  use token_embd as the output matrix or not (default: llama and gptj\n"
"                    untied, qwen2, gpt2 and mpt tied; gemma3 is always tied)\n"
"  --name NAME       general.name (default kfchat-random-ARCH)\n"
"  -t, --threads N   worker threads (default: all CPUs)\n"
"  -h, --help        this text;  --version  the version\n");
}

enum {
    OPT_ARCH = 256, OPT_VOCAB, OPT_EMBD, OPT_LAYERS, OPT_HEADS, OPT_KV_HEADS, OPT_FF, OPT_TYPE,
    OPT_CTX, OPT_SEED, OPT_HEAD_DIM, OPT_ROPE_BASE, OPT_EPS, OPT_SWA, OPT_SWA_PATTERN, OPT_TIED,
    OPT_UNTIED, OPT_NAME, OPT_VERSION, OPT_ROPE_DIM, OPT_ALIBI, OPT_CLAMP,
};

static const struct option long_opts[] = {
    { "arch", required_argument, NULL, OPT_ARCH },
    { "vocab", required_argument, NULL, OPT_VOCAB },
    { "embd", required_argument, NULL, OPT_EMBD },
    { "layers", required_argument, NULL, OPT_LAYERS },
    { "heads", required_argument, NULL, OPT_HEADS },
    { "kv-heads", required_argument, NULL, OPT_KV_HEADS },
    { "ff", required_argument, NULL, OPT_FF },
    { "type", required_argument, NULL, OPT_TYPE },
    { "output", required_argument, NULL, 'o' },
    { "ctx", required_argument, NULL, OPT_CTX },
    { "seed", required_argument, NULL, OPT_SEED },
    { "head-dim", required_argument, NULL, OPT_HEAD_DIM },
    { "rope-base", required_argument, NULL, OPT_ROPE_BASE },
    { "eps", required_argument, NULL, OPT_EPS },
    { "swa", required_argument, NULL, OPT_SWA },
    { "swa-pattern", required_argument, NULL, OPT_SWA_PATTERN },
    { "rope-dim", required_argument, NULL, OPT_ROPE_DIM },
    { "alibi-bias", required_argument, NULL, OPT_ALIBI },
    { "clamp-kqv", required_argument, NULL, OPT_CLAMP },
    { "tied", no_argument, NULL, OPT_TIED },
    { "untied", no_argument, NULL, OPT_UNTIED },
    { "name", required_argument, NULL, OPT_NAME },
    { "threads", required_argument, NULL, 't' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
};

/* Limits that keep every size computation far from overflow and match llama.cpp's own caps. */
#define MAX_DIM ((int64_t)1 << 20)
#define MAX_LAYERS 512 /* LLAMA_MAX_LAYERS */
#define MAX_THREADS 64

#define N_ARCHS mkmodel_n_archs
#define N_TYPES (sizeof(type_table) / sizeof(type_table[0]))

static const struct arch_desc *arch_find(const char *name)
{
    char known[256] = "";
    for (size_t i = 0; i < N_ARCHS; i++) {
        if (strcmp(mkmodel_archs[i].name, name) == 0)
            return &mkmodel_archs[i];
        snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s", i ? ", " : "",
                 mkmodel_archs[i].name);
    }
    die("unknown architecture '%s' (known: %s)", name, known);
}

static const struct type_opt *type_find(const char *name)
{
    char known[256] = "";
    for (size_t i = 0; i < N_TYPES; i++) {
        if (strcasecmp(type_table[i].name, name) == 0)
            return &type_table[i];
        snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s", i ? " " : "",
                 type_table[i].name);
    }
    die("unknown type '%s' (known: %s)", name, known);
}

/* Parse argv into hp; -1 marks "not given" until hparams_check fills defaults. */
static void options_parse(int argc, char **argv, struct hparams *hp)
{
    int tie = -1, c;
    const char *arch = NULL, *type = NULL;
    memset(hp, 0, sizeof(*hp));
    hp->n_embd = hp->n_layer = hp->n_head = hp->n_head_kv = hp->n_ff = hp->head_dim = -1;
    hp->n_swa = hp->swa_pattern = hp->n_rot = -1;
    hp->alibi_bias = hp->clamp_kqv = -1;
    hp->n_ctx = 2048;
    hp->seed = 42;
    hp->rope_base = hp->eps = -1;
    opterr = 0; /* getopt's own messages do not carry our prefix */
    while ((c = getopt_long(argc, argv, ":o:t:h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_ARCH: arch = optarg; break;
        case OPT_VOCAB: hp->vocab_path = optarg; break;
        case OPT_EMBD: hp->n_embd = parse_int("--embd", optarg, 1, MAX_DIM); break;
        case OPT_LAYERS: hp->n_layer = parse_int("--layers", optarg, 1, MAX_LAYERS); break;
        case OPT_HEADS: hp->n_head = parse_int("--heads", optarg, 1, 4096); break;
        case OPT_KV_HEADS: hp->n_head_kv = parse_int("--kv-heads", optarg, 1, 4096); break;
        case OPT_FF: hp->n_ff = parse_int("--ff", optarg, 1, MAX_DIM); break;
        case OPT_TYPE: type = optarg; break;
        case 'o': hp->out_path = optarg; break;
        case OPT_CTX: hp->n_ctx = parse_int("--ctx", optarg, 1, (int64_t)1 << 24); break;
        case OPT_SEED: hp->seed = (uint64_t)parse_int("--seed", optarg, 0, INT64_MAX); break;
        case OPT_HEAD_DIM:
            hp->head_dim = parse_int("--head-dim", optarg, 2, 4096);
            hp->head_dim_given = 1;
            break;
        case OPT_ROPE_BASE: hp->rope_base = parse_float("--rope-base", optarg); break;
        case OPT_EPS: hp->eps = parse_float("--eps", optarg); break;
        case OPT_SWA: hp->n_swa = parse_int("--swa", optarg, 1, (int64_t)1 << 24); break;
        case OPT_SWA_PATTERN:
            hp->swa_pattern = parse_int("--swa-pattern", optarg, 1, MAX_LAYERS);
            hp->swa_pattern_given = 1;
            break;
        case OPT_ROPE_DIM: hp->n_rot = parse_int("--rope-dim", optarg, 2, 4096); break;
        case OPT_ALIBI: /* 0 is meaningful: an MPT without ALiBi */
            hp->alibi_bias = strcmp(optarg, "0") ? parse_float("--alibi-bias", optarg) : 0.0f;
            break;
        case OPT_CLAMP: hp->clamp_kqv = parse_float("--clamp-kqv", optarg); break;
        case OPT_TIED: tie = 1; break;
        case OPT_UNTIED: tie = 0; break;
        case OPT_NAME: hp->name = optarg; break;
        case 't': hp->n_threads = (int)parse_int("--threads", optarg, 1, MAX_THREADS); break;
        case 'h': usage(stdout); exit(0);
        case OPT_VERSION: printf(PROG " " PACKAGE_VERSION "\n"); exit(0);
        case ':': die("option '%s' needs a value (see --help)", argv[optind - 1]);
        default: die("unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see --help)", argv[optind]);
    if (!arch)
        die("--arch is required (see --help)");
    hp->arch = arch_find(arch);
    if (!type)
        die("--type is required (see --help)");
    hp->type = type_find(type);
    hp->tied = tie;
}

/* Fill defaults and reject shapes that no loader would accept. */
static void hparams_check(struct hparams *hp)
{
    const struct arch_desc *a = hp->arch;
    if (!hp->vocab_path || !hp->out_path)
        die("%s is required (see --help)", !hp->vocab_path ? "--vocab" : "-o/--output");
    if (hp->n_embd < 0 || hp->n_layer < 0 || hp->n_head < 0 || hp->n_ff < 0)
        die("--embd, --layers, --heads and --ff are required (see --help)");
    if (hp->n_head_kv < 0)
        hp->n_head_kv = hp->n_head;
    if (hp->n_head % hp->n_head_kv)
        die("--kv-heads %lld does not divide --heads %lld", (long long)hp->n_head_kv,
            (long long)hp->n_head);
    if (!hp->head_dim_given) {
        if (hp->n_embd % hp->n_head)
            die("--heads %lld does not divide --embd %lld (give --head-dim to decouple them)",
                (long long)hp->n_head, (long long)hp->n_embd);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if (hp->head_dim % 2)
        die("head dimension %lld is odd; RoPE rotates pairs", (long long)hp->head_dim);
    if ((a->flags & ARCH_Q_IS_EMBD) && hp->n_head * hp->head_dim != hp->n_embd)
        die("%s needs heads * head-dim == embd (%lld * %lld != %lld)", a->name,
            (long long)hp->n_head, (long long)hp->head_dim, (long long)hp->n_embd);
    if (hp->n_head * hp->head_dim > MAX_DIM)
        die("heads * head-dim = %lld is too large", (long long)(hp->n_head * hp->head_dim));
    if (!(a->keys & KEY_SWA) && (hp->n_swa >= 0 || hp->swa_pattern >= 0))
        die("--swa/--swa-pattern apply to gemma3 only, not %s", a->name);
    if (hp->n_rot >= 0 && (!(a->keys & KEY_ROPE_DIM) || !strcmp(a->name, "llama")))
        die("--rope-dim applies to gptj only, not %s", a->name);
    if (hp->n_rot < 0)
        hp->n_rot = hp->head_dim;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        die("--rope-dim %lld must be even and at most the head size %lld", (long long)hp->n_rot,
            (long long)hp->head_dim);
    if (!(a->keys & KEY_ALIBI) && (hp->alibi_bias >= 0 || hp->clamp_kqv >= 0))
        die("--alibi-bias/--clamp-kqv apply to mpt only, not %s", a->name);
    if (hp->alibi_bias < 0)
        hp->alibi_bias = 8.0f;
    if (!(a->keys & KEY_HEAD_KV) && hp->n_head_kv != hp->n_head)
        die("%s has no head_count_kv key: --kv-heads must equal --heads", a->name);
    if (hp->n_swa < 0)
        hp->n_swa = 512;
    if (hp->swa_pattern < 0)
        hp->swa_pattern = 6;
    if (a->tie == TIE_ALWAYS && hp->tied == 0)
        die("%s has no output tensor: its output is always tied to token_embd", a->name);
    if (hp->tied < 0)
        hp->tied = a->tie != TIE_NO;
    if (hp->rope_base < 0)
        hp->rope_base = a->rope_base;
    if (hp->eps < 0)
        hp->eps = a->eps;
    if (!hp->n_threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        hp->n_threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
    }
}

// ---- type selection (llama-quant's rules) --------------------------------------------------

/* llama-quant: more bits for the first and last eighth of the layers and every third between. */
static int use_more_bits(int64_t i, int64_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The type that llama.cpp falls back to when a row does not split into whole blocks. */
static uint32_t type_fit(uint32_t t, int64_t ne0)
{
    if (ne0 % quant_traits_get(t)->blck == 0)
        return t;
    switch (t) {
    case QTYPE_Q4_K: t = QTYPE_Q5_0; break;
    case QTYPE_Q5_K: t = QTYPE_Q5_1; break;
    case QTYPE_Q6_K: t = QTYPE_Q8_0; break;
    case QTYPE_Q2_K: case QTYPE_Q3_K: t = QTYPE_Q4_0; break;
    default: break;
    }
    return ne0 % quant_traits_get(t)->blck == 0 ? t : QTYPE_F16;
}

static uint32_t type_choose(const struct hparams *hp, const struct tensor_spec *s, int64_t layer,
                            int64_t ne0)
{
    if (s->ne1 == DIM_NONE || s->role == ROLE_KEEP_F32)
        return QTYPE_F32;
    uint32_t t = hp->type->base;
    if (hp->type->mix) {
        switch (s->role) {
        case ROLE_OUTPUT: t = QTYPE_Q6_K; break;
        case ROLE_TOKEN_EMBD: t = hp->tied ? QTYPE_Q6_K : t; break;
        case ROLE_ATTN_V:
        case ROLE_FFN_DOWN: t = use_more_bits(layer, hp->n_layer) ? QTYPE_Q6_K : t; break;
        case ROLE_ATTN_QKV: t = QTYPE_Q5_K; break;
        default: break;
        }
    }
    return type_fit(t, ne0);
}

// ---- random weights ------------------------------------------------------------------------

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* splitmix64: tiny, fast, and good enough to make weights look like noise. */
static uint64_t rng_next(uint64_t *s)
{
    return mix64(*s += 0x9e3779b97f4a7c15ull);
}

/* FNV-1a of a tensor name: keys the PRNG so each tensor's values are independent of the rest. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/*
 * An approximately standard normal value: the sum of four 16-bit uniforms (Irwin-Hall), centred
 * and scaled to unit variance.  Exact normality does not matter for random weights; speed (one
 * PRNG call, no libm) and bit-identical results on every machine do.  Values stay within ±3.5.
 */
static float rng_normal(uint64_t *s)
{
    uint64_t r = rng_next(s);
    uint32_t sum = (uint32_t)(r & 0xffff) + (uint32_t)((r >> 16) & 0xffff) +
                   (uint32_t)((r >> 32) & 0xffff) + (uint32_t)(r >> 48);
    return ((float)sum + 2.0f - 131072.0f) * (1.7320508f / 65536.0f);
}

/*
 * Scales chosen so that a forward pass stays well-conditioned at any width and depth, and so that
 * greedy decoding is well defined and depends on the context:
 *  - matrices reading a normalized vector keep unit RMS (1/sqrt(fan_in)); those writing into the
 *    residual stream are half that, so each block adds a moderate amount to the stream;
 *  - token embeddings are small next to what the blocks add (row norm 1, and 1/sqrt(n_embd) for
 *    archs that scale them by sqrt(n_embd)).  With a tied output this matters: logits are
 *    token_embd · h, and a large embedding share in h makes every position predict its own token;
 *  - the final norm's weights set the logit scale: standard deviation near 3 over the vocabulary,
 *    so top-1/top-2 gaps are typically ~0.5 (well clear of rounding noise) without being one-hot.
 */
static void init_params(const struct hparams *hp, enum init init, int64_t ne0, float *mean,
                        float *sigma)
{
    float e = (float)hp->n_embd;
    float embd = (hp->arch->flags & ARCH_EMBD_SCALED) ? 1.0f / e : 1.0f / sqrtf(e);
    float out = hp->tied ? embd : 1.0f / sqrtf(e); /* sigma of the output matrix */
    *mean = 0.0f;
    switch (init) {
    case INIT_EMBD: *sigma = embd; break;
    case INIT_OUTPUT: *sigma = out; break;
    case INIT_IN: *sigma = 1.0f / sqrtf((float)ne0); break;
    case INIT_RESID: *sigma = 0.5f / sqrtf((float)ne0); break;
    case INIT_NORM: *mean = 1.0f; *sigma = 0.1f; break;
    case INIT_OUT_NORM: /* logit std = gain * out * sqrt(n_embd) for a unit-RMS hidden state */
        *mean = 3.0f / (out * sqrtf(e));
        *sigma = 0.1f * *mean;
        break;
    case INIT_BIAS: *sigma = 0.02f; break;
    }
}

struct gen_job {
    quant_from_f32_fn quantize;
    uint64_t key;      /* seed ^ tensor name */
    float mean, sigma;
    int64_t ne0, n_rows;
    size_t row_bytes;
    uint8_t *out;
    int64_t next_row;  /* shared work counter */
    pthread_mutex_t lock;
};

/*
 * The scalar reference quantizers, not the traits' from_f32 (which quant_init may replace with
 * SIMD versions): a model must be bit-identical on every machine, because the golden tests
 * regenerate it and check its SHA-256.  They are also what llama-quantize uses for weights.
 */
static quant_from_f32_fn quantizer(uint32_t type)
{
    switch (type) {
    case QTYPE_F32: return quantize_f32_ref;
    case QTYPE_F16: return quantize_f16_ref;
    case QTYPE_BF16: return quantize_bf16_ref;
    case QTYPE_Q4_0: return quantize_q4_0_ref;
    case QTYPE_Q4_1: return quantize_q4_1_ref;
    case QTYPE_Q5_0: return quantize_q5_0_ref;
    case QTYPE_Q5_1: return quantize_q5_1_ref;
    case QTYPE_Q8_0: return quantize_q8_0_ref;
    case QTYPE_Q2_K: return quantize_q2_k_ref;
    case QTYPE_Q3_K: return quantize_q3_k_ref;
    case QTYPE_Q4_K: return quantize_q4_k_ref;
    case QTYPE_Q5_K: return quantize_q5_k_ref;
    case QTYPE_Q6_K: return quantize_q6_k_ref;
    default: die("no quantizer for type %u", (unsigned)type);
    }
}

#define ROWS_PER_GRAB 16

static void *gen_worker(void *arg)
{
    struct gen_job *j = arg;
    float *row = malloc((size_t)j->ne0 * sizeof(float));
    if (!row)
        die("out of memory");
    for (;;) {
        pthread_mutex_lock(&j->lock);
        int64_t r0 = j->next_row;
        j->next_row += ROWS_PER_GRAB;
        pthread_mutex_unlock(&j->lock);
        if (r0 >= j->n_rows)
            break;
        int64_t r1 = r0 + ROWS_PER_GRAB < j->n_rows ? r0 + ROWS_PER_GRAB : j->n_rows;
        for (int64_t r = r0; r < r1; r++) {
            uint64_t s = mix64(j->key ^ mix64((uint64_t)r + 1));
            /* in double, the product of two floats is exact: no FMA contraction can change it */
            for (int64_t i = 0; i < j->ne0; i++)
                row[i] = (float)((double)j->mean + (double)j->sigma * (double)rng_normal(&s));
            j->quantize(row, j->out + (size_t)r * j->row_bytes, j->ne0);
        }
    }
    free(row);
    return NULL;
}

/* Draw and quantize a whole tensor of n_rows rows of ne0 into a malloc'd buffer. */
static uint8_t *tensor_generate(const struct hparams *hp, const char *name, enum init init,
                                uint32_t type, int64_t ne0, int64_t n_rows)
{
    struct gen_job j = { .quantize = quantizer(type), .ne0 = ne0, .n_rows = n_rows };
    j.key = mix64(hp->seed) ^ name_hash(name);
    init_params(hp, init, ne0, &j.mean, &j.sigma);
    j.row_bytes = quant_row_size(type, ne0);
    j.out = malloc(j.row_bytes * (size_t)n_rows);
    if (!j.out)
        die("out of memory (%zu bytes for %s)", j.row_bytes * (size_t)n_rows, name);
    pthread_mutex_init(&j.lock, NULL);
    int nt = hp->n_threads;
    if (n_rows < (int64_t)nt * ROWS_PER_GRAB)
        nt = 1; /* not worth a thread */
    pthread_t th[MAX_THREADS];
    int started = 0;
    for (int i = 1; i < nt; i++)
        if (pthread_create(&th[started], NULL, gen_worker, &j) == 0)
            started++;
    gen_worker(&j);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j.lock);
    return j.out;
}

// ---- writing -------------------------------------------------------------------------------

static int64_t dim_value(const struct hparams *hp, enum dim d)
{
    switch (d) {
    case DIM_NONE: return 1;
    case DIM_EMBD: return hp->n_embd;
    case DIM_VOCAB: return hp->n_vocab;
    case DIM_FF: return hp->n_ff;
    case DIM_Q: return hp->n_head * hp->head_dim;
    case DIM_KV: return hp->n_head_kv * hp->head_dim;
    case DIM_HEAD: return hp->head_dim;
    case DIM_QKV: return (hp->n_head + 2 * hp->n_head_kv) * hp->head_dim;
    case DIM_CTX: return hp->n_ctx;
    }
    return 1;
}

struct stats {
    int64_t n_params;
    int n_tensors;
    int count[QTYPE_COUNT]; /* tensors per type */
};

static void tensor_add(struct gguf_writer *w, const struct hparams *hp,
                       const struct tensor_spec *s, int64_t layer, struct stats *st)
{
    char name[64]; /* GGUF names are < 64 bytes */
    if (s->where == AT_LAYER)
        snprintf(name, sizeof(name), "blk.%lld.%s", (long long)layer, s->name);
    else
        snprintf(name, sizeof(name), "%s", s->name);
    int64_t ne[2] = { dim_value(hp, s->ne0), dim_value(hp, s->ne1) };
    int n_dims = s->ne1 == DIM_NONE ? 1 : 2;
    if (ne[0] * ne[1] > (int64_t)1 << 34)
        die("%s would have %lld elements; that is too large", name, (long long)(ne[0] * ne[1]));
    uint32_t type = type_choose(hp, s, layer, ne[0]);
    uint8_t *data = tensor_generate(hp, name, s->init, type, ne[0], ne[1]);
    if (gguf_writer_add_tensor(w, name, type, n_dims, ne, data) != STATUS_OK)
        die("cannot add tensor %s", name);
    free(data);
    st->n_params += ne[0] * ne[1];
    st->n_tensors++;
    st->count[type]++;
}

static void tensors_add(struct gguf_writer *w, const struct hparams *hp, struct stats *st)
{
    const struct arch_desc *a = hp->arch;
    for (enum where at = AT_START; at <= AT_END; at++) {
        int64_t n_rep = at == AT_LAYER ? hp->n_layer : 1;
        for (int64_t l = 0; l < n_rep; l++)
            for (int i = 0; i < a->n_specs; i++) {
                const struct tensor_spec *s = &a->specs[i];
                if (s->where != at || ((s->flags & SPEC_UNTIED) && hp->tied))
                    continue;
                tensor_add(w, hp, s, l, st);
            }
    }
}

/* "<arch>.<suffix>" */
static const char *akey(const struct hparams *hp, const char *suffix)
{
    static char k[128];
    snprintf(k, sizeof(k), "%s.%s", hp->arch->name, suffix);
    return k;
}

/* Metadata as llama.cpp's converter writes it: integers u32, floats f32. */
static void keys_add(struct gguf_writer *w, const struct hparams *hp, const struct gguf *vocab)
{
    const struct arch_desc *a = hp->arch;
    char name[128];
    snprintf(name, sizeof(name), "kfchat-random-%s", a->name);
    gguf_writer_set_str(w, "general.architecture", a->name);
    gguf_writer_set_str(w, "general.name", hp->name ? hp->name : name);
    gguf_writer_set_u32(w, akey(hp, "context_length"), (uint32_t)hp->n_ctx);
    gguf_writer_set_u32(w, akey(hp, "embedding_length"), (uint32_t)hp->n_embd);
    gguf_writer_set_u32(w, akey(hp, "block_count"), (uint32_t)hp->n_layer);
    if (a->keys & KEY_FF)
        gguf_writer_set_u32(w, akey(hp, "feed_forward_length"), (uint32_t)hp->n_ff);
    gguf_writer_set_u32(w, akey(hp, "attention.head_count"), (uint32_t)hp->n_head);
    if (a->keys & KEY_HEAD_KV)
        gguf_writer_set_u32(w, akey(hp, "attention.head_count_kv"), (uint32_t)hp->n_head_kv);
    if ((a->keys & KEY_HEAD_DIM) || hp->head_dim_given) {
        gguf_writer_set_u32(w, akey(hp, "attention.key_length"), (uint32_t)hp->head_dim);
        gguf_writer_set_u32(w, akey(hp, "attention.value_length"), (uint32_t)hp->head_dim);
    }
    if (a->keys & KEY_ROPE)
        gguf_writer_set_f32(w, akey(hp, "rope.freq_base"), hp->rope_base);
    if (a->keys & KEY_ROPE_DIM)
        gguf_writer_set_u32(w, akey(hp, "rope.dimension_count"), (uint32_t)hp->n_rot);
    if (a->keys & KEY_ALIBI) {
        gguf_writer_set_f32(w, akey(hp, "attention.max_alibi_bias"), hp->alibi_bias);
        if (hp->clamp_kqv >= 0) /* the converter writes it only when clip_qkv is set */
            gguf_writer_set_f32(w, akey(hp, "attention.clamp_kqv"), hp->clamp_kqv);
    }
    gguf_writer_set_f32(w,
                        akey(hp, (a->keys & KEY_RMS_EPS) ? "attention.layer_norm_rms_epsilon"
                                                         : "attention.layer_norm_epsilon"),
                        hp->eps);
    if (a->keys & KEY_SWA) {
        gguf_writer_set_u32(w, akey(hp, "attention.sliding_window"), (uint32_t)hp->n_swa);
        /* older llama.cpp hard-codes 6 and ignores the key: write it only when asked */
        if (hp->swa_pattern_given)
            gguf_writer_set_u32(w, akey(hp, "attention.sliding_window_pattern"),
                                (uint32_t)hp->swa_pattern);
    }
    if (a->keys & KEY_VOCAB_SIZE)
        gguf_writer_set_u32(w, akey(hp, "vocab_size"), (uint32_t)hp->n_vocab);
    gguf_writer_set_u32(w, "general.file_type", hp->type->ftype);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    for (int64_t i = 0; i < gguf_n_kv(vocab); i++) {
        size_t len;
        const char *k = gguf_key_at(vocab, i, &len);
        if (len > 10 && memcmp(k, "tokenizer.", 10) == 0)
            gguf_writer_copy_kv(w, vocab, i);
    }
}

static struct gguf *vocab_open(struct hparams *hp)
{
    char err[512];
    struct gguf *v;
    if (gguf_open(&v, hp->vocab_path, err, sizeof(err)) != STATUS_OK)
        die("%s", err);
    enum gguf_type et;
    uint64_t n;
    const void *data;
    const char *model;
    size_t len;
    if (gguf_get_arr(v, "tokenizer.ggml.tokens", &et, &n, &data) != STATUS_OK ||
        et != GGUF_TYPE_STRING || n == 0)
        die("%s: no tokenizer (tokenizer.ggml.tokens is missing or not a string array)",
            hp->vocab_path);
    if (gguf_get_str(v, "tokenizer.ggml.model", &model, &len) != STATUS_OK)
        die("%s: no tokenizer (tokenizer.ggml.model is missing)", hp->vocab_path);
    if (n > (uint64_t)INT32_MAX)
        die("%s: %llu tokens is too many", hp->vocab_path, (unsigned long long)n);
    hp->n_vocab = (int64_t)n;
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void summary_print(const struct hparams *hp, const struct stats *st, double secs)
{
    struct stat sb;
    double mib = stat(hp->out_path, &sb) == 0 ? (double)sb.st_size / (1024.0 * 1024.0) : 0.0;
    double p = (double)st->n_params;
    printf("wrote %s: %s, %.2f%s params, %lld layers, embd %lld, vocab %lld, %.1f MiB, %s [",
           hp->out_path, hp->arch->name, p >= 1e9 ? p / 1e9 : p / 1e6, p >= 1e9 ? "B" : "M",
           (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_vocab, mib,
           hp->type->name);
    const char *sep = "";
    for (int t = 0; t < QTYPE_COUNT; t++)
        if (st->count[t]) {
            printf("%s%s:%d", sep, quant_traits_get((uint32_t)t)->name, st->count[t]);
            sep = " ";
        }
    printf("], %.1f s\n", secs);
}

int main(int argc, char **argv)
{
    struct hparams hp;
    struct stats st = { 0 };
    char err[512];
    double t0 = now_s();

    options_parse(argc, argv, &hp);
    hparams_check(&hp);
    struct gguf *vocab = vocab_open(&hp);

    struct gguf_writer *w = gguf_writer_new();
    keys_add(w, &hp, vocab);
    gguf_close(vocab);
    tensors_add(w, &hp, &st);
    if (gguf_writer_write(w, hp.out_path, err, sizeof(err)) != STATUS_OK)
        die("%s", err);
    gguf_writer_free(w);
    summary_print(&hp, &st, now_s() - t0);
    return 0;
}
