#!/usr/bin/env python3
# gen_hf_golden.py — record Hugging Face transformers' logits for small random-weight GPT-J,
# GPT-2 and MPT models into tests/golden/hf-*.golden, which tests/test_golden compares kfchat with
# (make check needs neither Python nor transformers: the files are committed).
#
# The weights are kfchat-mkmodel's (deterministic from the recorded arguments, so the test
# regenerates the very same GGUF and checks its SHA-256 instead of committing a binary).  This
# script reads that GGUF, builds the transformers model (GPTJForCausalLM, GPT2LMHeadModel,
# MptForCausalLM) from its metadata, and fills it by inverting llama.cpp's converter — the
# independent half of the check: the tensor names, transposes (GPT-2's Conv1D) and Q/K/V order
# are llama.cpp's, the math is transformers'.  Every parameter of the model must be filled from
# the file (nothing left at its random initialization) and hold the file's values bit for bit.
# The model then runs in float64 on the CPU: for each prompt (fixed token
# ids, no text: the tokenizers are tested on their own vectors) the top-20 logits after the
# prompt and 31 greedy steps with their top-10 logits, in the format of gen_golden.py.
#
# Setup (once; only PyPI is needed):
#   python3 -m venv ~/.cache/kfchat-hf-venv
#   ~/.cache/kfchat-hf-venv/bin/pip install torch transformers gguf numpy
#     (the CPU-only torch index, if reachable, makes that much smaller:
#      pip install torch --index-url https://download.pytorch.org/whl/cpu)
# Run from the source tree after `make kfchat-mkmodel`:
#   ~/.cache/kfchat-hf-venv/bin/python tests/golden/gen_hf_golden.py [--only NAME]
# Paths: KF_TESTDATA (default ../shared/testdata) for the vocab files, KF_BUILDDIR (default .)
# for kfchat-mkmodel.
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np

FORMAT_VERSION = 1
N_STEPS = 32          # step 0 = after the prompt, then 31 greedy tokens
TOPK_PROMPT, TOPK_STEP = 20, 10
TOLERANCE = 1e-3      # the bound for F32

# name, arch, mkmodel arguments (the vocab is a file name under $KF_TESTDATA/vocab)
MODELS = [
    # head 32 with rotary_dim 16: partial rotary on adjacent pairs; untied output with bias
    ("hf-gptj-f32", "gptj",
     "--arch gptj --vocab ggml-vocab-gpt-2.gguf --embd 128 --layers 2 --heads 4 --ff 512 "
     "--rope-dim 16 --ctx 512 --type f32 --seed 1"),
    # learned positions for the 512 positions test_golden opens the model with
    ("hf-gpt2-f32", "gpt2",
     "--arch gpt2 --vocab ggml-vocab-gpt-2.gguf --embd 128 --layers 2 --heads 4 --ff 512 "
     "--ctx 512 --type f32 --seed 1"),
    # ALiBi with 8 heads (slopes 2^-1 .. 2^-8) and a clamp that does cut some q/k/v values
    ("hf-mpt-f32", "mpt",
     "--arch mpt --vocab ggml-vocab-mpt.gguf --embd 128 --layers 2 --heads 8 --ff 512 "
     "--ctx 512 --alibi-bias 8 --clamp-kqv 1.5 --type f32 --seed 1"),
]

COMMENT = ["# kfchat golden data: written by tests/golden/gen_hf_golden.py from Hugging Face",
           "# transformers, do not edit; see tests/golden/README.md for the format."]


def prompts_for(n_vocab):
    """Two fixed prompts of token ids: a short one and one of 40 (deterministic, any vocab)."""
    rng = np.random.RandomState(20240)
    return [("short", [int(t) for t in rng.randint(0, n_vocab, size=5)]),
            ("long", [int(t) for t in rng.randint(0, n_vocab, size=40)])]


def fmt(v):
    return "%.7g" % v


# ---- GGUF -> transformers --------------------------------------------------------------------

def read_gguf(path):
    import gguf
    r = gguf.GGUFReader(path)
    kv = {}
    for f in r.fields.values():
        if f.name.startswith("tokenizer."):
            continue
        if f.types and f.types[0] == gguf.GGUFValueType.STRING:
            kv[f.name] = bytes(f.parts[f.data[0]]).decode()
        elif f.data:
            kv[f.name] = f.parts[f.data[0]][0].item()
    tensors = {}
    for t in r.tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise SystemExit("%s: %s is not F32" % (path, t.name))
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # numpy order: (ne1, ne0)
        tensors[t.name] = np.array(t.data, dtype=np.float32).reshape(shape)
    n_vocab = tensors["token_embd.weight"].shape[0]
    return kv, tensors, n_vocab


def build_gptj(kv, T, n_vocab):
    from transformers import GPTJConfig, GPTJForCausalLM
    a = "gptj."
    cfg = GPTJConfig(vocab_size=n_vocab, n_positions=kv[a + "context_length"],
                     n_embd=kv[a + "embedding_length"], n_layer=kv[a + "block_count"],
                     n_head=kv[a + "attention.head_count"], n_inner=kv[a + "feed_forward_length"],
                     rotary_dim=kv[a + "rope.dimension_count"], activation_function="gelu_new",
                     layer_norm_epsilon=kv[a + "attention.layer_norm_epsilon"],
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False)
    sd = {"transformer.wte.weight": T["token_embd.weight"],
          "transformer.ln_f.weight": T["output_norm.weight"],
          "transformer.ln_f.bias": T["output_norm.bias"],
          "lm_head.weight": T["output.weight"], "lm_head.bias": T["output.bias"]}
    for i in range(cfg.n_layer):
        b, h = "blk.%d." % i, "transformer.h.%d." % i
        sd.update({h + "ln_1.weight": T[b + "attn_norm.weight"],
                   h + "ln_1.bias": T[b + "attn_norm.bias"],
                   # nn.Linear keeps [out, in], which is GGUF's [ne1, ne0]: no transpose, and
                   # GPT-J's rotate_every_two is ggml's NORM rope, so no permutation either
                   h + "attn.q_proj.weight": T[b + "attn_q.weight"],
                   h + "attn.k_proj.weight": T[b + "attn_k.weight"],
                   h + "attn.v_proj.weight": T[b + "attn_v.weight"],
                   h + "attn.out_proj.weight": T[b + "attn_output.weight"],
                   h + "mlp.fc_in.weight": T[b + "ffn_up.weight"],
                   h + "mlp.fc_in.bias": T[b + "ffn_up.bias"],
                   h + "mlp.fc_out.weight": T[b + "ffn_down.weight"],
                   h + "mlp.fc_out.bias": T[b + "ffn_down.bias"]})
    return GPTJForCausalLM(cfg), sd, {}


def build_gpt2(kv, T, n_vocab):
    from transformers import GPT2Config, GPT2LMHeadModel
    a = "gpt2."
    cfg = GPT2Config(vocab_size=n_vocab, n_positions=T["position_embd.weight"].shape[0],
                     n_embd=kv[a + "embedding_length"], n_layer=kv[a + "block_count"],
                     n_head=kv[a + "attention.head_count"], n_inner=kv[a + "feed_forward_length"],
                     activation_function="gelu_new",
                     layer_norm_epsilon=kv[a + "attention.layer_norm_epsilon"],
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True)
    sd = {"transformer.wte.weight": T["token_embd.weight"],
          "transformer.wpe.weight": T["position_embd.weight"],
          "transformer.ln_f.weight": T["output_norm.weight"],
          "transformer.ln_f.bias": T["output_norm.bias"]}
    conv = {}  # Conv1D weights are [in, out]: the converter transposes them
    for i in range(cfg.n_layer):
        b, h = "blk.%d." % i, "transformer.h.%d." % i
        sd.update({h + "ln_1.weight": T[b + "attn_norm.weight"],
                   h + "ln_1.bias": T[b + "attn_norm.bias"],
                   h + "attn.c_attn.bias": T[b + "attn_qkv.bias"],
                   h + "attn.c_proj.bias": T[b + "attn_output.bias"],
                   h + "ln_2.weight": T[b + "ffn_norm.weight"],
                   h + "ln_2.bias": T[b + "ffn_norm.bias"],
                   h + "mlp.c_fc.bias": T[b + "ffn_up.bias"],
                   h + "mlp.c_proj.bias": T[b + "ffn_down.bias"]})
        for hf, gg in (("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"),
                       ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down")):
            sd[h + hf + ".weight"] = T[b + gg + ".weight"].T.copy()
            conv[h + hf + ".weight"] = True
    return GPT2LMHeadModel(cfg), sd, conv


def build_mpt(kv, T, n_vocab):
    from transformers import MptConfig, MptForCausalLM
    a = "mpt."
    d = kv[a + "embedding_length"]
    if kv[a + "feed_forward_length"] != 4 * d:
        raise SystemExit("HF MPT's MLP is 4 x d_model")
    mb = kv[a + "attention.max_alibi_bias"]
    attn = {"alibi": True, "alibi_bias_max": int(mb) if mb == int(mb) else mb,
            "clip_qkv": kv.get(a + "attention.clamp_kqv")}
    cfg = MptConfig(d_model=d, n_heads=kv[a + "attention.head_count"],
                    n_layers=kv[a + "block_count"], expansion_ratio=4,
                    max_seq_len=kv[a + "context_length"], vocab_size=n_vocab,
                    layer_norm_epsilon=kv[a + "attention.layer_norm_epsilon"], no_bias=True,
                    resid_pdrop=0.0, emb_pdrop=0.0, attn_config=attn)
    sd = {"transformer.wte.weight": T["token_embd.weight"],
          "transformer.norm_f.weight": T["output_norm.weight"]}
    for i in range(cfg.n_layers):
        b, h = "blk.%d." % i, "transformer.blocks.%d." % i
        sd.update({h + "norm_1.weight": T[b + "attn_norm.weight"],
                   h + "attn.Wqkv.weight": T[b + "attn_qkv.weight"],
                   h + "attn.out_proj.weight": T[b + "attn_output.weight"],
                   h + "norm_2.weight": T[b + "ffn_norm.weight"],
                   h + "ffn.up_proj.weight": T[b + "ffn_up.weight"],
                   h + "ffn.down_proj.weight": T[b + "ffn_down.weight"]})
    return MptForCausalLM(cfg), sd, {}


BUILDERS = {"gptj": build_gptj, "gpt2": build_gpt2, "mpt": build_mpt}


def hf_model(arch, kv, T, n_vocab):
    import torch
    model, sd, conv = BUILDERS[arch](kv, T, n_vocab)
    state = model.state_dict()
    missing = [k for k in state if k not in sd and k != "lm_head.weight"]
    if missing:
        raise SystemExit("%s: weights not filled: %s" % (arch, missing))
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
                          strict=False)
    model.tie_weights()
    # the model holds exactly the file's values
    back = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for k, v in sd.items():
        w = back[k]
        if w.shape != v.shape or not np.array_equal(w, v):
            raise SystemExit("%s: %s does not hold its GGUF tensor" % (arch, k))
    return model.double().eval()


def logits_of(model, ids):
    import torch
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=False)
    return out.logits[0].double().numpy()


def record(model, tokens):
    """-> steps [(s, token, gap, ids, vals)], and the largest relative difference between the
    step-by-step logits and one batch over prompt + greedy tokens (transformers' own noise)"""
    seq = list(tokens)
    steps, rows = [], []
    for s in range(N_STEPS):
        lg = logits_of(model, seq)[-1]
        rows.append(lg)
        order = np.argsort(-lg, kind="stable")
        k = TOPK_PROMPT if s == 0 else TOPK_STEP
        tok = int(order[0])
        steps.append((s, tok, float(lg[order[0]] - lg[order[1]]), [int(i) for i in order[:k]],
                      [float(lg[i]) for i in order[:k]]))
        seq.append(tok)
    batch = logits_of(model, seq[:-1])[len(tokens) - 1:]
    diff = max(float(np.max(np.abs(batch[i] - rows[i])) / np.max(np.abs(rows[i])))
               for i in range(N_STEPS))
    return steps, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", help="only the model of this name")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    import torch
    import transformers
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    testdata = os.environ.get("KF_TESTDATA", "../shared/testdata")
    mkmodel = os.path.join(os.environ.get("KF_BUILDDIR", "."), "kfchat-mkmodel")
    gen = "transformers %s, torch %s (float64, CPU)" % (transformers.__version__,
                                                       torch.__version__)
    for name, arch, mk in MODELS:
        if args.only and args.only != name:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, name + ".gguf")
            argv = mk.split()
            i = argv.index("--vocab")
            argv[i + 1] = os.path.join(testdata, "vocab", argv[i + 1])
            subprocess.run([mkmodel] + argv + ["-o", path], check=True, stdout=subprocess.DEVNULL)
            with open(path, "rb") as f:
                sha = hashlib.sha256(f.read()).hexdigest()
            kv, T, n_vocab = read_gguf(path)
        model = hf_model(arch, kv, T, n_vocab)
        body, worst = [], 0.0
        for pname, tokens in prompts_for(n_vocab):
            steps, diff = record(model, tokens)
            worst = max(worst, diff)
            body.append("prompt %s" % pname)
            body.append("tokens %d %s" % (len(tokens), " ".join(str(t) for t in tokens)))
            for s, tok, gap, ids, vals in steps:
                pairs = " ".join("%d %s" % (i, fmt(v)) for i, v in zip(ids, vals))
                body.append("step %d %d %s %d %s" % (s, tok, fmt(gap), len(ids), pairs))
            body.append("end")
        header = ["kfchat-golden %d" % FORMAT_VERSION, "model " + name, "arch " + arch,
                  "mkmodel " + mk, "sha256 " + sha, "tolerance %g" % TOLERANCE,
                  "tolerance_rule issue: f32 %g against transformers" % TOLERANCE,
                  "greedy_tie 0.001", "generator " + gen]
        out = os.path.join(args.out, name + ".golden")
        with open(out + ".tmp", "w") as f:
            f.write("\n".join(COMMENT + header + body) + "\n")
        os.replace(out + ".tmp", out)
        print("%s: %s, transformers batch vs step-by-step %.3g" % (out, sha[:12], worst))


if __name__ == "__main__":
    sys.exit(main())
