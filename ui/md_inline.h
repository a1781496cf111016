/*
 * md_inline.h — inline Markdown of one line, as per-byte attributes.
 *
 * Used by markdown.c: a byte is hidden (markup: the ** of strong, the backticks of a code span,
 * the backslash of an escape), part of a code span, and/or inside strong or emphasis.  Rules:
 * code spans first (a backtick run closed by a run of the same length; one padding space on
 * each side is hidden), backslash escapes of ASCII punctuation, then CommonMark's emphasis
 * algorithm on * and _ runs (left/right flanking, no intraword _, the rule of three, strong
 * taken before emphasis, delimiters inside a match become literal).  Link brackets and
 * strikethrough are not handled; unmatched markup stays visible.
 */
#ifndef KF_UI_MD_INLINE_H
#define KF_UI_MD_INLINE_H

#include <stddef.h>

#define MD_AT_HIDDEN  0x01u /* markup: not displayed */
#define MD_AT_CODE    0x02u /* inside a code span */
#define MD_AT_BOLD    0x04u /* inside **strong** */
#define MD_AT_EMPH    0x08u /* inside *emphasis* */
#define MD_AT_LITERAL 0x10u /* escaped or code: never a delimiter */

/* Fill attr[0..n) with MD_AT_* for the line s[0..n).  STATUS_OK or STATUS_NOMEM. */
int md_inline_scan(const char *s, size_t n, unsigned char *attr);

#endif
