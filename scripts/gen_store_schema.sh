#!/bin/sh
# gen_store_schema.sh — embed data/schema.sql into data/store_schema.h as a C string.
# Usage: scripts/gen_store_schema.sh [SCHEMA.sql [OUT.h]]   (defaults: paths from the tree top)
# The header is committed, so building needs no generator; tests/test_store_files.c fails
# when the header no longer matches data/schema.sql.
set -eu
in=${1:-data/schema.sql}
out=${2:-data/store_schema.h}
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
{
    echo '/* store_schema.h — generated from data/schema.sql by scripts/gen_store_schema.sh; do not edit. */'
    echo '#ifndef KF_STORE_SCHEMA_H'
    echo '#define KF_STORE_SCHEMA_H'
    echo ''
    echo 'static const char store_schema_sql[] ='
    # Each line becomes "line\n"; backslashes and double quotes are escaped, tabs kept as \t.
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' -e 's/^/    "/' -e 's/$/\\n"/' "$in"
    echo '    ;'
    echo ''
    echo '#endif'
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
