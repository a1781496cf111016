#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""
gen_golden.py -- record llama.cpp's outputs as the golden data that tests/test_golden.c checks.

For small synthetic models (written by kfchat-mkmodel: llama, qwen2 and gemma3 in several tensor
types) and for the real models installed in kfchat's models directory (the default SmolLM2 and,
if present, Gemma 3 270M), it runs llama.cpp (through llama-cpp-python) on fixed prompts and
writes, per model, one tests/golden/<model>.golden text file: the prompt token ids, the top-20
logits after the prompt, and 32 greedy tokens with llama.cpp's top-1/top-2 gap and top-10 logits
at every step.  The format is described in tests/golden/README.md.

llama-cpp-python is needed only here, never by `make check`.  It lives in a private virtual
environment ($KF_GOLDEN_VENV, default ~/.cache/kfchat-golden-venv); the script creates it when
it is missing (pip install llama-cpp-python numpy, built for AVX2/AVX-512 but not -march=native,
whose illegal-instruction crashes on some hosts motivated the explicit CMAKE_ARGS) and re-runs
itself inside it.

The comparison policy (each model's `tolerance` and the other policy header lines) is computed
from the recorded llama.cpp self-differences by policy() below; `--retune` rewrites only those
header lines of the existing files, without llama.cpp, after a policy change.

Usage (from the top of the tree, after `make kfchat-mkmodel`):
    python3 tests/golden/gen_golden.py [--only SUBSTR ...] [--list] [--retune]
"""

import argparse
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import time

LLAMA_CPP_PYTHON = os.environ.get("KF_LLAMA_CPP_PYTHON", "llama-cpp-python==0.3.36")
CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
              "-DGGML_AVX512=ON")

FORMAT_VERSION = 1
N_GREEDY = 32      # greedy steps recorded per prompt
TOP_PROMPT = 20    # logits recorded after the prompt (step 0)
TOP_STEP = 10      # logits recorded at later steps (the decode path)
N_CTX = 256        # prompt + greedy tokens must fit
GREEDY_TIE = 1e-3  # a greedy divergence counts only where llama.cpp's top-2 gap exceeds this

# The issue's relative logit tolerances: F32/F16 models 1e-3, quantized ones 1e-2.  BF16 gets 1e-2
# too: llama.cpp rounds the activations to BF16 (8 significant bits) before a BF16 product.
ISSUE_TOL = {"float": 1e-3, "bf16": 1e-2, "quant": 1e-2}
# Where llama.cpp's own batch-vs-sequential difference (its numerical noise on that network) is
# larger than half the issue's tolerance, the tolerance is NOISE_FACTOR times that difference.
# Never for F32/F16 models, which stay at the issue's 1e-3.
NOISE_FACTOR = 2

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# ---- models ----------------------------------------------------------------------------------

# Prompts for the random-weight models: the texts only decide the token ids; the long one
# exceeds the gemma3 sliding window (8) and a 32-token batch.
SYNTH_PROMPTS = [
    ("short", "Hello world"),
    ("long", "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor "
             "jugs! How vexingly quick daft zebras jump; 0123456789."),
]

ALL_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k",
             "q4_k", "q5_k", "q6_k", "q4_k_m"]
SOME_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q4_k", "q5_k", "q6_k"]

# (arch, vocab file, mkmodel shape options, types, seed)
SYNTH_ARCHS = [
    # untied output, GQA 4/2, SPM vocab with BOS
    ("llama", "ggml-vocab-llama-spm.gguf",
     "--embd 256 --layers 2 --heads 4 --kv-heads 2 --ff 512", ALL_TYPES, 1),
    # Q/K/V biases, tied output, byte-level BPE vocab without BOS
    ("qwen2", "ggml-vocab-gpt-2.gguf",
     "--embd 256 --layers 2 --heads 4 --kv-heads 2 --ff 512", SOME_TYPES, 2),
    # head_dim decoupled from embd (4 x 128 != 256), MQA, layer 0 local with window 8, layer 1
    # global: both RoPE bases and the sliding-window mask are exercised
    ("gemma3", "ggml-vocab-llama-spm.gguf",
     "--embd 256 --layers 2 --heads 4 --kv-heads 1 --head-dim 128 --ff 512 --swa 8 "
     "--swa-pattern 2", SOME_TYPES, 3),
]

# Real models: (golden name, file in the models directory, default model?, prompts).  The
# default model also gets the issue's strict free-running greedy check (greedy_strict).
CHATML = "<|im_start|>{role}\n{text}<|im_end|>\n"
GEMMA = "<start_of_turn>{role}\n{text}<end_of_turn>\n"

SMOL_PROMPTS = [
    ("capital", "The capital of France is"),
    ("code", 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'),
    ("chat_math",
     CHATML.format(role="system", text="You are a helpful AI assistant named SmolLM, trained "
                   "by Hugging Face") +
     CHATML.format(role="user", text="What is 17 times 23?") + "<|im_start|>assistant\n"),
    ("chat_haiku",
     CHATML.format(role="user", text="Write a haiku about autumn leaves.") +
     "<|im_start|>assistant\n"),
    ("unicode", "Caf\u00e9 na\u00efve \u2014 \u65e5\u672c\u8a9e and emoji \U0001F642 are "
                "tokenized too. Once upon a time,"),
]

GEMMA_PROMPTS = [
    ("capital", "The capital of France is"),
    ("code", 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'),
    ("chat_math",
     GEMMA.format(role="user", text="What is 17 times 23?") + "<start_of_turn>model\n"),
    ("chat_haiku",
     GEMMA.format(role="user", text="Write a haiku about autumn leaves.") +
     "<start_of_turn>model\n"),
    ("unicode", "Caf\u00e9 na\u00efve \u2014 \u65e5\u672c\u8a9e and emoji \U0001F642 are "
                "tokenized too. Once upon a time,"),
]

REAL_MODELS = [
    ("smollm2-135m-instruct-q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf", True, SMOL_PROMPTS),
    ("gemma-3-270m-q4_k_m", "gemma-3-270m-q4_k_m.gguf", False, GEMMA_PROMPTS),
]


STRICT_GREEDY = {m[0] for m in REAL_MODELS if m[2]}


def synth_models():
    """[(name, arch, mkmodel argument list)]"""
    out = []
    for arch, vocab, shape, types, seed in SYNTH_ARCHS:
        for t in types:
            args = ["--arch", arch, "--vocab", vocab] + shape.split() + \
                   ["--type", t, "--seed", str(seed)]
            out.append(("%s-%s" % (arch, t), arch, args))
    return out

# ---- the virtual environment -----------------------------------------------------------------


def venv_dir():
    return os.path.expanduser(os.environ.get("KF_GOLDEN_VENV", "~/.cache/kfchat-golden-venv"))


def in_venv(venv):
    return os.path.realpath(sys.prefix) == os.path.realpath(venv)


def ensure_venv():
    """Re-exec inside the private venv, creating it (and installing llama-cpp-python) first."""
    venv = venv_dir()
    py = os.path.join(venv, "bin", "python3")
    if in_venv(venv):
        try:
            import llama_cpp  # noqa: F401
            import numpy  # noqa: F401
            return
        except ImportError:
            if os.environ.get("KF_GOLDEN_REEXEC"):
                sys.exit("gen_golden: %s cannot import llama_cpp even after installing it" % venv)
    if not os.path.exists(py):
        print("gen_golden: creating %s" % venv, file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    probe = subprocess.run([py, "-c", "import llama_cpp, numpy"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        print("gen_golden: installing %s into %s (builds llama.cpp; several minutes)" %
              (LLAMA_CPP_PYTHON, venv), file=sys.stderr)
        env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, FORCE_CMAKE="1")
        subprocess.check_call([py, "-m", "pip", "install", "--upgrade", "pip"], env=env)
        subprocess.check_call([py, "-m", "pip", "install", LLAMA_CPP_PYTHON, "numpy"], env=env)
    os.environ["KF_GOLDEN_REEXEC"] = "1"  # the venv is complete: a second failure is final
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


# ---- helpers ---------------------------------------------------------------------------------


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def escape(s):
    """C-style escape of UTF-8 text: printable ASCII stays, everything else is \\n, \\xHH..."""
    out = []
    for b in s.encode("utf-8"):
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x0D:
            out.append("\\r")
        elif 0x20 < b < 0x7F:
            out.append(chr(b))
        else:  # space too, so that the text is one whitespace-free field
            out.append("\\x%02x" % b)
    return "".join(out)


def models_dir():
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = xdg if xdg.startswith("/") else os.path.expanduser("~/.local/share")
    return os.path.join(base, "kfchat", "models")


def fmt(x):
    return "%.7g" % float(x)


def top_k(np, row, k):
    """ids of the k largest values, by value descending, then id ascending."""
    n = row.shape[0]
    # a few spare candidates so that ties at the k-th place are still broken by id
    idx = np.argpartition(-row, k + 15)[: k + 16] if n > k + 16 else np.arange(n)
    idx = sorted(idx.tolist(), key=lambda i: (-float(row[i]), i))
    return idx[:k]


class Runner:
    """One llama.cpp model: tokenize, evaluate, and record greedy steps."""

    def __init__(self, path, threads):
        import llama_cpp
        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=path, n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, n_threads=threads,
            n_threads_batch=threads, n_gpu_layers=0, logits_all=True, flash_attn=False,
            type_k=0, type_v=0, verbose=False)

    def tokenize(self, text):
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def run(self, np, tokens):
        """[(step, token, gap, top ids, top values)] for N_GREEDY greedy steps after tokens."""
        llm = self.llm
        llm.reset()
        llm.eval(tokens)
        steps = []
        for s in range(N_GREEDY):
            row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            k = TOP_PROMPT if s == 0 else TOP_STEP
            ids = top_k(np, row, max(k, 2))
            tok = ids[0]  # argmax, lowest id on ties (top_k sorts ties by id)
            gap = float(row[ids[0]]) - float(row[ids[1]])
            steps.append((s, tok, gap, ids[:k], [float(row[i]) for i in ids[:k]]))
            llm.eval([tok])
        return steps

    def self_diff(self, np, tokens, steps):
        """llama.cpp against itself, on the positions the test compares, in two ways that use other
        kernels than the recorded run; returns (prompt, steps, abs):
          prompt  the prompt as one batch vs one token at a time: the largest relative top-20
                  error over the prompt positions;
          steps   the prompt and the recorded greedy tokens as ONE batch vs the recorded steps
                  (the prompt as a batch, then one token at a time): the largest relative error
                  over the recorded top-k ids of the 32 steps;
          abs     the largest absolute logit difference at the positions the test compares
                  (the last prompt position in the first way, the steps in the second); the
                  earlier prompt positions are left out: a chat template's first tokens can have
                  logits far larger than anything compared (~67 on Gemma 3 270M).
        It is llama.cpp's own numerical noise on this network, which policy() turns into the
        tolerance where it exceeds the issue's."""
        llm = self.llm

        def worst(ref, row, ids, acc):
            scale = max(abs(float(ref[i])) for i in ids) or 1.0
            d = max(abs(float(row[i]) - float(ref[i])) for i in ids)
            return max(acc[0], d / scale), max(acc[1], d)

        llm.reset()
        llm.eval(tokens)
        batch = np.array(llm.scores[: len(tokens)], dtype=np.float32)
        llm.reset()
        for t in tokens:
            llm.eval([t])
        pr = (0.0, 0.0)
        for p in range(len(tokens)):
            row = np.array(llm.scores[p], dtype=np.float32)
            rel, d = worst(batch[p], row, top_k(np, batch[p], TOP_PROMPT), (0.0, 0.0))
            pr = (max(pr[0], rel), max(pr[1], d) if p == len(tokens) - 1 else pr[1])
        seq = list(tokens) + [tok for _, tok, _, _, _ in steps[:-1]]
        llm.reset()
        llm.eval(seq)
        st = (0.0, 0.0)
        for s, _, _, ids, vals in steps:
            row = np.array(llm.scores[len(tokens) - 1 + s], dtype=np.float32)
            st = worst(dict(zip(ids, vals)), row, ids, st)
        return pr[0], st[0], max(pr[1], st[1])

    def close(self):
        self.llm.close()


HEADER_ORDER = ["model", "arch", "mkmodel", "file", "size", "sha256",
                # the policy: written by policy(), rewritten by --retune
                "tolerance", "tolerance_rule", "greedy_tie", "greedy_noise", "greedy_strict",
                # the measurements it is computed from
                "llama_selfdiff", "llama_selfdiff_steps", "llama_selfdiff_abs", "generator"]
POLICY_KEYS = ["tolerance", "tolerance_rule", "greedy_tie", "greedy_noise", "greedy_strict"]
COMMENT = ["# kfchat golden data: written by tests/golden/gen_golden.py, do not edit;",
           "# see tests/golden/README.md for the format."]


def header_lines(header):
    """header: {key: value} -> lines in HEADER_ORDER (absent or None values left out)"""
    unknown = set(header) - set(HEADER_ORDER)
    if unknown:
        raise ValueError("unknown header keys %s" % sorted(unknown))
    return ["%s %s" % (k, header[k]) for k in HEADER_ORDER if header.get(k) is not None]


def write_golden(path, header, prompts):
    """header: {key: value}; prompts: [(name, text or None, tokens, steps)]"""
    lines = []
    for name, text, tokens, steps in prompts:
        lines.append("prompt %s" % name)
        if text is not None:
            lines.append("text %s" % escape(text))
        lines.append("tokens %d %s" % (len(tokens), " ".join(str(t) for t in tokens)))
        for s, tok, gap, ids, vals in steps:
            pairs = " ".join("%d %s" % (i, fmt(v)) for i, v in zip(ids, vals))
            lines.append("step %d %d %s %d %s" % (s, tok, fmt(gap), len(ids), pairs))
        lines.append("end")
    write_file(path, header, lines)


def write_file(path, header, body):
    lines = COMMENT + ["kfchat-golden %d" % FORMAT_VERSION] + header_lines(header) + body
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def read_golden(path):
    """-> (header {key: value}, body lines from the first prompt on)"""
    with open(path) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header = {}
    for i, line in enumerate(lines):
        if line.startswith("prompt "):
            return header, lines[i:]
        if not line.strip() or line.startswith("#"):
            continue
        k, _, v = line.partition(" ")
        if k == "kfchat-golden":
            if v != str(FORMAT_VERSION):
                raise ValueError("%s: format version %s" % (path, v))
            continue
        header[k] = v
    raise ValueError("%s: no prompt" % path)


# ---- the comparison policy -------------------------------------------------------------------


def model_kind(header):
    """'float' (F32/F16 synthetic), 'bf16', or 'quant' (other synthetic types, real models)"""
    if "mkmodel" not in header:
        return "quant"
    args = header["mkmodel"].split()
    t = args[args.index("--type") + 1]
    return "float" if t in ("f32", "f16") else "bf16" if t == "bf16" else "quant"


def network(header):
    """Models that share the network (the same weights before conversion): the synthetic models
    of one architecture (mkmodel arguments but --type); a real model alone."""
    if "mkmodel" not in header:
        return header["model"]
    args = header["mkmodel"].split()
    i = args.index("--type")
    return " ".join(args[:i] + args[i + 2:])


def self_noise(header):
    """(relative, absolute) llama.cpp batch-vs-sequential difference recorded for one model"""
    try:
        rel = max(float(header["llama_selfdiff"]), float(header["llama_selfdiff_steps"]))
        return rel, float(header["llama_selfdiff_abs"])
    except KeyError as e:
        raise ValueError("%s: no %s; regenerate it" % (header.get("model"), e.args[0]))


def g3(x):
    return "%.3g" % x


def policy(headers):
    """{name: header} -> {name: {policy key: value or None}}.

    tolerance: the issue's (ISSUE_TOL) unless NOISE_FACTOR x llama.cpp's own batch-vs-sequential
    difference on that network is larger (never for F32/F16).  On a quantized network that noise
    comes from 8-bit activation rounding: one value rounded the other way moves the logits by
    ~1e-2, and whether llama.cpp's two evaluations happen to round one the other way is chance
    (for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 they mostly run the same kernels and their difference is
    usually exactly 0, which measures nothing).  So a quantized model takes the largest
    difference over the quantized models of its network; BF16 and real models take their own.
    greedy_noise (selfdiff rule only): NOISE_FACTOR x the largest absolute difference, a cap on
    the per-step absolute noise the test assumes when it picks confident greedy steps (with a
    large relative tolerance, as on a network whose logits can all be near 0, the relative
    allowance x |logit| would make every step look like noise)."""
    pools = {}
    for name, h in headers.items():
        if model_kind(h) == "quant":
            pools.setdefault(network(h), []).append(name)
    out = {}
    for name, h in headers.items():
        kind = model_kind(h)
        issue = ISSUE_TOL[kind]
        members = pools[network(h)] if kind == "quant" else [name]
        rel, src = max((self_noise(headers[m])[0], m) for m in members)
        absn = max(self_noise(headers[m])[1] for m in members)
        where = "%s, the largest of its %d quantized models" % (src, len(members)) \
            if len(members) > 1 else "own"
        p = {"greedy_tie": "%g" % GREEDY_TIE, "greedy_noise": None,
             "greedy_strict": "1" if name in STRICT_GREEDY else None}
        if kind != "float" and float(g3(NOISE_FACTOR * rel)) > issue:
            p["tolerance"] = g3(NOISE_FACTOR * rel)
            p["tolerance_rule"] = "selfdiff: %d x llama_selfdiff %s (%s) > issue %g" % (
                NOISE_FACTOR, g3(rel), where, issue)
            p["greedy_noise"] = g3(NOISE_FACTOR * absn)
        else:
            p["tolerance"] = "%g" % issue
            p["tolerance_rule"] = "issue: %s %g" % (
                {"float": "f32/f16", "bf16": "bf16", "quant": "quantized"}[kind], issue)
            if kind != "float":
                p["tolerance_rule"] += " >= %d x llama_selfdiff %s (%s)" % (NOISE_FACTOR, g3(rel),
                                                                            where)
        out[name] = p
    return out


def retune(out_dir):
    """Rewrite the policy header lines of every .golden file in out_dir from its recorded
    measurements; everything else stays byte for byte.  Prints what changed."""
    # hf-*.golden come from transformers (gen_hf_golden.py): no llama.cpp self-difference
    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".golden") and
                   not f.startswith("hf-"))
    data = {}
    for f in files:
        h, body = read_golden(os.path.join(out_dir, f))
        if h.get("model") + ".golden" != f:
            raise ValueError("%s: model %s" % (f, h.get("model")))
        data[h["model"]] = (h, body)
    pol = policy({n: h for n, (h, _) in data.items()})
    for n, (h, body) in sorted(data.items()):
        new = dict(h)
        new.update(pol[n])
        new = {k: v for k, v in new.items() if v is not None}
        if header_lines(new) != header_lines(h):
            write_file(os.path.join(out_dir, n + ".golden"), new, body)
            print("%-28s tolerance %s -> %s" % (n, h.get("tolerance"), new["tolerance"]))
        print("%-28s tolerance %-7s %s" % (n, new["tolerance"], new["tolerance_rule"]))


def gap_stats(prompts):
    gaps = [g for _, _, _, steps in prompts for _, _, g, _, _ in steps]
    gaps.sort()
    small = sum(1 for g in gaps if g <= GREEDY_TIE)
    return "gaps min %.4g median %.4g, %d of %d <= %g" % (gaps[0], gaps[len(gaps) // 2], small,
                                                          len(gaps), GREEDY_TIE)


def versions():
    import llama_cpp
    return "llama-cpp-python %s" % getattr(llama_cpp, "__version__", "?")


def record(np, r, prompt_list):
    """Run the prompts; -> (prompts for write_golden, the self-difference header fields)"""
    prompts = []
    pr = st = ab = 0.0
    for pname, text in prompt_list:
        toks = r.tokenize(text)
        steps = r.run(np, toks)
        prompts.append((pname, text, toks, steps))
        d = r.self_diff(np, toks, steps)
        pr, st, ab = max(pr, d[0]), max(st, d[1]), max(ab, d[2])
    return prompts, {"llama_selfdiff": g3(pr), "llama_selfdiff_steps": g3(st),
                     "llama_selfdiff_abs": g3(ab)}


def with_policy(header):
    """header plus provisional policy lines (from this model alone; retune() redoes them)"""
    header.update(policy({header["model"]: header})[header["model"]])
    return {k: v for k, v in header.items() if v is not None}

# ---- main ------------------------------------------------------------------------------------


def record_synth(np, opts, name, arch, args, tmpdir):
    vocab = os.path.join(opts.testdata, "vocab", args[args.index("--vocab") + 1])
    argv = list(args)
    argv[argv.index("--vocab") + 1] = vocab
    path = os.path.join(tmpdir, name + ".gguf")
    t0 = time.time()
    subprocess.run([opts.mkmodel] + argv + ["-o", path], check=True, stdout=subprocess.DEVNULL)
    t_gen = time.time() - t0
    digest = sha256_file(path)
    r = Runner(path, opts.threads)
    prompts, sd = record(np, r, SYNTH_PROMPTS)
    r.close()
    os.unlink(path)
    header = {"model": name, "arch": arch, "mkmodel": " ".join(args), "sha256": digest,
              "generator": versions()}
    header.update(sd)
    write_golden(os.path.join(opts.out, name + ".golden"), with_policy(header), prompts)
    print("%-28s mkmodel %.2fs  %s; llama.cpp batch vs sequential %s, steps %s, abs %s" %
          (name, t_gen, gap_stats(prompts), sd["llama_selfdiff"], sd["llama_selfdiff_steps"],
           sd["llama_selfdiff_abs"]))


def record_real(np, opts, name, fname, prompt_list):
    path = os.path.join(opts.models, fname)
    if not os.path.exists(path):
        print("%-28s SKIPPED: %s not found" % (name, path))
        return
    r = Runner(path, opts.threads)
    arch = r.llm.metadata.get("general.architecture", "?")
    prompts, sd = record(np, r, prompt_list)
    r.close()
    header = {"model": name, "arch": arch, "file": fname, "size": str(os.path.getsize(path)),
              "sha256": sha256_file(path), "generator": versions()}
    header.update(sd)
    write_golden(os.path.join(opts.out, name + ".golden"), with_policy(header), prompts)
    print("%-28s %s; llama.cpp batch vs sequential %s, steps %s, abs %s" %
          (name, gap_stats(prompts), sd["llama_selfdiff"], sd["llama_selfdiff_steps"],
           sd["llama_selfdiff_abs"]))


def main():
    ap = argparse.ArgumentParser(description="Record llama.cpp golden logits for test_golden.")
    ap.add_argument("--mkmodel", default=os.path.join(
        os.environ.get("KF_BUILDDIR", TOP), "kfchat-mkmodel"), help="kfchat-mkmodel to use")
    ap.add_argument("--testdata", default=os.environ.get(
        "KF_TESTDATA", os.path.join(TOP, "..", "shared", "testdata")),
        help="test data directory (with vocab/)")
    ap.add_argument("--models", default=models_dir(), help="directory of the real models")
    ap.add_argument("--out", default=HERE, help="where the .golden files go")
    ap.add_argument("--only", action="append", default=[],
                    help="only models whose name contains this (repeatable)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--list", action="store_true", help="list the models and exit")
    ap.add_argument("--retune", action="store_true",
                    help="only recompute the policy header lines of the existing files (no "
                         "llama.cpp needed)")
    opts = ap.parse_args()

    synth = synth_models()
    names = [s[0] for s in synth] + [m[0] for m in REAL_MODELS]
    if opts.list:
        print("\n".join(names))
        return
    if opts.retune:
        retune(opts.out)
        return
    ensure_venv()
    import numpy as np

    def wanted(n):
        return not opts.only or any(o in n for o in opts.only)

    if any(wanted(s[0]) for s in synth) and not os.access(opts.mkmodel, os.X_OK):
        sys.exit("gen_golden: %s not found; run `make kfchat-mkmodel` first" % opts.mkmodel)
    print("# %s; mkmodel %s" % (versions(), opts.mkmodel))
    with tempfile.TemporaryDirectory(prefix="kfchat-golden-") as tmpdir:
        for name, arch, args in synth:
            if wanted(name):
                record_synth(np, opts, name, arch, args, tmpdir)
    for name, fname, _, prompts in REAL_MODELS:
        if wanted(name):
            record_real(np, opts, name, fname, prompts)
    # a network's quantized models share their tolerance: redo the policy over all files
    retune(opts.out)
    print("# regenerate with: %s" % " ".join(
        shlex.quote(a) for a in ["python3", "tests/golden/gen_golden.py"] + sys.argv[1:]))


if __name__ == "__main__":
    main()
