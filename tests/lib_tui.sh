# lib_tui.sh — what the tmux-driven TUI tests share (sourced after LIB_NAME is set): lib.sh, a
# skip unless the tools of TUI_TOOLS (default tmux) and the programs are there, a private tmux
# server $S killed at exit, and screen / wait_for / keys for session "kf".
. "$(dirname "$0")/lib.sh"
for tool in ${TUI_TOOLS:-tmux}; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "1..0 # SKIP $tool not installed"
        exit 0
    fi
done
if [ ! -x "$KF" ] || [ ! -x "$MK" ] || [ ! -f "$VOCAB" ]; then
    echo "1..0 # SKIP kfchat, kfchat-mkmodel or $VOCAB missing"
    exit 0
fi
case $KF in /*) ;; *) KF="$(pwd)/$KF" ;; esac
S="tmux -L kf$LIB_NAME$$ -f /dev/null"
trap '$S kill-server >/dev/null 2>&1; rm -rf "$T"' EXIT
screen() { $S capture-pane -p -t kf 2>/dev/null; }
# wait_for PATTERN [SECONDS]: poll the screen until grep -E PATTERN matches
wait_for() {
    i=0
    lim=$(( ${2:-10} * 20 ))
    while [ $i -lt $lim ]; do
        if screen | grep -Eq -- "$1"; then return 0; fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "# timed out waiting for /$1/; screen:"
    screen | sed 's/^/#   /'
    return 1
}
keys() { $S send-keys -t kf "$@"; }
