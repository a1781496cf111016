#!/usr/bin/env python3
"""Measure kfchat against llama.cpp (through llama-cpp-python) on the same machine, same run,
same threads: prompt processing (pp512) and generation (tg128) tokens/s, median of repeats.

Usage (from the top of a built tree):
    scripts/bench_vs_llamacpp.py [--threads 2] [--repeats 3] [--models default,tinyllama,smollm2]
                                 [--depth 0] [--json OUT]

Models:
    default    the installed default model (SmolLM2-135M-Instruct Q4_1)
    tinyllama  a TinyLlama-1.1B-shaped random-weight Q4_K_M model written by kfchat-mkmodel
    smollm2    a SmolLM2-135M-shaped random-weight Q4_K_M model written by kfchat-mkmodel
    PATH.gguf  any GGUF file

llama-cpp-python lives in a private venv ($KF_GOLDEN_VENV, default ~/.cache/kfchat-golden-venv),
created on first use; it is never a runtime dependency of kfchat.  The script re-executes itself
inside that venv.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

VENV = os.environ.get("KF_GOLDEN_VENV", os.path.expanduser("~/.cache/kfchat-golden-venv"))
# A portable llama.cpp build: -march=native builds died with SIGILL on these machines.
CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
              "-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON")
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.path.join(os.environ.get("XDG_DATA_HOME", os.path.expanduser("~/.local/share")), "kfchat")
SHARED = os.environ.get("KF_TESTDATA", os.path.join(TOP, "..", "shared", "testdata"))

SHAPES = {
    # name: (vocab file, mkmodel shape arguments)
    "tinyllama": ("ggml-vocab-llama-spm.gguf",
                  "--arch llama --embd 2048 --layers 22 --heads 32 --kv-heads 4 --ff 5632"),
    "smollm2": ("ggml-vocab-gpt-2.gguf",
                "--arch llama --embd 576 --layers 30 --heads 9 --kv-heads 3 --ff 1536"),
}


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count()))
        subprocess.check_call([py, "-m", "pip", "install", "-q", "llama-cpp-python", "numpy"], env=env)
    os.execv(py, [py] + sys.argv)


def model_path(name, tmp):
    if name == "default":
        return os.path.join(DATA, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if name in SHAPES:
        vocab, shape = SHAPES[name]
        out = os.path.join(tmp, name + "-q4_k_m.gguf")
        if not os.path.exists(out):
            cmd = [os.path.join(TOP, "kfchat-mkmodel"), "--vocab", os.path.join(SHARED, "vocab", vocab),
                   "--type", "q4_k_m", "--ctx", "8192", "-o", out] + shape.split()
            subprocess.check_call(cmd, stdout=subprocess.DEVNULL)
        return out
    return name


def bench_llamacpp(path, threads, n_prompt, n_gen, depth, repeats):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=depth + max(n_prompt, n_gen) + 16, n_batch=512, n_ubatch=512,
                n_threads=threads, n_threads_batch=threads, verbose=False)
    rng = random.Random(12345)
    n_vocab = llm.n_vocab()
    toks = [rng.randrange(n_vocab) for _ in range(depth + max(n_prompt, n_gen))]
    pp, tg = [], []
    for _ in range(repeats):
        llm.reset()
        if depth:
            llm.eval(toks[:depth])
        t0 = time.perf_counter()
        llm.eval(toks[depth:depth + n_prompt])
        pp.append(n_prompt / (time.perf_counter() - t0))
        llm.n_tokens = depth  # back to the depth: eval() drops cache entries past n_tokens
        t0 = time.perf_counter()
        for i in range(n_gen):
            llm.eval([toks[depth + i]])
        tg.append(n_gen / (time.perf_counter() - t0))
    return statistics.median(pp), statistics.median(tg)


def bench_kfchat(path, threads, n_prompt, n_gen, depth, repeats):
    cmd = [os.path.join(TOP, "kfchat"), "bench", "-m", path, "-t", str(threads), "-p", str(n_prompt),
           "-n", str(n_gen), "-d", str(depth), "-r", str(repeats), "--json"]
    out = json.loads(subprocess.check_output(cmd))
    res = {r["test"][:2]: r["tokens_per_s"] for r in out["results"]}
    return res["pp"], res["tg"], out["peak_rss_bytes"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--depth", type=int, default=0)
    ap.add_argument("--models", default="default,tinyllama")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    ensure_venv()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = model_path(name, tmp)
            lpp, ltg = bench_llamacpp(path, args.threads, args.prompt, args.gen, args.depth, args.repeats)
            kpp, ktg, rss = bench_kfchat(path, args.threads, args.prompt, args.gen, args.depth, args.repeats)
            rows.append(dict(model=name, depth=args.depth, threads=args.threads,
                             llamacpp_pp=lpp, kfchat_pp=kpp, pp_ratio=kpp / lpp,
                             llamacpp_tg=ltg, kfchat_tg=ktg, tg_ratio=ktg / ltg, kfchat_rss=rss))
            r = rows[-1]
            print(f"{name:10s} d{args.depth:<5d} pp{args.prompt}: llama.cpp {lpp:8.1f}  kfchat {kpp:8.1f}  "
                  f"ratio {r['pp_ratio']:.2f} | tg{args.gen}: llama.cpp {ltg:7.2f}  kfchat {ktg:7.2f}  "
                  f"ratio {r['tg_ratio']:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
