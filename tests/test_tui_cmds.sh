#!/bin/sh
# test_tui_cmds.sh — the TUI's slash commands end to end in tmux, each checked on screen and in
# the database: /copy (OSC 52, read back from a tmux buffer), /export json|md, /search, /temp,
# /policy, /budget (a bad value keeps the old settings), /edit (through $EDITOR and inline),
# /regen, /rename, /fork, /system, /new, /resume ID, /delete (asks); then a corrupt database
# (one clear line, the file untouched, the chat goes on unsaved and /temp, /policy and a failed
# /resume keep the conversation), a 20x5 terminal, Ctrl-J and bracketed paste, NO_COLOR, a crash
# signal (the terminal restored), Ctrl-Z / fg under a job-control shell, and a full context (the
# note names /budget, which lets the chat go on to the training context).
# TAP output; skips without tmux or sqlite3.  Screens are polled with a timeout.
set -u
LIB_NAME=cmds
TUI_TOOLS="tmux sqlite3"
. "$(dirname "$0")/lib_tui.sh"
# wait_gone PATTERN [SECONDS]: poll until PATTERN is no longer on screen
wait_gone() {
    i=0
    lim=$(( ${2:-10} * 20 ))
    while [ $i -lt $lim ]; do
        if ! screen | grep -Eq -- "$1"; then return 0; fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "# /$1/ still on screen"
    return 1
}
# say TEXT: type a line and wait for the reply to end (the state goes back to "ready")
say() {
    keys "$1" Enter
    wait_for "^  $1" 10 && wait_for '^assistant' 10 && wait_for '^ready \|' 20
}
DB="$T/data/kfchat/kfchat.db"
q() { sqlite3 "$DB" "$1" 2>/dev/null; }

"$MK" --arch llama --vocab "$VOCAB" --embd 64 --layers 2 --heads 4 --kv-heads 2 --ff 128 \
    --type q8_0 --ctx 1024 -o "$T/tiny.gguf" >/dev/null 2>&1
ok $? "kfchat-mkmodel writes a tiny model"
# $EDITOR for /edit: replaces the text it is given
printf '#!/bin/sh\nprintf "edited by the editor\\n" >"$1"\n' >"$T/ed.sh"
chmod +x "$T/ed.sh"
RUN="cd $T && env XDG_DATA_HOME=$T/data TERM=screen-256color LANG=C.UTF-8 EDITOR=$T/ed.sh \
VISUAL= $KF -m $T/tiny.gguf -n 24 --seed 7"
$S new-session -d -s kf -x 100 -y 30 "$RUN; echo KF-EXIT=\$?; sleep 600"
$S set-option -g set-clipboard on # OSC 52 from the pane fills a tmux buffer
wait_for '^ready \|' 20; ok $? "starts to a ready prompt"

say 'alpha question'; ok $? "a first turn"
id1=$(q "select id from sessions")
[ -n "$id1" ] && [ "$(q "select count(*) from messages where session_id = $id1")" = 2 ]
ok $? "the turn is saved as one session with two messages"

# --- /copy, /export, /search -----------------------------------------------------------------
keys '/copy' Enter
wait_for 'copied the last reply'; ok $? "/copy says it copied"
reply=$(q "select text from messages where role = 'assistant' order by id desc limit 1")
[ -n "$reply" ] && [ "$($S show-buffer 2>/dev/null)" = "$reply" ]
ok $? "/copy sends exactly the last reply by OSC 52"

keys "/export json $T/out.json" Enter
wait_for "exported to $T/out.json"; ok $? "/export json FILE says where"
grep -q '"format": "kfchat-session"' "$T/out.json" && grep -q '"text": "alpha question"' "$T/out.json" \
    && [ "$(grep -c '"role": ' "$T/out.json")" -eq 2 ]
ok $? "the JSON export holds the session's two messages"
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$T/out.json"
    ok $? "the JSON export parses"
else
    n=$((n + 1)); echo "ok $n # SKIP no python3 to parse the JSON export"
fi
keys '/export md' Enter
wait_for "exported to kfchat-$id1.md"; ok $? "/export md without FILE names the file after the session"
grep -q '^## User' "$T/kfchat-$id1.md" && grep -q '^alpha question' "$T/kfchat-$id1.md" &&
    grep -q '^## Assistant' "$T/kfchat-$id1.md"
ok $? "the Markdown export is written to the working directory"
keys '/export pdf' Enter
wait_for 'usage: /export md\|json'; ok $? "/export of an unknown format shows the usage"

keys '/search alpha' Enter
wait_for 'Search: alpha'; ok $? "/search opens the results pane"
screen | grep -Eq "$id1 +- +\*alpha\* question"; ok $? "the hit shows its session and the match"
keys Escape
wait_gone 'Search: alpha'; ok $? "Esc closes the pane"
keys '/search zzqqxx' Enter
wait_for 'Search: zzqqxx .*no matches'; ok $? "a search without hits says so"
keys Escape
wait_gone 'Search: zzqqxx'

# --- settings: /temp, /policy, /budget keep the conversation ----------------------------------------
keys '/temp 0.5' Enter
wait_for 'temperature 0.5'; ok $? "/temp sets the temperature"
screen | grep -q '^  alpha question'; ok $? "/temp keeps the transcript"
keys '/temp hot' Enter
wait_for 'usage: /temp 0..10'; ok $? "/temp with a bad value shows the usage"
say 'beta question'
[ "$(q "select count(*) from sessions")" = 1 ] &&
    q "select sampler from messages where session_id = $id1 order by id desc limit 1" |
    grep -q '"temp":0.5,'
ok $? "the next reply goes on in the same session and records temp 0.5"

keys '/policy window' Enter
wait_for '^ready \| .*window'; ok $? "/policy switches the KV policy"
wait_for 're-processed 4 messages with the new settings'; ok $? "and re-processes the conversation"
screen | grep -q '^  alpha question' && screen | grep -q '^  beta question'
ok $? "/policy keeps the transcript"
keys '/policy bogus' Enter
wait_for 'unknown policy; one of'; ok $? "/policy with an unknown name lists the policies"
keys '/budget 48' Enter
wait_for '^ready \| .*window B=48'; ok $? "/budget sets the budget"
keys '/budget lots' Enter
wait_for 'kept the previous KV settings'; ok $? "/budget with a bad value says so"
screen | grep -q 'window B=48' && screen | grep -q '^  alpha question'
ok $? "and keeps the settings and the transcript"
say 'gamma question'
q "select kv_policy || ' ' || kv_budget || ' ' || session_id from messages order by id desc limit 1" |
    grep -qx "window 48 $id1"
ok $? "the next reply is saved in the same session with the new policy and budget"

# --- /edit, /regen, /rename, /fork ----------------------------------------------------------------
keys '/edit' Enter
wait_for '^  edited by the editor' 10 && wait_for '^ready \|' 20
ok $? "/edit opens \$EDITOR and sends the edited message"
wait_gone '^  gamma question'; ok $? "the edited message replaces the old one on screen"
[ "$(q "select count(*) from messages where role = 'user' and parent_id =
      (select parent_id from messages where text = 'gamma question')")" = 2 ]
ok $? "the edit is a sibling of the old message in the database"
keys '/edit inline words' Enter
wait_for '^  inline words' 10 && wait_for '^ready \|' 20
ok $? "/edit TEXT replaces the last message without an editor"
nreply() { q "select count(*) from messages where role = 'assistant' and parent_id =
              (select max(id) from messages where text = 'inline words')"; }
[ "$(nreply)" = 1 ]; ok $? "one reply to it"
keys '/regen' Enter
i=0; while [ $i -lt 100 ] && [ "$(nreply)" != 2 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(nreply)" = 2 ]; ok $? "/regen adds a second reply beside the first"
wait_for '^ready \|' 20
keys '/rename first-one' Enter
i=0; while [ $i -lt 50 ] && [ "$(q "select name from sessions where id = $id1")" != first-one ]; do
    sleep 0.1; i=$((i + 1)); done
[ "$(q "select name from sessions where id = $id1")" = first-one ]; ok $? "/rename names the session"
keys '/fork branch-b' Enter
wait_for 'forked: now in session [0-9]+'; ok $? "/fork says where it went"
idf=$(q "select id from sessions where name = 'branch-b'")
[ -n "$idf" ] && [ "$(q "select count(*) from messages where session_id = $idf")" = 6 ]
ok $? "the fork holds a copy of the current branch (6 messages)"
XDG_DATA_HOME="$T/data" "$KF" sessions 2>/dev/null | grep -q "^$idf .*branch-b"; ok $? "kfchat sessions lists the fork"

# --- /system, /new, /resume, /delete --------------------------------------------------------------
keys '/system You are terse.' Enter
wait_for 'system prompt set'; ok $? "/system says a new session starts with it"
wait_for '^  You are terse\.' && wait_gone '^  alpha question'
ok $? "the new session shows the system prompt and not the old transcript"
say 'delta question'
ids=$(q "select session_id from messages where text = 'delta question'")
[ -n "$ids" ] && [ "$ids" != "$id1" ] && [ "$ids" != "$idf" ] &&
    [ "$(q "select role || ':' || text from messages where session_id = $ids order by id limit 1")" \
      = "system:You are terse." ]
ok $? "its first message in the database is the system prompt"
keys '/new' Enter
wait_gone '^  delta question'; ok $? "/new clears the transcript"
say 'epsilon question'
[ "$(q "select count(*) from sessions")" = 4 ]; ok $? "and the next turn starts another session"
keys "/resume $id1" Enter
wait_for '^  alpha question' 20; ok $? "/resume ID brings the session back"
wait_gone '^  epsilon question'
before=$(q "select count(*) from messages where session_id = $id1")
say 'zeta question'
[ "$(q "select count(*) from messages where session_id = $id1")" = $((before + 2)) ]
ok $? "the next turn is added to the resumed session"
keys '/resume 99999' Enter
wait_for 'no session with id 99999'; ok $? "/resume of an unknown id says so"
screen | grep -q '^  zeta question'; ok $? "and stays in the session"

keys "/delete $idf" Enter
wait_for "delete session $idf and all its messages\\? type y"; ok $? "/delete asks first"
keys 'n' Enter
wait_for 'not deleted'; ok $? "anything but y keeps it"
[ "$(q "select count(*) from sessions where id = $idf")" = 1 ]; ok $? "the session is still there"
keys '/delete' Enter
wait_for "delete session $id1 and all"; ok $? "/delete without an id means the current session"
keys 'y' Enter
wait_for 'session deleted'; ok $? "y deletes it"
wait_gone '^  zeta question'; ok $? "the deleted session leaves the screen"
[ "$(q "select count(*) from sessions where id = $id1")" = 0 ] &&
    [ "$(q "select count(*) from messages where session_id = $id1")" = 0 ]
ok $? "the session and its messages are gone from the database"
keys '/quit' Enter
wait_for 'KF-EXIT=0'; ok $? "/quit leaves with status 0"

# --- a corrupt database: one clear line, nothing overwritten, the chat goes on ----------------------
mkdir -p "$T/bad/kfchat"
printf 'this is not a database, just some text that is long enough\n' >"$T/bad/kfchat/kfchat.db"
cp "$T/bad/kfchat/kfchat.db" "$T/before"
$S respawn-pane -k -t kf "$(echo "$RUN" | sed "s#XDG_DATA_HOME=$T/data#XDG_DATA_HOME=$T/bad#") \
--resume 3; echo KF-EXIT=\$?; sleep 600"
wait_for 'not a kfchat database' 20; ok $? "a corrupt database is named in one clear message"
# the message as one line (the transcript wraps it): the file, the problem, the consequence
screen | sed 's/^  //' | tr '\n' ' ' |
    grep -q "$T/bad/kfchat/kfchat.db: not a kfchat database (file is corrupt or not SQLite); this chat is not saved"
ok $? "which names the file and says the chat is not saved"
screen | grep -q 'resuming a session needs the session database'
ok $? "--resume without a database says why"
wait_for '^ready \|' 20
say 'unsaved question'; ok $? "the chat goes on without the database"
keys '/temp 0.3' Enter
wait_for 'temperature 0.3'
screen | grep -q '^  unsaved question'; ok $? "no store: /temp keeps the transcript"
say 'second unsaved'
screen | grep -q '^  unsaved question'; ok $? "no store: the next turn continues the conversation"
keys '/policy sink' Enter
wait_for 're-processed 4 messages with the new settings' 20
ok $? "no store: /policy re-processes the conversation"
screen | grep -q '^  unsaved question' && screen | grep -q '^  second unsaved'
ok $? "no store: /policy keeps the transcript"
keys '/resume 1' Enter
wait_for 'resuming a session needs the session database'
screen | grep -q '^  second unsaved'; ok $? "no store: a failed /resume keeps the conversation"
keys '/sessions' Enter
wait_for 'not a kfchat database'; ok $? "no store: /sessions names the problem"
keys Escape

# --- a 20x5 terminal ------------------------------------------------------------------------------
$S resize-window -t kf -x 20 -y 5
wait_for '^too small' ; ok $? "20x5: 'too small'"
keys 'small words' Enter
$S resize-window -t kf -x 40 -y 12
wait_for '^ready \| .*ctx' 20; ok $? "40x12: status line and prompt are back"
wait_for '^  small words' 20; ok $? "what was typed while too small was sent"
keys '/quit' Enter
wait_for 'KF-EXIT=0'; ok $? "/quit leaves with status 0"
cmp -s "$T/before" "$T/bad/kfchat/kfchat.db"; ok $? "the corrupt file is unchanged"

# --- multi-line input, bracketed paste, NO_COLOR, a crash signal ----------------------------------------
$S resize-window -t kf -x 100 -y 30
$S respawn-pane -k -t kf "export NO_COLOR=1; $RUN; echo KF-EXIT=\$?; sleep 600"
wait_for '^ready \|' 20
keys 'line one' C-j 'line two' Enter
wait_for '^assistant' && wait_for '^ready \|' 20
screen | grep -A1 '^  line one' | grep -q '^  line two'; ok $? "Ctrl-J makes a two-line message"
$S set-buffer "$(printf 'pasted one\npasted two')"
$S paste-buffer -p -t kf # bracketed, as a terminal pastes
wait_for '^  pasted two'
screen | grep -q '^assistant' && [ "$(screen | grep -c '^you')" -eq 1 ]
ok $? "a pasted newline does not send the message"
keys Enter
# the status line said "ready" already before Enter: wait for the second turn itself
for _ in $(seq 1 100); do [ "$(screen | grep -c '^you')" -ge 2 ] && break; sleep 0.2; done
wait_for '^ready \|' 20 && screen | grep -A1 '^  pasted one' | grep -q '^  pasted two' &&
    [ "$(screen | grep -c '^you')" -eq 2 ]
ok $? "Enter sends the pasted lines as one message"
keys F2
wait_for 'Key tokens: all layers'
sgr=$($S capture-pane -e -p -t kf | grep -o "$(printf '\033')\[[0-9;]*m" | sort -u | tr '\n' ' ')
echo "$sgr" | grep -q '7m' && ! echo "$sgr" | grep -Eq '\[([0-9;]*;)?(3[0-7]|4[0-7]|38|48)(;|m)'
ok $? "NO_COLOR: attributes only, no colours ($sgr)"
pid=$(pgrep -P "$($S display -p -t kf '#{pane_pid}')" kfchat 2>/dev/null | head -n 1)
[ -n "$pid" ] && kill -SEGV "$pid"
wait_for 'KF-EXIT=139'; ok $? "a crash signal ends kfchat with the signal's status"
[ "$($S display -p -t kf '#{alternate_on}')" = 0 ]; ok $? "and the terminal is restored"

# --- Ctrl-Z and fg under a job-control shell --------------------------------------------------------
if command -v bash >/dev/null 2>&1; then
    $S resize-window -t kf -x 100 -y 30
    $S respawn-pane -k -t kf "env PS1='$ ' bash --norc --noprofile -i"
    sleep 0.3
    keys "$RUN" Enter
    wait_for '^ready \|' 20
    keys C-z
    wait_for 'Stopped'; ok $? "Ctrl-Z suspends kfchat"
    [ "$($S display -p -t kf '#{alternate_on}')" = 0 ]; ok $? "the terminal is restored while stopped"
    keys 'fg' Enter
    wait_for '^ready \|' 10; ok $? "fg brings the UI back"
    say 'after fg'; ok $? "and the chat goes on"
    keys '/quit' Enter
    wait_for '^\$ ?$'
    [ "$($S display -p -t kf '#{alternate_on}')" = 0 ]; ok $? "the terminal is restored at exit"
else
    for t in 1 2 3 4 5; do n=$((n + 1)); echo "ok $n # SKIP no bash for job control"; done
fi

# --- a full context: the note says what to do, and /budget lets the chat go on ----------------------
"$MK" --arch llama --vocab "$VOCAB" --embd 64 --layers 2 --heads 4 --kv-heads 2 --ff 128 \
    --type q8_0 --ctx 8192 -o "$T/long.gguf" >/dev/null 2>&1
$S resize-window -t kf -x 150 -y 30
$S respawn-pane -k -t kf "cd $T && env XDG_DATA_HOME=$T/data2 TERM=screen-256color LANG=C.UTF-8 \
$KF -m $T/long.gguf -n 5000 --seed 7 --temp 0; echo KF-EXIT=\$?; sleep 600"
wait_for '^ready \|' 20
keys 'fill it' Enter
wait_for 'context full \(4096 tokens\): /budget N keeps N tokens a layer and lets this chat go on to 8192' 60
ok $? "a reply that fills the context says that /budget N would let the chat go on"
keys '/budget 64' Enter
wait_for 're-processed 2 messages' 60 && wait_for 'keyformer B=64 .* ctx [0-9]+/8192' 10
ok $? "/budget 64 re-processes the conversation in a context of the training length"
keys 'and more' Enter
wait_for 'context full \(8192 tokens\): /new starts another chat' 60
ok $? "the chat went on to the training context, where only /new is left"

echo "1..$n"
[ $fails -eq 0 ]
