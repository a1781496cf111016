#!/bin/sh
# test_tui_input.sh — the TUI's input line and progress display end to end in tmux: Alt-Enter
# (sent as M-Enter, and as ESC then CR the way a terminal sends it) inserts a newline like
# Ctrl-J, and the message goes out with its two lines, on screen and in the database; the
# user's inputrc ($INPUTRC) is read, with "$if kfchat" and a macro binding; the progress bar of
# the status line while a long pasted prompt is processed (a larger generated model, one
# thread, small prompt batches) and while the model loads (the first frames, recorded with
# pipe-pane because loading is quick), and again for /policy's reopen (from 0%) and re-processing.
# TAP output; skips without tmux or sqlite3.  Screens are
# polled with a timeout.
set -u
LIB_NAME=input
TUI_TOOLS="tmux sqlite3"
. "$(dirname "$0")/lib_tui.sh"
# wait_file PATTERN FILE: poll until grep -E PATTERN matches in FILE (a pipe-pane recording)
wait_file() {
    i=0
    while [ $i -lt 400 ]; do
        if grep -Eq -- "$1" "$2" 2>/dev/null; then return 0; fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "# timed out waiting for /$1/ in $2"
    return 1
}
# nyou: how many user messages the transcript shows
nyou() { screen | grep -c '^you'; }
# wait_nyou N: poll until the transcript shows N user messages
wait_nyou() {
    i=0
    while [ $i -lt 400 ] && [ "$(nyou)" -lt "$1" ]; do sleep 0.05; i=$((i + 1)); done
    [ "$(nyou)" -ge "$1" ]
}
DB="$T/data/kfchat/kfchat.db"
q() { sqlite3 "$DB" "$1" 2>/dev/null; }
# lastuser: the text of the last user message in the database, newlines shown as '|'
lastuser() { q "select replace(text, char(10), '|') from messages where role = 'user'
                order by id desc limit 1"; }

"$MK" --arch llama --vocab "$VOCAB" --embd 64 --layers 2 --heads 4 --kv-heads 2 --ff 128 \
    --type q8_0 --ctx 1024 -o "$T/tiny.gguf" >/dev/null 2>&1
ok $? "kfchat-mkmodel writes a tiny model"
# the user's inputrc: a macro for this program only, and one for another program that must not
# apply (readline's default Ctrl-T, transpose-chars, stays unless kfchat's block is read)
cat >"$T/inputrc" <<'EOF'
$if otherprogram
"\C-t": "wrong block"
$endif
$if kfchat
"\C-t": "hello from inputrc"
$endif
EOF
RUN="cd $T && env XDG_DATA_HOME=$T/data TERM=screen-256color LANG=C.UTF-8 INPUTRC=$T/inputrc \
$KF -m $T/tiny.gguf -n 8 --seed 7"
$S new-session -d -s kf -x 100 -y 30 "$RUN; echo KF-EXIT=\$?; sleep 600"
wait_for '^ready \|' 20; ok $? "starts to a ready prompt"

# --- Alt-Enter: a newline in the input, like Ctrl-J --------------------------------------------------
keys 'alt one' M-Enter
wait_for '^> alt one *$'; ok $? "Alt-Enter does not send the message"
[ "$(nyou)" -eq 0 ]; ok $? "nothing is in the transcript yet"
keys 'alt two'
wait_for '^  alt two'; ok $? "the second line is typed on a line of its own"
keys Enter
wait_nyou 1 && wait_for '^assistant' && wait_for '^ready \|' 20
ok $? "Enter sends it"
screen | grep -A1 '^  alt one$' | grep -q '^  alt two$'; ok $? "Alt-Enter makes a two-line message"
[ "$(lastuser)" = 'alt one|alt two' ]; ok $? "the database holds both lines as one message ($(lastuser))"
# ESC and CR as a terminal without a meta key sends Alt-Enter (one write, as typed)
keys 'esc one' Escape Enter 'esc two' Enter
wait_nyou 2 && wait_for '^ready \|' 20
screen | grep -A1 '^  esc one$' | grep -q '^  esc two$'; ok $? "ESC CR makes a two-line message too"
[ "$(lastuser)" = 'esc one|esc two' ]; ok $? "and it is saved as one message ($(lastuser))"
keys 'cj one' C-j 'cj two' Enter
wait_nyou 3 && wait_for '^ready \|' 20
[ "$(lastuser)" = 'cj one|cj two' ]; ok $? "Ctrl-J gives the same message in the database ($(lastuser))"

# --- the user's inputrc ---------------------------------------------------------------------------
keys C-t
wait_for '^> hello from inputrc *$'; ok $? "INPUTRC: the macro of the \$if kfchat block types its text"
screen | grep -q 'wrong block'; [ $? = 1 ]; ok $? "INPUTRC: another program's block is not applied"
keys Enter
wait_nyou 4 && wait_for '^  hello from inputrc' && wait_for '^ready \|' 20
ok $? "the macro's text is sent as a message"
[ "$(lastuser)" = 'hello from inputrc' ]; ok $? "and saved ($(lastuser))"
keys '/quit' Enter
wait_for 'KF-EXIT=0'; ok $? "/quit leaves with status 0"

# --- the progress bar while a long prompt is processed -------------------------------------------
# about 1400 prompt tokens on a 50M-parameter model with one thread, 16 tokens a batch: seconds
"$MK" --arch llama --vocab "$VOCAB" --embd 512 --layers 6 --heads 8 --kv-heads 4 --ff 1536 \
    --type q8_0 --ctx 4096 -t 1 -o "$T/mid.gguf" >/dev/null 2>&1
ok $? "kfchat-mkmodel writes a larger model"
MID="cd $T && env XDG_DATA_HOME=$T/data2 TERM=screen-256color LANG=C.UTF-8 INPUTRC=/dev/null \
$KF -m $T/mid.gguf -t 1 -b 16 -n 2 --seed 7"
# the pane waits for $T/go, so that pipe-pane records kfchat's output from its first byte
# (pipe-pane connects asynchronously: the pane prints dots until the recording has one)
$S respawn-pane -k -t kf "while [ ! -e $T/go ]; do printf .; sleep 0.05; done; $MID; \
echo KF-EXIT=\$?; sleep 600"
$S pipe-pane -o -t kf "cat >>$T/raw"
wait_file '\.' "$T/raw"; ok $? "pipe-pane records the pane"
touch "$T/go"
wait_for '^ready \|' 60; ok $? "the larger model loads to a ready prompt"
# the first frame is drawn before the model is loaded: the status line says so with a bar
LC_ALL=C tr -c '[:print:]' ' ' <"$T/raw" | grep -Eq 'loading[^|]{1,40} [0-9]+% \|'
ok $? "a progress bar with a percentage is drawn while the model loads"
$S pipe-pane -t kf
long=$(i=1; while [ $i -le 300 ]; do printf 'word%d alpha ' $i; i=$((i + 1)); done)
$S set-buffer "$long"
$S paste-buffer -p -t kf
keys Enter
# capture the status line until the reply starts; keep each percentage the bar showed
: >"$T/seen"
i=0
while [ $i -lt 2400 ]; do
    s=$(screen)
    echo "$s" | grep -E '^reading ' >>"$T/seen"
    echo "$s" | grep -Eq '^(generating|ready) ' && [ -s "$T/seen" ] && break
    echo "$s" | grep -Eq '^ready \| .*ctx [1-9][0-9]{3,}/' && break
    sleep 0.05
    i=$((i + 1))
done
grep -Eq '^reading [^|]* +[0-9]+% \|' "$T/seen"
ok $? "while the prompt is processed the status line shows 'reading', a bar and a percentage"
pcts=$(grep -Eo '^reading [^|]* +[0-9]+%' "$T/seen" | grep -Eo '[0-9]+%$' | sort -un | tr '\n' ' ')
echo "# percentages seen: $pcts"
echo "$pcts" | grep -Eq '(^| )([0-9]|[1-9][0-9])% '; ok $? "the bar is seen before 100%"
[ "$(echo "$pcts" | wc -w)" -ge 2 ]; ok $? "the percentage advances ($pcts)"
full=$(grep -Eo '^reading [^|]* +[0-9]+%' "$T/seen" | head -n 1)
# the bar itself: block characters (or '#' on an ASCII terminal) between the word and the number
echo "$full" | grep -Eq "^reading .*($(printf '\342\226')|#)"; ok $? "the bar is drawn ($full)"
wait_for '^ready \| .*ctx [1-9][0-9]{3,}/' 120; ok $? "the long prompt is processed and the reply ends"
# /policy opens the model again (the loading bar starts from 0, not from the time since start)
# and re-processes the conversation (the reading bar again)
: >"$T/raw2"
$S pipe-pane -o -t kf "cat >>$T/raw2"
keys 'pipecheck' # typed until the recording has it, then erased
wait_file 'pipecheck' "$T/raw2" && keys C-u && wait_for '^> *$'; ok $? "pipe-pane records the pane again"
keys '/policy window' Enter
: >"$T/seen2"
i=0
while [ $i -lt 2400 ]; do
    s=$(screen)
    echo "$s" | grep -E '^reading ' >>"$T/seen2"
    echo "$s" | grep -q 're-processed 2 messages' && break
    sleep 0.05
    i=$((i + 1))
done
wait_for 're-processed 2 messages' 20 && wait_for '^ready \| .*window' 20
ok $? "/policy re-processes the long conversation"
$S pipe-pane -t kf
first=$(LC_ALL=C tr -c '[:print:]' ' ' <"$T/raw2" | grep -Eo 'loading[^|]{1,40} [0-9]+% \|' | head -n 1)
echo "$first" | grep -Eq ' ([0-9]|[1-4][0-9])% \|$'
ok $? "the loading bar of a reopen starts near 0% ($first)"
grep -Eq '^reading [^|]* ([0-9]|[1-9][0-9])% \|' "$T/seen2"
ok $? "re-processing shows the reading bar"
keys '/quit' Enter
wait_for 'KF-EXIT=0'; ok $? "/quit leaves with status 0"

echo "1..$n"
[ $fails -eq 0 ]
