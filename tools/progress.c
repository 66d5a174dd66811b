/* progress.c - the training progress bar, on stderr when it is a terminal:
 *
 *   epoch 3/10 [#########...........] 120/235  loss 0.5123  41.2k samples/s  ETA 0:03
 *
 * (`brick train-lm`: "steps 251-500/2000 [...] ... tokens/s", cli_progress_start_named)
 * and, while the test split is evaluated after the epoch, "epoch 3/10 evaluating ..."
 * (cli_progress_note);
 * redrawn in place with "\r" at most ten times a second (and on the last batch), and
 * erased before the epoch's summary line is printed. When stderr is not a terminal
 * nothing is drawn: the caller prints one plain line per epoch.
 *
 * The line fits the terminal's width (TIOCGWINSZ, read at every redraw so that a resized
 * window is followed; else $COLUMNS; else 80): the bar shrinks from 24 columns to 8, then
 * goes, and what still does not fit is cut, so that the line never wraps (a wrapped line
 * cannot be redrawn with "\r").
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define BAR_WIDTH 24
#define BAR_MIN 8
#define REDRAW_S 0.1

void cli_progress_init(cli_progress *p, bool tty) {
    memset(p, 0, sizeof *p);
    p->tty = tty;
}

void cli_progress_start(cli_progress *p, int epoch, int epochs, int64_t batches) {
    char head[72];
    snprintf(head, sizeof head, "epoch %d/%d", epoch, epochs);
    cli_progress_start_named(p, head, "samples", batches);
}

void cli_progress_start_named(cli_progress *p, const char *head, const char *unit, int64_t batches) {
    snprintf(p->head, sizeof p->head, "%s", head);
    p->unit = unit;
    p->batches = batches;
    p->start = cli_now();
    p->last_draw = 0;
}

/* "41.2k" for 41234. */
static void human(char *buf, size_t n, double x) {
    if (x >= 1e6) snprintf(buf, n, "%.1fM", x / 1e6);
    else if (x >= 1e4) snprintf(buf, n, "%.1fk", x / 1e3);
    else snprintf(buf, n, "%.0f", x);
}

/* Draws the line over the previous one, cut to cols - 1 characters (never wrapping). */
static void draw(cli_progress *p, int cols, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len < 0) return;
    if (len >= (int)sizeof line) len = (int)sizeof line - 1;
    if (len > cols - 1) len = cols > 1 ? cols - 1 : 0;
    line[len] = '\0';
    /* Pad with spaces over a longer previous line (no terminal escape codes needed). */
    fprintf(stderr, "\r%s%*s", line, p->drawn > len ? p->drawn - len : 0, "");
    fflush(stderr);
    p->drawn = len;
}

void cli_progress_update(cli_progress *p, int64_t done, int64_t samples, double loss) {
    if (!p->tty) return;
    double now = cli_now();
    if (done < p->batches && now - p->last_draw < REDRAW_S) return;
    p->last_draw = now;
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)samples / elapsed : 0;
    double eta = done > 0 ? elapsed * (double)(p->batches - done) / (double)done : 0;
    char speed[32];
    human(speed, sizeof speed, rate);
    long e = (long)(eta + 0.5);
    /* the line without its bar first: the bar gets what the terminal has left */
    char head[80], tail[160], bar[BAR_WIDTH + 4] = "";
    snprintf(head, sizeof head, "%s ", p->head);
    snprintf(tail, sizeof tail, "%lld/%lld  loss %.4f  %s %s/s  ETA %ld:%02ld", (long long)done,
             (long long)p->batches, loss, speed, p->unit, e / 60, e % 60);
    int cols = cli_terminal_columns(), room = cols - 1 - (int)strlen(head) - (int)strlen(tail) - 3;
    int width = room < BAR_WIDTH ? room : BAR_WIDTH;
    if (width >= BAR_MIN) {
        int filled = p->batches > 0 ? (int)(width * done / p->batches) : width;
        bar[0] = '[';
        for (int i = 0; i < width; i++) bar[1 + i] = i < filled ? '#' : '.';
        bar[width + 1] = ']';
        bar[width + 2] = ' ';
        bar[width + 3] = '\0';
    }
    draw(p, cols, "%s%s%s", head, bar, tail);
}

void cli_progress_note(cli_progress *p, const char *what) {
    if (p->tty) draw(p, cli_terminal_columns(), "%s %s", p->head, what);
}

void cli_progress_clear(cli_progress *p) {
    if (!p->tty || !p->drawn) return;
    fprintf(stderr, "\r%*s\r", p->drawn, "");
    fflush(stderr);
    p->drawn = 0;
}

int cli_terminal_columns(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int64_t n;
    if (c && cli_parse_i64(c, &n) && n > 0 && n < 10000) return (int)n;
    return 80;
}
