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

Usage (from the top of the tree, after `make kfchat-mkmodel`):
    python3 tests/golden/gen_golden.py [--only SUBSTR ...] [--list]
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

# Real models: (golden name, file in the models directory, tolerance, prompts).
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
    ("smollm2-135m-instruct-q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf", 1e-2, SMOL_PROMPTS),
    ("gemma-3-270m-q4_k_m", "gemma-3-270m-q4_k_m.gguf", 1e-2, GEMMA_PROMPTS),
]


def tolerance(typ):
    return 1e-3 if typ in ("f32", "f16", "bf16") else 1e-2


def synth_models():
    """[(name, arch, mkmodel argument list, tolerance)]"""
    out = []
    for arch, vocab, shape, types, seed in SYNTH_ARCHS:
        for t in types:
            args = ["--arch", arch, "--vocab", vocab] + shape.split() + \
                   ["--type", t, "--seed", str(seed)]
            out.append(("%s-%s" % (arch, t), arch, args, tolerance(t)))
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
            pass
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
    if in_venv(venv):
        sys.exit("gen_golden: %s cannot import llama_cpp even after installing it" % venv)
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

    def close(self):
        self.llm.close()


def write_golden(path, header, prompts):
    """header: [(key, value)]; prompts: [(name, text or None, tokens, steps)]"""
    lines = ["# kfchat golden data: written by tests/golden/gen_golden.py, do not edit;",
             "# see tests/golden/README.md for the format.",
             "kfchat-golden %d" % FORMAT_VERSION]
    for k, v in header:
        lines.append("%s %s" % (k, v))
    for name, text, tokens, steps in prompts:
        lines.append("prompt %s" % name)
        if text is not None:
            lines.append("text %s" % escape(text))
        lines.append("tokens %d %s" % (len(tokens), " ".join(str(t) for t in tokens)))
        for s, tok, gap, ids, vals in steps:
            pairs = " ".join("%d %s" % (i, fmt(v)) for i, v in zip(ids, vals))
            lines.append("step %d %d %s %d %s" % (s, tok, fmt(gap), len(ids), pairs))
        lines.append("end")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def gap_stats(prompts):
    gaps = [g for _, _, _, steps in prompts for _, _, g, _, _ in steps]
    gaps.sort()
    small = sum(1 for g in gaps if g <= 1e-3)
    return "gaps min %.4g median %.4g, %d of %d <= 1e-3" % (gaps[0], gaps[len(gaps) // 2],
                                                            small, len(gaps))


def versions():
    import llama_cpp
    return "llama-cpp-python %s" % getattr(llama_cpp, "__version__", "?")

# ---- main ------------------------------------------------------------------------------------


def record_synth(np, opts, name, arch, args, tol, tmpdir):
    vocab = os.path.join(opts.testdata, "vocab", args[args.index("--vocab") + 1])
    argv = list(args)
    argv[argv.index("--vocab") + 1] = vocab
    path = os.path.join(tmpdir, name + ".gguf")
    t0 = time.time()
    subprocess.run([opts.mkmodel] + argv + ["-o", path], check=True, stdout=subprocess.DEVNULL)
    t_gen = time.time() - t0
    digest = sha256_file(path)
    r = Runner(path, opts.threads)
    prompts = []
    for pname, text in SYNTH_PROMPTS:
        toks = r.tokenize(text)
        prompts.append((pname, text, toks, r.run(np, toks)))
    r.close()
    os.unlink(path)
    header = [("model", name), ("arch", arch), ("mkmodel", " ".join(args)), ("sha256", digest),
              ("tolerance", "%g" % tol), ("generator", versions())]
    write_golden(os.path.join(opts.out, name + ".golden"), header, prompts)
    print("%-24s mkmodel %.2fs  %s" % (name, t_gen, gap_stats(prompts)))


def record_real(np, opts, name, fname, tol, prompt_list):
    path = os.path.join(opts.models, fname)
    if not os.path.exists(path):
        print("%-24s SKIPPED: %s not found" % (name, path))
        return
    r = Runner(path, opts.threads)
    arch = r.llm.metadata.get("general.architecture", "?")
    prompts = []
    for pname, text in prompt_list:
        toks = r.tokenize(text)
        prompts.append((pname, text, toks, r.run(np, toks)))
    r.close()
    header = [("model", name), ("arch", arch), ("file", fname),
              ("size", str(os.path.getsize(path))), ("sha256", sha256_file(path)),
              ("tolerance", "%g" % tol), ("generator", versions())]
    write_golden(os.path.join(opts.out, name + ".golden"), header, prompts)
    print("%-24s %s" % (name, gap_stats(prompts)))


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
    opts = ap.parse_args()

    synth = synth_models()
    names = [s[0] for s in synth] + [m[0] for m in REAL_MODELS]
    if opts.list:
        print("\n".join(names))
        return
    ensure_venv()
    import numpy as np

    def wanted(n):
        return not opts.only or any(o in n for o in opts.only)

    if any(wanted(s[0]) for s in synth) and not os.access(opts.mkmodel, os.X_OK):
        sys.exit("gen_golden: %s not found; run `make kfchat-mkmodel` first" % opts.mkmodel)
    print("# %s; mkmodel %s" % (versions(), opts.mkmodel))
    with tempfile.TemporaryDirectory(prefix="kfchat-golden-") as tmpdir:
        for name, arch, args, tol in synth:
            if wanted(name):
                record_synth(np, opts, name, arch, args, tol, tmpdir)
    for name, fname, tol, prompts in REAL_MODELS:
        if wanted(name):
            record_real(np, opts, name, fname, tol, prompts)
    print("# regenerate with: python3 tests/golden/gen_golden.py %s" %
          " ".join(shlex.quote(a) for a in sys.argv[1:]))


if __name__ == "__main__":
    main()
