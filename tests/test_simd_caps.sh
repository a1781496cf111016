#!/bin/sh
# test_simd_caps.sh — engine/ops.c's kernels under a lower instruction set than this CPU's
# (KF_OPS_SIMD=avx2, =scalar): test_ops (every kernel against its double-precision reference,
# the fused steps bit for bit) and test_kv (the KV cache against its independent reference,
# the per-head and batched attention bit for bit) and test_model (the forward pass against itself:
# batch == token by token == chunks, threads bit for bit) must pass with each, so the AVX2 paths
# are tested on AVX-512 machines too.
B=${KF_BUILDDIR:-.}
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
for isa in avx2 scalar; do
    for t in test_ops test_kv test_model; do
        out=$(KF_OPS_SIMD=$isa "$B/tests/$t" 2>&1)
        bad=$(printf '%s\n' "$out" | grep -c '^not ok')
        total=$(printf '%s\n' "$out" | grep -c '^ok')
        [ "$bad" -eq 0 ] && [ "$total" -gt 0 ]
        ok $? "KF_OPS_SIMD=$isa $t: $total passed, $bad failed"
    done
done
echo "1..$n"
[ $fails -eq 0 ]
