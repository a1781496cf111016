/*
 * layout.c — screen rectangles from the terminal size, and fitting the status line (layout.h).
 *
 * The computation is a fixed sequence of decisions, each with a floor, so that shrinking the
 * terminal gives things up in a predictable order: first the panel (the bottom panel needs
 * height, the right panel width), then input rows beyond what leaves the transcript its
 * minimum, then — below the minimum size — everything but the message.
 */
#include "config.h"
#include "layout.h"

#include <stdio.h>
#include <string.h>

#include "wrap.h"

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static struct ui_rect rect(int y, int x, int h, int w)
{
    return (struct ui_rect){y, x, h < 0 ? 0 : h, w < 0 ? 0 : w};
}

/* Place the key-token panel, taking its room from the transcript. */
static void layout_panel(struct layout *out, int lines, int cols, int above)
{
    if (cols >= LAYOUT_PANEL_RIGHT_COLS) {
        /* about 30% of the width: room for "L31 ██████▌ 100%" and the budget line */
        int pw = clampi(cols * 3 / 10, 26, 40);
        out->panel = rect(0, cols - pw, above, pw);
        out->transcript.w = cols - pw;
        out->panel_kind = LAYOUT_PANEL_RIGHT;
        return;
    }
    /* Narrow: below the transcript.  Whether it exists depends on the terminal height only,
     * not on the input's rows, so that typing a multiline message does not make it flicker. */
    int ph = clampi(above / 3, 5, 10);
    if (ph > above - 6)
        ph = above - 6;
    if (lines < LAYOUT_PANEL_BOTTOM_LINES || ph < 5) {
        out->panel_hidden = 1;
        return;
    }
    out->transcript.h = above - ph;
    out->panel = rect(above - ph, 0, ph, cols);
    out->panel_kind = LAYOUT_PANEL_BOTTOM;
}

void layout_compute(const struct layout_req *req, struct layout *out)
{
    int lines = req->lines < 0 ? 0 : req->lines, cols = req->cols < 0 ? 0 : req->cols;

    memset(out, 0, sizeof(*out));
    out->status_level = cols >= 100  ? LAYOUT_STATUS_FULL
                        : cols >= 60 ? LAYOUT_STATUS_MEDIUM
                                     : LAYOUT_STATUS_SHORT;
    if (cols < LAYOUT_MIN_COLS || lines < LAYOUT_MIN_LINES) {
        out->too_small = 1;
        out->message = rect(0, 0, lines, cols);
        out->panel_hidden = req->kv_panel != 0;
        return;
    }

    /* input: as many rows as its content, leaving the transcript its minimum */
    int in_rows = clampi(req->input_lines, 1, LAYOUT_INPUT_MAX);
    in_rows = clampi(in_rows, 1, lines - 1 - LAYOUT_TRANSCRIPT_MIN);
    int above = lines - 1 - in_rows; /* rows above the status line */

    out->input = rect(lines - in_rows, 0, in_rows, cols);
    out->status = rect(above, 0, 1, cols);
    out->transcript = rect(0, 0, above, cols);
    if (req->kv_panel)
        layout_panel(out, lines, cols, above);
    if (req->help) {
        int w = clampi(cols - 4, 1, 72), h = clampi(lines - 2, 1, 22);
        out->help = rect((lines - h) / 2, (cols - w) / 2, h, w);
    }
}

const char *layout_too_small_text(int cols, int lines, char *buf, size_t n)
{
    char cand[3][96];

    if (n == 0)
        return buf;
    snprintf(cand[0], sizeof(cand[0]), "terminal too small: %dx%d, need %dx%d", cols, lines,
             LAYOUT_MIN_COLS, LAYOUT_MIN_LINES);
    snprintf(cand[1], sizeof(cand[1]), "too small: need %dx%d", LAYOUT_MIN_COLS, LAYOUT_MIN_LINES);
    snprintf(cand[2], sizeof(cand[2]), "too small");
    buf[0] = '\0';
    for (int i = 0; i < 3; i++)
        if ((int)strlen(cand[i]) <= cols) {
            snprintf(buf, n, "%s", cand[i]);
            break;
        }
    if (!buf[0] && cols >= 1)
        snprintf(buf, n, "!");
    return buf;
}

static int seg_width(const struct layout_seg *s)
{
    return s->text ? wrap_str_width(s->text, strlen(s->text), 0) : 0;
}

int layout_status_fit(const struct layout_seg *segs, int n, const char *sep, int width, int ascii,
                      char *out, size_t outcap, unsigned char *keep_out)
{
    unsigned char keep[64];
    int sepw = wrap_str_width(sep, strlen(sep), 0), total = 0, shown = 0;
    size_t o = 0;

    if (n > 64)
        n = 64;
    if (width < 0)
        width = 0;
    for (int i = 0; i < n; i++) {
        keep[i] = segs[i].text && segs[i].text[0];
        if (keep[i]) {
            total += seg_width(&segs[i]) + (shown ? sepw : 0);
            shown++;
        }
    }
    while (total > width) {
        int drop = -1;
        for (int i = 0; i < n; i++)
            if (keep[i] && segs[i].prio > 0 && (drop < 0 || segs[i].prio >= segs[drop].prio))
                drop = i;
        if (drop < 0)
            break;
        keep[drop] = 0;
        shown--;
        total -= seg_width(&segs[drop]) + (shown ? sepw : 0);
    }

    /* build the line, cutting it if even the essential segments do not fit */
    const char *ell = ascii ? "~" : "\xE2\x80\xA6";
    int col = 0, first = 1;
    if (outcap == 0)
        return 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        const char *parts[2] = {first ? "" : sep, segs[i].text};
        first = 0;
        for (int p = 0; p < 2; p++) {
            size_t len = strlen(parts[p]);
            int used, room = total > width ? width - 1 - col : width - col;
            size_t fit = wrap_fit(parts[p], len, 0, room < 0 ? 0 : room, &used);
            if (fit > outcap - 1 - o)
                fit = 0;
            memcpy(out + o, parts[p], fit);
            o += fit;
            col += used;
            if (fit < len)
                goto cut;
        }
    }
    if (keep_out)
        memcpy(keep_out, keep, (size_t)n);
    out[o] = '\0';
    return col;
cut:
    if (width >= 1 && o + strlen(ell) < outcap) {
        memcpy(out + o, ell, strlen(ell));
        o += strlen(ell);
        col += 1;
    }
    if (keep_out)
        memcpy(keep_out, keep, (size_t)n);
    out[o] = '\0';
    return col;
}
