#!/bin/sh
# test_eval.sh — `kfchat eval` on a tiny generated model: the full cache against itself gives a
# PPL ratio of exactly 1 and 100% greedy agreement; a budget the document never exceeds changes
# nothing either; the shortcut that reuses full's NLLs before the first eviction gives the same
# numbers as recomputing them; a tiny window changes the PPL; short texts are skipped with a
# note; bad options fail with one line, and bad KV input (a budget below the window plus one,
# negative or absurd, an unknown policy) with one line naming the valid range.  TAP output.
set -u
LIB_NAME=eval
. "$(dirname "$0")/lib.sh"


# jnum FILE KEY : the first number after "KEY": in FILE
jnum() { sed -n "s/.*\"$2\": \([-0-9.e+]*\).*/\1/p" "$1" | head -n 1; }

if [ ! -x "$KF" ] || [ ! -x "$MK" ] || [ ! -f "$VOCAB" ]; then
    echo "1..0 # SKIP kfchat, kfchat-mkmodel or $VOCAB missing"
    exit 0
fi

"$MK" --arch llama --vocab "$VOCAB" --embd 64 --layers 2 --heads 4 --kv-heads 2 --ff 128 \
    --type q8_0 --ctx 512 -o "$T/tiny.gguf" >/dev/null 2>"$T/mkerr"
ok $? "kfchat-mkmodel writes a tiny llama model"
i=0
while [ $i -lt 300 ]; do
    echo "Line $i of the text: the quick brown fox jumps over the lazy dog, number $((i * 7 % 13))."
    i=$((i + 1))
done >"$T/doc.txt"
echo "A short text." >"$T/short.txt"
E="$KF eval -m $T/tiny.gguf -t 1 --tokens 160 --greedy 24 --chunk 8"

$E --text "$T/doc.txt" --kv-policy full --recompute --json >"$T/full.json" 2>"$T/full.err"
ok $? "eval of full runs"
[ "$(jnum "$T/full.json" ppl_ratio_mean)" = "1.000000" ] && \
    [ "$(jnum "$T/full.json" agreement_mean)" = "1.000000" ]
ok $? "full vs full: PPL ratio exactly 1, agreement 100% ($(jnum "$T/full.json" ppl_ratio_mean))"

$E --text "$T/doc.txt" --kv-policy h2o,keyformer --kv-budget 100% --recompute --json \
    >"$T/big.json" 2>/dev/null
r=$(sed -n 's/.*"ppl_ratio_mean": \([0-9.]*\).*/\1/p' "$T/big.json" | sort -u)
[ "$r" = "1.000000" ]; ok $? "a budget of N tokens: nothing evicted in the document, ratio 1 ($r)"

$E --text "$T/doc.txt" --kv-policy window,h2o,keyformer-static --kv-budget 25%,50% --json \
    >"$T/reuse.json" 2>/dev/null
$E --text "$T/doc.txt" --kv-policy window,h2o,keyformer-static --kv-budget 25%,50% --json \
    --recompute >"$T/recomp.json" 2>/dev/null
[ -s "$T/reuse.json" ] && cmp -s "$T/reuse.json" "$T/recomp.json"
ok $? "reusing full's NLLs before the first eviction gives the recomputed numbers exactly"

mkdir "$T/ref"
$E --text "$T/doc.txt" --kv-policy full --ref-dir "$T/ref" --json >"$T/ref1.json" 2>/dev/null
$E --text "$T/doc.txt" --kv-policy window,h2o,keyformer-static --kv-budget 25%,50% --json \
    --ref-dir "$T/ref" >"$T/ref2.json" 2>"$T/ref2.err"
ls "$T"/ref/ref-*.bin >/dev/null 2>&1 && grep -q "(from " "$T/ref2.err" && \
    cmp -s "$T/reuse.json" "$T/ref2.json"
ok $? "--ref-dir keeps full's results and a later run reuses them with the same numbers"

$E --text "$T/doc.txt" --kv-policy window --kv-budget 8 --json >"$T/tiny.json" 2>/dev/null
r=$(jnum "$T/tiny.json" ppl_ratio_mean)
[ -n "$r" ] && [ "$r" != "1.000000" ] && [ "$r" != "nan" ] && [ "$r" != "inf" ]
ok $? "window of 8 tokens changes the PPL (ratio $r)"

$E --text "$T/short.txt" --text "$T/doc.txt" --kv-policy sink --kv-budget 30% >"$T/tab" 2>"$T/tab.err"
rc=$?
[ $rc -eq 0 ] && grep -q "short.txt has .* tokens (< 160): skipped" "$T/tab.err" && \
    grep -q "^| sink | 30% (48) | 1 |" "$T/tab" && grep -q "^| full | - | 1 |" "$T/tab"
ok $? "a short text is skipped with a note; the table has full and the policy rows"

expect_error "no --text" "needs at least one --text" $E
expect_error "unknown policy" "kv-policy" $E --text "$T/doc.txt" --kv-policy nosuch
expect_error "budget share over 100%" "share" $E --text "$T/doc.txt" --kv-budget 150%
expect_error "budget too small for h2o" "out of range" $E --text "$T/doc.txt" --kv-policy h2o \
    --kv-budget 1
expect_error "missing text file" "cannot open" $E --text "$T/nope.txt"
# the issue's bad KV input, through eval (context N + G + 1 = 185) and the shared option path
# of the other commands (generate, -c 256): one line naming the valid range
expect_error "eval: negative budget names 1..185" "1\.\.185" $E --text "$T/doc.txt" --kv-budget -5
expect_error "eval: absurd budget names 1..185" "1\.\.185" $E --text "$T/doc.txt" \
    --kv-budget 99999999999
expect_error "eval: keyformer budget below window + 1 names 4..185" "4\.\.185" $E \
    --text "$T/doc.txt" --kv-budget 3
G="$KF generate -m $T/tiny.gguf -t 1 -c 256 -n 1 -p hi"
expect_error "generate: negative budget names 1..256" "1\.\.256" $G --kv-budget -5
expect_error "generate: zero budget names 1..256" "1\.\.256" $G --kv-budget 0
expect_error "generate: absurd budget names 1..256" "1\.\.256" $G --kv-budget 1e30
expect_error "generate: budget over the context names 1..256" "1\.\.256" $G --kv-budget 5000
expect_error "generate: h2o budget below window + 1 names 4..256" "4\.\.256" $G \
    --kv-policy h2o --kv-budget 2
expect_error "generate: sink budget = its sinks names 5..256" "5\.\.256" $G --kv-policy sink \
    --kv-budget 4
expect_error "generate: a 100% window names the window range" "(0, 100%)" $G --kv-budget 10 \
    --kv-recent 100
expect_error "generate: unknown KV type names the types" "f16 or q8_0" $G --kv-type q4_0
expect_error "generate: a q8_0 cache with head size 16 names the rule" "multiple of 32" $G \
    --kv-type q8_0
"$MK" --arch llama --vocab "$VOCAB" --embd 64 --layers 2 --heads 2 --ff 128 --type f32 \
    --ctx 256 -o "$T/hd32.gguf" >/dev/null 2>&1 &&
    "$KF" generate -m "$T/hd32.gguf" -t 1 -c 256 -n 8 --temp 0 -p hi --kv-type q8_0 \
        --kv-policy keyformer --kv-budget 40 --gpu off >"$T/q8.out" 2>"$T/q8.err" && [ -s "$T/q8.out" ]
ok $? "generate with a q8_0 cache (head size 32)"
"$KF" bench -m "$T/hd32.gguf" -t 1 -p 16 -n 4 -r 1 --kv-type q8_0 --gpu off 2>/dev/null |
    grep -q "(type q8_0)"
ok $? "bench names the cache type"
# eval's full reference is stored in the type asked for too (its PPL moves with q8_0)
E32="$KF eval -m $T/hd32.gguf -t 1 --tokens 160 --greedy 8 --chunk 8 --gpu off --text $T/doc.txt"
$E32 --kv-policy window --kv-budget 50% 2>/dev/null | grep "^| full |" >"$T/full16" &&
    $E32 --kv-policy window --kv-budget 50% --kv-type q8_0 2>/dev/null | grep "^| full |" \
        >"$T/full8" && [ -s "$T/full16" ] && ! cmp -s "$T/full16" "$T/full8"
ok $? "eval --kv-type q8_0: the full reference uses the q8_0 cache ($(cat "$T/full8"))"
expect_error "generate: unknown policy lists the policies" \
    "keyformer, keyformer-static, h2o, sink, window, full" $G --kv-policy nosuch
$E --text "$T/short.txt" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 2 ] && grep -q "skipped" "$T/err" && \
    tail -n 1 "$T/err" | grep -q "^kfchat: eval: no text has 160 tokens"
ok $? "only short texts: the skip note, then one error line (rc=$rc)"
expect_error "unknown option" "unknown option" $E --text "$T/doc.txt" --frobnicate

echo "1..$n"
[ $fails -eq 0 ]
