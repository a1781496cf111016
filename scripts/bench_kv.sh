#!/bin/sh
# bench_kv.sh — generation speed with a bounded Keyformer cache against the full cache, at given
# depths, on a TinyLlama-1.1B-shaped random-weight Q4_K_M model (or MODEL=file), CPU.
#   scripts/bench_kv.sh [DEPTH...]          default depths: 4096 16384
# Prints one `kfchat bench` table per (depth, policy) and the speedup keyformer/full.
# The budget is 50% of the context (depth + generated tokens), the recent window 30% of it.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
KF="$top/kfchat"
depths=${*:-4096 16384}
n=${N_GEN:-64}
threads=${THREADS:-2}
tmp=${TMPDIR:-/tmp}/kfchat-benchkv.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
model=${MODEL:-}
if [ -z "$model" ]; then
    model="$tmp/tinyllama-q4_k_m.gguf"
    vocab=${KF_TESTDATA:-$top/../shared/testdata}/vocab/ggml-vocab-llama-spm.gguf
    "$top/kfchat-mkmodel" --arch llama --vocab "$vocab" --embd 2048 --layers 22 --heads 32 \
        --kv-heads 4 --ff 5632 --type q4_k_m --ctx 32768 -o "$model" >/dev/null
fi
for d in $depths; do
    ctx=$((d + n))
    full=$("$KF" bench --gpu off -m "$model" -t "$threads" -p 0 -n "$n" -d "$d" -r 1 -c "$ctx" --json)
    kf=$("$KF" bench --gpu off -m "$model" -t "$threads" -p 0 -n "$n" -d "$d" -r 1 -c "$ctx" --json \
        --kv-policy keyformer --kv-budget 50%)
    f=$(printf '%s' "$full" | sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/')
    k=$(printf '%s' "$kf" | sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/')
    fr=$(printf '%s' "$full" | sed 's/.*"peak_rss_bytes": \([0-9]*\).*/\1/')
    kr=$(printf '%s' "$kf" | sed 's/.*"peak_rss_bytes": \([0-9]*\).*/\1/')
    echo "depth $d: full $f t/s (peak RSS $((fr / 1048576)) MiB), keyformer 50% $k t/s" \
         "(peak RSS $((kr / 1048576)) MiB), speedup $(echo "$k $f" | awk '{printf "%.2f", $1 / $2}')x"
done
