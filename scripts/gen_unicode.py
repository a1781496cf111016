#!/usr/bin/env python3
# gen_unicode.py — write engine/unicode_data.h, the code point tables behind kfchat's tokenizer.
#
# Copyright (C) kfchat authors.  GPL-3.0-or-later.
#
# Usage: python3 scripts/gen_unicode.py > engine/unicode_data.h
#
# The BPE pre-tokenizers (engine/unicode.c) need, for every code point, the class that regex
# \p{L} / \p{N} / \p{P} tests and whether \s matches it.  llama.cpp derives the same facts from
# UnicodeData.txt (src/unicode-data.cpp); we take them from Python's unicodedata module, so the
# table follows the Unicode version of the Python that ran this script (printed in the header).
#
#   class   general categories         regex
#   0       Cn (unassigned)            -        (llama.cpp's "undefined")
#   1       Lu Ll Lt Lm Lo             \p{L}
#   2       Nd Nl No                   \p{N}
#   3       Pc Pd Ps Pe Pi Pf Po       \p{P}
#   4       Sm Sc Sk So                \p{S}
#   5       Mn Mc Me                   \p{M}
#   6       Zs Zl Zp                   \p{Z}
#   7       Cc Cf Cs Co                \p{C}
#   bit 3   White_Space property       \s       (what Python's `regex` module and ICU use; it
#                                                 differs from str.isspace() by U+001C..U+001F)
#
# No case mapping is emitted: the only case-insensitive matching any supported pre-tokenizer
# does is of the ASCII contractions 's 't 're 've 'm 'll 'd, and no non-ASCII code point
# lowercases to one of those letters.
#
# The table is run-length encoded: one uint32 per run of code points with equal flags,
# (first_code_point << 8) | flags, sorted, so a lookup is a binary search.
#
# It also emits the letter class of the deepseek-llm pre-tokenizer, a literal character class in
# llama.cpp's regex.  It is listed here by code point because copying the literal through
# editors and terminals is not safe: several of its characters (U+1F7D, U+1FBE, U+1FD3, U+1FDB,
# U+2126, U+212A) have canonical singleton decompositions and silently turn into other
# characters under NFC normalization.

import sys
import unicodedata

MAX_CP = 0x110000

CLASS_OF = {
    'Cn': 0,
    'Lu': 1, 'Ll': 1, 'Lt': 1, 'Lm': 1, 'Lo': 1,
    'Nd': 2, 'Nl': 2, 'No': 2,
    'Pc': 3, 'Pd': 3, 'Ps': 3, 'Pe': 3, 'Pi': 3, 'Pf': 3, 'Po': 3,
    'Sm': 4, 'Sc': 4, 'Sk': 4, 'So': 4,
    'Mn': 5, 'Mc': 5, 'Me': 5,
    'Zs': 6, 'Zl': 6, 'Zp': 6,
    'Cc': 7, 'Cf': 7, 'Cs': 7, 'Co': 7,
}
WHITESPACE_BIT = 0x08

# PropList.txt White_Space, unchanged since Unicode 6.3.
WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680} | set(range(0x2000, 0x200B)) \
    | {0x2028, 0x2029, 0x202F, 0x205F, 0x3000}

# deepseek-llm: \s?[A-Za-zµÀ-ÖØ-öø-ƺ...𞤀-𞥃]+ (llama.cpp src/llama-vocab.cpp), as inclusive ranges.
DSK_LETTER = [
    (0x0041, 0x005A), (0x0061, 0x007A), (0x00B5, 0x00B5), (0x00C0, 0x00D6), (0x00D8, 0x00F6),
    (0x00F8, 0x01BA), (0x01BC, 0x01BF), (0x01C4, 0x0293), (0x0295, 0x02AF), (0x0370, 0x0373),
    (0x0376, 0x0377), (0x037B, 0x037D), (0x037F, 0x037F), (0x0386, 0x0386), (0x0388, 0x038A),
    (0x038C, 0x038C), (0x038E, 0x03A1), (0x03A3, 0x03F5), (0x03F7, 0x0481), (0x048A, 0x052F),
    (0x0531, 0x0556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15),
    (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59),
    (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC),
    (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB),
    (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102), (0x2107, 0x2107),
    (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126),
    (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F),
    (0x2145, 0x2149), (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4),
    (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3), (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F),
    (0xA771, 0xA787), (0xA78B, 0xA78E), (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17),
    (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10400, 0x1044F), (0x104B0, 0x104D3),
    (0x104D8, 0x104FB), (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF),
    (0x1E900, 0x1E943),
]


def flags_of(cp):
    f = CLASS_OF[unicodedata.category(chr(cp))]
    if cp in WHITE_SPACE:
        f |= WHITESPACE_BIT
    return f


def main():
    # sanity: White_Space is isspace() minus the four information separators
    iss = {cp for cp in range(MAX_CP) if chr(cp).isspace()}
    assert iss - set(range(0x1C, 0x20)) == WHITE_SPACE, sorted(iss ^ WHITE_SPACE)
    prev_hi = -1
    for lo, hi in DSK_LETTER:
        assert prev_hi < lo <= hi, hex(lo)
        prev_hi = hi

    runs = []
    prev = None
    for cp in range(MAX_CP):
        f = flags_of(cp)
        if f != prev:
            runs.append((cp, f))
            prev = f

    w = sys.stdout.write
    w("/*\n")
    w(" * unicode_data.h — GENERATED by scripts/gen_unicode.py from Python %s's unicodedata\n"
      % sys.version.split()[0])
    w(" * (Unicode %s).  Do not edit; rerun the script.  Included only by unicode.c.\n"
      % unicodedata.unidata_version)
    w(" *\n")
    w(" * unicode_runs: (first_code_point << 8) | flags for each run of equal flags, sorted;\n")
    w(" * flags = class (0 unassigned, 1 L, 2 N, 3 P, 4 S, 5 M, 6 Z, 7 C) | 0x08 if White_Space.\n")
    w(" * unicode_dsk_letter: inclusive ranges of deepseek-llm's pre-tokenizer letter class.\n")
    w(" */\n")
    w("#ifndef KF_UNICODE_DATA_H\n#define KF_UNICODE_DATA_H\n\n#include <stdint.h>\n\n")
    w("#define UNICODE_DATA_VERSION \"%s\"\n\n" % unicodedata.unidata_version)
    w("static const uint32_t unicode_runs[%d] = {\n" % len(runs))
    for i in range(0, len(runs), 6):
        w("   " + "".join(" 0x%08X," % ((cp << 8) | f) for cp, f in runs[i:i + 6]) + "\n")
    w("};\n\n")
    w("static const uint32_t unicode_dsk_letter[%d][2] = {\n" % len(DSK_LETTER))
    for i in range(0, len(DSK_LETTER), 4):
        w("   " + "".join(" {0x%05X, 0x%05X}," % r for r in DSK_LETTER[i:i + 4]) + "\n")
    w("};\n\n#endif\n")


if __name__ == "__main__":
    main()
