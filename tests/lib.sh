# lib.sh — what the shell tests share (sourced, not run): the built programs and the test
# vocabulary, a temporary directory $T removed at exit, TAP counting (ok) and expect_error.
# Set LIB_NAME first (it names the temporary directory); EXPECT_IN is expect_error's standard
# input (default /dev/null).
B=${KF_BUILDDIR:-.}
KF="$B/kfchat"
MK="$B/kfchat-mkmodel"
VOCAB="${KF_TESTDATA:-../shared/testdata}/vocab/ggml-vocab-llama-spm.gguf"
T=$(mktemp -d "${TMPDIR:-/tmp}/kfchat-${LIB_NAME:-test}.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }

# expect_error NAME PATTERN CMD... : exit status 1..127 (not a signal) and exactly one stderr
# line, matching PATTERN
expect_error() {
    name=$1; pat=$2; shift 2
    "$@" >"$T/out" 2>"$T/err" <"${EXPECT_IN:-/dev/null}"
    rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$lines" -eq 1 ] && grep -q -- "$pat" "$T/err"; then
        ok 0 "$name"
    else
        ok 1 "$name"
        echo "# rc=$rc lines=$lines stderr: $(head -c 300 "$T/err")"
    fi
}
