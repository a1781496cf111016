#!/bin/sh
# test_cli.sh — the kfchat command line on bad input: each case must fail with exit status
# non-zero and exactly one line on stderr that says what is wrong, and never crash (status
# >= 128 would be a signal).  Also checks the happy paths of generate/tokenize/bench on a tiny
# generated model.  TAP output.
set -u
LIB_NAME=cli
. "$(dirname "$0")/lib.sh"

if [ ! -x "$KF" ] || [ ! -x "$MK" ] || [ ! -f "$VOCAB" ]; then
    echo "1..0 # SKIP kfchat, kfchat-mkmodel or $VOCAB missing"
    exit 0
fi

"$MK" --arch llama --vocab "$VOCAB" --embd 64 --layers 2 --heads 4 --kv-heads 2 --ff 128 \
    --type q8_0 --ctx 256 -o "$T/tiny.gguf" >/dev/null 2>"$T/mkerr"
ok $? "kfchat-mkmodel writes a tiny llama model"

# --- happy paths -----------------------------------------------------------------------------
"$KF" --version | grep -q "^kfchat " ; ok $? "--version"
"$KF" --help | grep -q "usage: kfchat" ; ok $? "--help"
out=$("$KF" tokenize -m "$T/tiny.gguf" --no-bos "Hello world" 2>&1)
[ "$out" = "15043 3186" ]; ok $? "tokenize --no-bos prints ids (got '$out')"
out=$("$KF" tokenize -m "$T/tiny.gguf" "Hello world" 2>&1)
[ "$out" = "1 15043 3186" ]; ok $? "tokenize adds BOS (got '$out')"
"$KF" generate -m "$T/tiny.gguf" -p "Hello" -n 8 --temp 0 >"$T/g1" 2>"$T/ge"; rc=$?
[ $rc -eq 0 ] && [ -s "$T/g1" ]; ok $? "generate greedy runs (rc=$rc)"
printf "Hello" | "$KF" generate -m "$T/tiny.gguf" -n 8 --temp 0 >"$T/g2" 2>/dev/null
cmp -s "$T/g1" "$T/g2"; ok $? "generate reads the prompt from stdin, greedy is deterministic"
"$KF" generate -m "$T/tiny.gguf" -p "Hello" -n 8 --seed 7 >"$T/s1" 2>/dev/null
"$KF" generate -m "$T/tiny.gguf" -p "Hello" -n 8 --seed 7 -t 1 >"$T/s2" 2>/dev/null
cmp -s "$T/s1" "$T/s2"; ok $? "same seed, different thread count: same text"
"$KF" bench -m "$T/tiny.gguf" -p 16 -n 4 -r 1 --json >"$T/b" 2>&1
grep -q '"tokens_per_s"' "$T/b" && grep -q '"peak_rss_bytes"' "$T/b"; ok $? "bench --json"
grep -q '"warmup": true' "$T/b"; ok $? "bench warms each test up by default"
"$KF" bench -m "$T/tiny.gguf" -p 16 -n 4 -r 1 --no-warmup --json 2>&1 | grep -q '"warmup": false'
ok $? "bench --no-warmup leaves the warm-up out"
"$KF" bench -m "$T/tiny.gguf" -p 16 -n 4 -r 1 -d 8 >"$T/b2" 2>&1
grep -q "tg4 @ d8" "$T/b2"; ok $? "bench table with depth"
printf 'hi\nhow are you\n' | "$KF" chat -m "$T/tiny.gguf" -n 4 --temp 0 >"$T/c" 2>"$T/ce"
[ $? -eq 0 ] && [ "$(wc -l <"$T/c")" -eq 2 ]; ok $? "line-mode chat answers one reply per input line"
# headless: -p is one user turn, answered as a piped chat answers it
"$KF" -m "$T/tiny.gguf" -n 4 --temp 0 -p "hi" >"$T/p1" 2>"$T/pe"; rc=$?
[ $rc -eq 0 ] && [ "$(wc -l <"$T/p1")" -eq 1 ] && head -1 "$T/c" | cmp -s - "$T/p1"
ok $? "kfchat -p answers one turn as line-mode chat does (rc=$rc)"
"$KF" chat -m "$T/tiny.gguf" -n 4 --temp 0 --prompt "how are you" >"$T/p2" 2>/dev/null
"$KF" chat -m "$T/tiny.gguf" -n 4 --temp 0 -p "hi" >"$T/p3" 2>/dev/null
! cmp -s "$T/p2" "$T/p3" && [ -s "$T/p2" ]; ok $? "chat --prompt: the answer depends on the text"
printf 'world\n' >"$T/msg"
"$KF" -m "$T/tiny.gguf" -n 6 --temp 0 -p "hello" -f "$T/msg" >"$T/p4" 2>/dev/null
"$KF" -m "$T/tiny.gguf" -n 6 --temp 0 -p "hello

world" >"$T/p5" 2>/dev/null
[ -s "$T/p4" ] && cmp -s "$T/p4" "$T/p5"; ok $? "-p TEXT -f FILE: TEXT, a blank line, then the file"
printf 'hello\n\nworld\n' >"$T/msg2"
"$KF" -m "$T/tiny.gguf" -n 6 --temp 0 -f "$T/msg2" >"$T/p6" 2>/dev/null
cmp -s "$T/p4" "$T/p6"; ok $? "-f FILE alone: the file's text (its last newline dropped)"
"$KF" -m "$T/tiny.gguf" -n 6 --temp 0 -p "hello" -f - <"$T/msg" >"$T/p7" 2>/dev/null
cmp -s "$T/p4" "$T/p7"; ok $? "-f - reads the text from standard input"

# the default context: min(training, 4096), or the whole training context once a budget in
# tokens or memory holds the cache (a share stays a share of the usual default)
"$MK" --arch llama --vocab "$VOCAB" --embd 64 --layers 2 --heads 4 --kv-heads 2 --ff 128 \
    --type q8_0 --ctx 8192 -o "$T/long.gguf" >/dev/null 2>&1
ctx_of() { "$KF" generate -m "$T/long.gguf" -p Hi -n 1 -v "$@" 2>&1 >/dev/null |
           sed -n 's/.*, ctx \([0-9]*\),.*/\1/p'; }
c1=$(ctx_of); c2=$(ctx_of --kv-budget 64); c3=$(ctx_of --kv-budget 1MiB)
c4=$(ctx_of --kv-budget 50%); c5=$(ctx_of --kv-budget 64 -c 512)
[ "$c1" = 4096 ] && [ "$c2" = 8192 ] && [ "$c3" = 8192 ] && [ "$c4" = 4096 ] && [ "$c5" = 512 ]
ok $? "default context: 4096 without a budget, training's with tokens or memory ($c1 $c2 $c3 $c4 $c5)"
"$KF" generate -m "$T/long.gguf" -p Hi -n -1 --ignore-eos --temp 0 -v --kv-budget 64 \
    2>"$T/le" >/dev/null
grep -q "generated 8191 tokens" "$T/le"
ok $? "a budget of 64 tokens runs past 4096 positions, to the training context"
# a chat that fills its context says, in the same one line, how a chat can run longer
printf 'fill it\n' | "$KF" chat -m "$T/long.gguf" -n 5000 --temp 0 --seed 7 --no-save \
    >/dev/null 2>"$T/cf1"; rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$T/cf1")" -eq 1 ] &&
    grep -q "context full (4096 tokens); with --kv-budget N (tokens) a new chat runs to the model's 8192" "$T/cf1"
ok $? "a full context names --kv-budget and the training context (rc=$rc)"
"$KF" -m "$T/long.gguf" -n 5000 --temp 0 --seed 7 -c 4096 -p "fill it" >/dev/null 2>"$T/cf2"; rc=$?
[ $rc -eq 1 ] && [ "$(cat "$T/cf2")" = "kfchat: context full (4096 tokens)" ]
ok $? "with -c the full context is said without the hint (rc=$rc)"

# a CUDA build opens cuBLAS only for a GPU model: a CPU run maps none of it (linked, it left about
# 210 MiB resident in every process)
if ldd "$KF" 2>/dev/null | grep -q libcudart; then
    ! ldd "$KF" | grep -q libcublas; ok $? "a CUDA build does not link cuBLAS"
    LD_DEBUG=files "$KF" generate --gpu off -m "$T/tiny.gguf" -p Hi -n 2 >/dev/null 2>"$T/ld"
    grep -q "file=libcudart" "$T/ld" && ! grep -q "file=libcublas" "$T/ld"
    ok $? "generate --gpu off loads no cuBLAS (the check sees cudart loaded)"
else
    echo "ok $((n + 1)) # SKIP not a CUDA build"; n=$((n + 1))
    echo "ok $((n + 1)) # SKIP not a CUDA build"; n=$((n + 1))
fi

# --- bad input -----------------------------------------------------------------------------
expect_error "missing model file" "No such file" "$KF" generate -m "$T/nope.gguf" -p hi
expect_error "a directory as model" "directory" "$KF" generate -m "$T" -p hi
printf 'this is not a model at all, just text\n' >"$T/text.gguf"
expect_error "non-GGUF file" "not a GGUF file" "$KF" generate -m "$T/text.gguf" -p hi
size=$(wc -c <"$T/tiny.gguf")
head -c $((size / 2)) "$T/tiny.gguf" >"$T/trunc.gguf"
expect_error "truncated GGUF (half)" "truncated\|past the end" "$KF" generate -m "$T/trunc.gguf" -p hi
head -c 100 "$T/tiny.gguf" >"$T/trunc2.gguf"
expect_error "truncated GGUF (header)" "trunc\|past end" "$KF" generate -m "$T/trunc2.gguf" -p hi
expect_error "vocab-only file as a model" "no tensors" "$KF" generate -m "$VOCAB" -p hi
long=$(yes "word" | head -n 400 | tr '\n' ' ')
expect_error "prompt longer than the context" "context" "$KF" generate -m "$T/tiny.gguf" -c 64 -p "$long"
expect_error "bad thread count" "needs an integer" "$KF" generate -m "$T/tiny.gguf" -t 0 -p hi
expect_error "bad temperature" "temp" "$KF" generate -m "$T/tiny.gguf" --temp abc -p hi
many=$(seq -s, 0 16 1024)
expect_error "bench: too many depths" "at most" "$KF" bench -m "$T/tiny.gguf" -d "$many"
expect_error "bench: empty depth list" "depth" "$KF" bench -m "$T/tiny.gguf" -d ,
expect_error "bench: negative depth" "needs an integer" "$KF" bench -m "$T/tiny.gguf" -d 8,-1
expect_error "unknown template" "template" "$KF" generate -m "$T/tiny.gguf" --template nosuch -p hi
expect_error "unknown option" "unknown option" "$KF" generate --frobnicate
expect_error "-p: empty message" "empty" "$KF" -m "$T/tiny.gguf" -p ""
expect_error "-p without a text" "needs a text" "$KF" -m "$T/tiny.gguf" -p
expect_error "-f: missing file" "cannot open" "$KF" -m "$T/tiny.gguf" -f "$T/nosuch.txt"
expect_error "-p: prompt longer than the context" "context" "$KF" -m "$T/tiny.gguf" -c 64 -p "$long"
expect_error "unknown command" "unknown command" "$KF" frobnicate
expect_error "mkmodel: unknown arch" "arch" "$MK" --arch nosuch --vocab "$VOCAB" --embd 64 \
    --layers 1 --heads 4 --kv-heads 4 --ff 128 --type f32 -o "$T/x.gguf"

echo "1..$n"
[ $fails -eq 0 ]
