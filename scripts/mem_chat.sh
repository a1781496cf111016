#!/bin/sh
# mem_chat.sh — peak memory of a long chat under a KV budget (issue 3's memory target): a chat in
# line mode, saved in a private database, whose user turns are piped in until the context is
# full, under /usr/bin/time; then the same for a two-turn chat (the fixed part of the memory).
#   scripts/mem_chat.sh [MODEL] [BUDGET] [CTX]
# MODEL: default the installed default model; BUDGET: --kv-budget value or "none" for the
# full cache (default 1024); CTX: the context, i.e. how long the chat may run (default 20480).
# Prints, per chat: positions reached, peak RSS split into the model file's size, the KV cache's
# allocation as kfchat -v reports it and what is left, and the resident size every 15 s.
# NOSAVE=1 runs the chats with --no-save (no database: the session then keeps its last two
# snapshots in memory); the positions are then not counted.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
KF=${KFCHAT:-$top/kfchat}
model=${1:-${XDG_DATA_HOME:-$HOME/.local/share}/kfchat/models/SmolLM2-135M-Instruct.Q4_1.gguf}
budget=${2:-1024}
ctx=${3:-20480}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kvopt="--kv-budget $budget"
save="--session mem"
[ -n "${NOSAVE:-}" ] && save=--no-save
[ "$budget" = none ] && kvopt="--kv-policy full"
turns() { # N user turns, open questions that ask for long answers, in turn
    i=0
    while [ "$i" -lt "$1" ]; do
        case $((i % 6)) in
        0) echo "Tell me a long story about a lighthouse keeper and a storm." ;;
        1) echo "Explain in detail how a steam engine works, step by step." ;;
        2) echo "Go on, and describe every character we have met so far." ;;
        3) echo "Write a detailed history of the printing press in Europe." ;;
        4) echo "Summarise everything we talked about, then add more details." ;;
        5) echo "Describe a walk through a busy market town, street by street." ;;
        esac
        i=$((i + 1))
    done
}
run() { # name, number of turns
    db="$tmp/$1"
    mkdir -p "$db"
    turns "$2" >"$tmp/$1.in"
    XDG_DATA_HOME="$db" /usr/bin/time -f "%M" -o "$tmp/$1.rss" \
        "$KF" chat --plain --gpu off -m "$model" $save -n 512 -s 1 -c "$ctx" $kvopt -v \
        <"$tmp/$1.in" >"$tmp/$1.out" 2>"$tmp/$1.err" &
    # the resident size every 15 s, to show whether it levels off
    samples="" tp=$!
    while kill -0 $tp 2>/dev/null; do
        sleep 15
        p=$(pgrep -P $tp || true) # kfchat, the child of time
        r=""
        [ -z "$p" ] || r=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$p/status" 2>/dev/null || true)
        [ -n "$r" ] && samples="$samples $r"
    done
    wait $tp || true
    pos=$(XDG_DATA_HOME="$db" "$KF" export mem --format json 2>/dev/null |
        sed -n 's/.*"n_tokens": *\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
    rss=$(tail -n 1 "$tmp/$1.rss")
    kv=$(sed -n 's/.*f16 (\([0-9.]*\) MiB allocated).*/\1/p; s/.*q8_0 (\([0-9.]*\) MiB allocated).*/\1/p' \
        "$tmp/$1.err" | head -n 1)
    full=$(grep -c 'context full' "$tmp/$1.err" || true)
    w=$(wc -c <"$model")
    # (a full cache is allocated for the whole context but resident only as far as it is used:
    # then the split below means nothing and is left out)
    split=$(echo "$rss $w ${kv:-0}" | awk '{o = $1 / 1024 - $2 / 1048576 - $3
        if (o >= 0) printf " = weights %.1f MiB + KV %.1f MiB allocated + %.1f MiB other", $2 / 1048576, $3, o}')
    echo "$1 ($kvopt, -c $ctx): $2 turns fed, $pos positions in the saved messages," \
         "context full: $full; peak RSS $((rss / 1024)) MiB$split"
    [ -z "$samples" ] || echo "  resident MiB every 15 s:$samples"
}
run short 2
run long "${TURNS:-400}"
