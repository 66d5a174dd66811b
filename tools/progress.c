/* progress.c - the training progress bar, on stderr when it is a terminal:
 *
 *   epoch 3/10 [#########...........] 120/235  loss 0.5123  41.2k samples/s  ETA 0:03
 *
 * redrawn in place with "\r" at most ten times a second (and on the last batch), and
 * erased before the epoch's summary line is printed. When stderr is not a terminal
 * nothing is drawn: the caller prints one plain line per epoch.
 */
#include "cli.h"

#include <string.h>

#define BAR_WIDTH 24
#define REDRAW_S 0.1

void cli_progress_init(cli_progress *p, bool tty) {
    memset(p, 0, sizeof *p);
    p->tty = tty;
}

void cli_progress_start(cli_progress *p, int epoch, int epochs, int64_t batches) {
    p->epoch = epoch;
    p->epochs = epochs;
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

void cli_progress_update(cli_progress *p, int64_t done, int64_t samples, double loss) {
    if (!p->tty) return;
    double now = cli_now();
    if (done < p->batches && now - p->last_draw < REDRAW_S) return;
    p->last_draw = now;
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)samples / elapsed : 0;
    double eta = done > 0 ? elapsed * (double)(p->batches - done) / (double)done : 0;
    int filled = p->batches > 0 ? (int)(BAR_WIDTH * done / p->batches) : BAR_WIDTH;
    char bar[BAR_WIDTH + 1], speed[32];
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    human(speed, sizeof speed, rate);
    long e = (long)(eta + 0.5);
    char line[256];
    int len = snprintf(line, sizeof line,
                       "epoch %d/%d [%s] %lld/%lld  loss %.4f  %s samples/s  ETA %ld:%02ld", p->epoch,
                       p->epochs, bar, (long long)done, (long long)p->batches, loss, speed, e / 60, e % 60);
    if (len < 0) return;
    if (len >= (int)sizeof line) len = (int)sizeof line - 1;
    /* Pad with spaces over a longer previous line (no terminal escape codes needed). */
    fprintf(stderr, "\r%s%*s", line, p->drawn > len ? p->drawn - len : 0, "");
    fflush(stderr);
    p->drawn = len;
}

void cli_progress_clear(cli_progress *p) {
    if (!p->tty || !p->drawn) return;
    fprintf(stderr, "\r%*s\r", p->drawn, "");
    fflush(stderr);
    p->drawn = 0;
}
