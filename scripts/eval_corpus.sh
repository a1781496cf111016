#!/bin/sh
# eval_corpus.sh — fetch the text corpus of `kfchat eval` (docs/eval.md) and extract its
# documents as plain UTF-8 files into OUTDIR, deterministically.
#
# Corpus: ten HOWTO, tutorial and FAQ documents of the Python 3.11 documentation, as Debian ships
# their reStructuredText sources in the package python3.11-doc (PSF License; html/_sources/).
# Each is a separate work on its own subject (most by different authors), long English prose
# with some code, and over 4,700 SmolLM2 tokens, so the first 3,000 tokens are a real document
# opening.  The files are copied byte for byte (no markup stripping): the script is the source
# of truth, and MANIFEST records each file's origin and SHA-256.
#
# The .deb is downloaded once into a cache directory (not the repository):
#   ${KF_CORPUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kfchat/corpus}
# KF_CORPUS_DEB=/path/to/python3.11-doc_*.deb uses a package file you already have.
#
# usage: scripts/eval_corpus.sh OUTDIR
set -eu

PKG=python3.11-doc
VER=3.11.2-6+deb12u9          # the version docs/eval.md was measured with
SRC=usr/share/doc/python3.11/html/_sources

# name in OUTDIR | path under $SRC | SHA-256 of the file in $PKG $VER
DOCS='
01-unicode-howto.txt|howto/unicode.rst.txt|9aea515cc951f285da889d6ddf7b55302d4e51de5e14993d55ddafe5fcc0f297
02-functional-howto.txt|howto/functional.rst.txt|9afec46763d97ed0ee0a3f75bca92d79f6b7aa2b65da4755799f2fbb0768f826
03-logging-howto.txt|howto/logging.rst.txt|be75e5a585ae6b041102afa6fc3c7e39778e380cca045ef198717e714c825d47
04-descriptor-howto.txt|howto/descriptor.rst.txt|c68a3307f481aea18cb424ce007372fd5da598c5c9990785ea264198a59b10a3
05-sockets-howto.txt|howto/sockets.rst.txt|e9f69766062b95b2f0d842e9a8f46d7c18bb867de6c422576e3e21d6cce8b4a9
06-curses-howto.txt|howto/curses.rst.txt|b1caec511e7b2be8c1a0e9f23fb1b6b207362fd48a5c3b68388713d210c6bd9f
07-pyporting-howto.txt|howto/pyporting.rst.txt|cc0d47c17192daa95dd56fcf246cd08272767a349ab70853ced8f47080984efc
08-urllib2-howto.txt|howto/urllib2.rst.txt|fd7e6d81bcf8615eaaed79e5e7fca8fcf55535c1e5b39b8b85c15c64758eb099
09-design-faq.txt|faq/design.rst.txt|80227bd4d6acf61382886b874af33d7d04350f935fb4806b2fad09a129d0ec38
10-classes-tutorial.txt|tutorial/classes.rst.txt|fcc51a37151c81dca21429e80ea9df8f765d5716c545fe48393ce540c5102011
'

die() { echo "eval_corpus.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$1
CACHE=${KF_CORPUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kfchat/corpus}
command -v dpkg-deb >/dev/null || die "dpkg-deb is needed (Debian's dpkg package)"
mkdir -p "$CACHE" "$OUT"

deb=${KF_CORPUS_DEB:-}
if [ -z "$deb" ]; then
    deb=$(ls "$CACHE"/${PKG}_*.deb 2>/dev/null | head -n 1 || true)
fi
if [ -z "$deb" ]; then
    command -v apt-get >/dev/null || die "apt-get is needed to download $PKG (or set KF_CORPUS_DEB)"
    # the measured version first; a newer point release of the same docs is the fallback
    if ! (cd "$CACHE" && apt-get download "$PKG=$VER" >/dev/null 2>&1); then
        echo "eval_corpus.sh: $PKG $VER is not available; taking the current version" >&2
        (cd "$CACHE" && apt-get download "$PKG" >/dev/null 2>&1) ||
            die "cannot download $PKG (run 'apt-get update' first?)"
    fi
    deb=$(ls "$CACHE"/${PKG}_*.deb | head -n 1)
fi
[ -f "$deb" ] || die "no package file $deb"
ver=$(dpkg-deb -f "$deb" Version)
[ "$(dpkg-deb -f "$deb" Package)" = "$PKG" ] || die "$deb is not $PKG"

manifest="$OUT/MANIFEST"
{
    echo "# kfchat eval corpus: $PKG $ver ($(basename "$deb")), files under /$SRC"
    echo "# name  source  sha256  bytes"
} >"$manifest"
echo "$DOCS" | while IFS='|' read -r name path want; do
    [ -n "$name" ] || continue
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "./$SRC/$path" >"$OUT/$name" ||
        die "$path is missing from $deb"
    [ -s "$OUT/$name" ] || die "$path is empty in $deb"
    sum=$(sha256sum "$OUT/$name" | cut -d' ' -f1)
    if [ "$want" != "-" ] && [ "$sum" != "$want" ]; then
        echo "eval_corpus.sh: note: $path differs from the measured version ($ver)" >&2
    fi
    echo "$name  $path  $sum  $(wc -c <"$OUT/$name")" >>"$manifest"
done
echo "eval_corpus.sh: $(grep -vc '^#' "$manifest") documents from $PKG $ver in $OUT" >&2
