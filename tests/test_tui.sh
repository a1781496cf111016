#!/bin/sh
# test_tui.sh — kfchat's full-screen UI end to end in a real terminal (tmux): start on a tiny
# generated model, type a prompt and see the reply stream, stop a reply with Ctrl-C or Esc, open
# the key-token view, resize down to "too small" and back, quit (the terminal must be restored),
# restart and resume the conversation from the sessions pane.  TAP output; skips without tmux.
# Screens are polled with a timeout, never read after a fixed sleep.
set -u
LIB_NAME=tui
. "$(dirname "$0")/lib_tui.sh"

# Big enough that a 600-token reply lasts a second or more (a 64-wide model streams one in
# ~0.2 s, faster than the Ctrl-C below can land), small enough to write in a moment.
"$MK" --arch llama --vocab "$VOCAB" --embd 512 --layers 4 --heads 8 --kv-heads 4 --ff 1536 \
    --type q8_0 --ctx 2048 -o "$T/tiny.gguf" >/dev/null 2>&1
ok $? "kfchat-mkmodel writes a tiny model"
RUN="env XDG_DATA_HOME=$T/data TERM=screen-256color LANG=C.UTF-8 $KF -m $T/tiny.gguf -n 600 \
--kv-policy keyformer --kv-budget 64 --seed 7"
$S new-session -d -s kf -x 100 -y 30 "$RUN; echo KF-EXIT=\$?; sleep 600"

wait_for '^ready \|' 20; ok $? "starts to a ready prompt with the status line"
screen | grep -q 'keyformer B=64'; ok $? "status line shows the policy and budget"

keys 'Hello tui' Enter
wait_for '^assistant'; ok $? "the reply starts streaming"
wait_for '^ready \|'; ok $? "the reply ends"
[ "$(screen | grep -cv '^ *$')" -ge 8 ]; ok $? "the reply text is on screen"
screen | grep -Eq 'ctx [1-9][0-9]*/2048'; ok $? "the context position advanced"

keys 'Go on' Enter
wait_for 'generating' 10
keys C-c
wait_for 'stopped' 10; ok $? "Ctrl-C stops the reply"
screen | grep -q '^  Go on'; ok $? "the stopped turn is kept"
i=0 # the Ctrl-C note goes first, so that the next "stopped" is Esc's
while [ $i -lt 200 ] && screen | grep -q 'stopped'; do sleep 0.05; i=$((i + 1)); done
keys 'And more' Enter
wait_for 'generating' 10
keys Escape
wait_for 'stopped' 10; ok $? "Esc stops a reply too"
wait_for '^ready \|' 10; ok $? "and the prompt is ready again"
screen | grep -q '^  And more'; ok $? "that turn is kept as well"

keys F2
wait_for 'Key tokens: all layers'; ok $? "F2 opens the key-token panel"
wait_for 'L1 .*%'; ok $? "the panel lists per-layer retention"
keys F4
wait_for 'Key tokens: layer 0'; ok $? "F4 selects a layer"
keys S-Left
wait_for 'pos [0-9]+ L0 '; ok $? "the token cursor shows the token's class in the layer"

$S resize-window -t kf -x 50 -y 16
wait_for 'panel needs a larger terminal'; ok $? "50x16: the panel gives way"
$S resize-window -t kf -x 30 -y 10
wait_for 'too small'; ok $? "30x10: 'too small' message"
$S resize-window -t kf -x 100 -y 30
wait_for 'Key tokens: layer 0'; ok $? "back to 100x30: everything is drawn again"

keys '/help' Enter
wait_for 'Commands'; ok $? "/help shows the help screen"
keys q
wait_for '^ready'; ok $? "a key closes it"

keys C-c
wait_for 'Ctrl-C again to quit'; ok $? "Ctrl-C at an empty prompt asks once"
keys C-c
wait_for 'KF-EXIT=0'; ok $? "the second Ctrl-C quits with status 0"
[ "$($S display -p -t kf '#{alternate_on}')" = 0 ]; ok $? "the terminal is restored"
grep -q 'Hello tui' "$T/data/kfchat/history"; ok $? "the input history is saved"

$S respawn-pane -k -t kf "$RUN; echo KF-EXIT=\$?; sleep 600"
wait_for '^ready \|' 20
keys '/sessions' Enter
wait_for 'Sessions'; ok $? "/sessions lists the sessions"
screen | grep -q 'Hello tui'; ok $? "the list shows the first message"
keys Enter
wait_for '^  Go on' 20; ok $? "Enter resumes the session: the transcript is back"
keys PPage PPage PPage PPage PPage PPage PPage PPage
wait_for '^  Hello tui'; ok $? "PgUp scrolls back to the first turn"
keys '/quit' Enter
wait_for 'KF-EXIT=0'; ok $? "/quit leaves"

# On a terminal too, -p is a headless question: the answer on the terminal, then the shell.
$S kill-session -t kf
n0=$(env XDG_DATA_HOME="$T/data" "$KF" sessions --json | grep -c '"id"')
$S new-session -d -s kf -x 100 -y 30 "env XDG_DATA_HOME=$T/data TERM=screen-256color \
$KF -m $T/tiny.gguf -n 6 --temp 0 -p 'hello there'; echo KF-EXIT=\$?; sleep 600"
wait_for 'KF-EXIT=0' 30 && ! screen | grep -q '^ready'
ok $? "-p on a terminal answers and exits without the full-screen UI"
env XDG_DATA_HOME="$T/data" "$KF" -m "$T/tiny.gguf" -n 6 --temp 0 -p 'hello there' \
    >"$T/piped" 2>/dev/null
n1=$(env XDG_DATA_HOME="$T/data" "$KF" sessions --json | grep -c '"id"')
screen | grep -Fxq "$(head -n 1 "$T/piped")" && [ "$n0" -eq "$n1" ]
ok $? "the same answer as through a pipe, and nothing saved ($n0 -> $n1 sessions)"
# Ctrl-C (SIGINT) once the reply streams: what was written stays, exit status 130
env XDG_DATA_HOME="$T/data" "$KF" -m "$T/tiny.gguf" -n 1800 --temp 0 -p 'hello there' \
    >"$T/int" 2>"$T/interr" &
pid=$!
i=0
while [ ! -s "$T/int" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
[ $rc -eq 130 ] && [ -s "$T/int" ] && ! grep -v 'running on the CPU' "$T/interr" | grep -q .
ok $? "-p: SIGINT stops the reply, keeps it and exits with 130 (rc=$rc, $(wc -c <"$T/int") bytes)"

echo "1..$n"
[ $fails -eq 0 ]
