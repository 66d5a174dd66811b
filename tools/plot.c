/* plot.c - the training history as CSV and as an SVG chart.
 *
 * The chart follows the plots of D2L's train_ch3 (d2l.Animator): x = epoch from 1 to the
 * last one, one y axis shared by train loss (solid blue), train acc (dashed magenta), test
 * loss (dotted orange) and test acc (dash-dot green), a grid, ticks at "nice" steps and a legend. It is hand-written
 * SVG 1.1: a browser shows it, and so does any image viewer that reads SVG.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- CSV ------------------------------------------------------------------------------- */

void cli_history_csv(cli_buf *b, const cli_epoch *h, int n, bool header, bool regression) {
    if (regression) {
        if (header) cli_buf_printf(b, "epoch,train_loss,test_loss,test_rmse,test_mae,lr,seconds\n");
        for (int i = 0; i < n; i++)
            cli_buf_printf(b, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", h[i].epoch, h[i].train_loss,
                           h[i].test_loss, h[i].test_rmse, h[i].test_mae, h[i].lr, h[i].seconds);
        return;
    }
    if (header) cli_buf_printf(b, "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds\n");
    for (int i = 0; i < n; i++)
        cli_buf_printf(b, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", h[i].epoch, h[i].train_loss, h[i].train_acc,
                       h[i].test_loss, h[i].test_acc, h[i].lr, h[i].seconds);
}

int cli_history_parse(const char *s, cli_epoch *h, int max, bool regression) {
    int n = 0;
    while (s && *s) {
        if (n >= max) return -1;
        cli_epoch e = {0};
        int used = 0;
        if (regression) {
            if (sscanf(s, "%d,%lf,%lf,%lf,%lf,%lf,%lf%n", &e.epoch, &e.train_loss, &e.test_loss, &e.test_rmse,
                       &e.test_mae, &e.lr, &e.seconds, &used) != 7)
                return -1;
            e.train_acc = e.test_acc = NAN; /* (no accuracy: the plot leaves it out) */
        } else if (sscanf(s, "%d,%lf,%lf,%lf,%lf,%lf,%lf%n", &e.epoch, &e.train_loss, &e.train_acc,
                          &e.test_loss, &e.test_acc, &e.lr, &e.seconds, &used) != 7) {
            used = 0; /* a row without the lr column */
            e.lr = NAN;
            if (sscanf(s, "%d,%lf,%lf,%lf,%lf,%lf%n", &e.epoch, &e.train_loss, &e.train_acc, &e.test_loss,
                       &e.test_acc, &e.seconds, &used) != 6 ||
                (s[used] != '\n' && s[used] != '\r' && s[used] != '\0'))
                return -1;
        }
        h[n++] = e;
        s += used;
        while (*s == '\n' || *s == '\r') s++;
    }
    return n;
}

/* ---- SVG ------------------------------------------------------------------------------- */

#define W 480.0
#define H 320.0
#define LEFT 56.0
#define RIGHT 16.0
#define TOP 30.0
#define BOTTOM 44.0

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks. */
static double nice_step(double range, int target) {
    double raw = range / target, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/* Escapes &, < and > for SVG text. */
static void text(cli_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '&') cli_buf_printf(b, "&amp;");
        else if (*s == '<') cli_buf_printf(b, "&lt;");
        else if (*s == '>') cli_buf_printf(b, "&gt;");
        else cli_buf_printf(b, "%c", *s);
    }
}

typedef struct series {
    const char *label, *color, *dash;
    size_t offset; /* of the double in cli_epoch */
} series;

static double value(const cli_epoch *e, size_t offset) {
    double v;
    memcpy(&v, (const char *)e + offset, sizeof v);
    return v;
}

void cli_plot_svg(cli_buf *b, const cli_epoch *h, int n, const char *title) {
    static const series S[] = {
        {"train loss", "#1f77b4", NULL, offsetof(cli_epoch, train_loss)},
        {"train acc", "#bf00bf", "6,4", offsetof(cli_epoch, train_acc)},
        {"test loss", "#ff7f0e", "2,3", offsetof(cli_epoch, test_loss)},
        {"test acc", "#008000", "8,3,2,3", offsetof(cli_epoch, test_acc)},
    };
    enum { NS = sizeof S / sizeof S[0], LEGEND_H = 7 + 17 * NS };
    /* y range: [0, 1] widened to hold every value, in whole steps */
    double lo = 0, hi = 1;
    for (int i = 0; i < n; i++)
        for (int s = 0; s < NS; s++) {
            double v = value(&h[i], S[s].offset);
            if (isfinite(v) && v > hi) hi = v;
            if (isfinite(v) && v < lo) lo = v;
        }
    double ystep = nice_step(hi - lo, 5);
    lo = floor(lo / ystep) * ystep;
    hi = ceil(hi / ystep - 1e-9) * ystep;
    double x0 = n ? h[0].epoch : 1, x1 = n ? h[n - 1].epoch : 1;
    if (x1 <= x0) x1 = x0 + 1;
    double xstep = x1 - x0 <= 10 ? 1 : nice_step(x1 - x0, 8);
    const double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
#define PX(x) (LEFT + ((x)-x0) / (x1 - x0) * pw)
#define PY(y) (TOP + (hi - (y)) / (hi - lo) * ph)

    cli_buf_printf(b,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                   "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, "
                   "sans-serif\" font-size=\"11\">\n"
                   "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                   W, H, W, H);
    cli_buf_printf(b, "<text x=\"%.1f\" y=\"18\" text-anchor=\"middle\" font-size=\"12\">", LEFT + pw / 2);
    text(b, title);
    cli_buf_printf(b, "</text>\n<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n");
    /* grid */
    for (double y = lo; y <= hi + ystep * 1e-6; y += ystep)
        cli_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", LEFT, PY(y), LEFT + pw,
                       PY(y));
    for (double x = x0; x <= x1 + 1e-9; x += xstep)
        cli_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(x), TOP, PX(x),
                       TOP + ph);
    cli_buf_printf(b, "</g>\n");
    /* axes, ticks and tick labels */
    cli_buf_printf(b,
                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                   "stroke=\"black\"/>\n<g stroke=\"black\">\n",
                   LEFT, TOP, pw, ph);
    for (double y = lo; y <= hi + ystep * 1e-6; y += ystep)
        cli_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", LEFT - 4, PY(y), LEFT,
                       PY(y));
    for (double x = x0; x <= x1 + 1e-9; x += xstep)
        cli_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(x), TOP + ph, PX(x),
                       TOP + ph + 4);
    cli_buf_printf(b, "</g>\n<g text-anchor=\"end\">\n");
    int ydigits = ystep >= 1 ? 0 : ystep >= 0.1 - 1e-12 ? 1 : 2;
    for (double y = lo; y <= hi + ystep * 1e-6; y += ystep)
        cli_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">%.*f</text>\n", LEFT - 7, PY(y) + 4, ydigits,
                       fabs(y) < 1e-12 ? 0.0 : y);
    cli_buf_printf(b, "</g>\n<g text-anchor=\"middle\">\n");
    for (double x = x0; x <= x1 + 1e-9; x += xstep)
        cli_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">%.0f</text>\n", PX(x), TOP + ph + 16, x);
    cli_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">epoch</text>\n</g>\n", LEFT + pw / 2,
                   H - 8);
    /* the curves (with a dot per epoch, so that a single epoch still shows) */
    for (int s = 0; s < NS; s++) {
        cli_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s%s%s points=\"",
                       S[s].color, S[s].dash ? " stroke-dasharray=\"" : "", S[s].dash ? S[s].dash : "",
                       S[s].dash ? "\"" : "");
        for (int i = 0; i < n; i++) {
            double v = value(&h[i], S[s].offset);
            if (isfinite(v)) cli_buf_printf(b, "%s%.1f,%.1f", i ? " " : "", PX(h[i].epoch), PY(v));
        }
        cli_buf_printf(b, "\"/>\n<g fill=\"%s\">", S[s].color);
        for (int i = 0; i < n; i++) {
            double v = value(&h[i], S[s].offset);
            if (isfinite(v))
                cli_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\"/>", PX(h[i].epoch), PY(v));
        }
        cli_buf_printf(b, "</g>\n");
    }
    /* legend: the corner or side (like matplotlib's loc="best") that covers the fewest
     * points sampled along the curves */
    static const double at[6][2] = {{1, 0.5}, {1, 1}, {1, 0}, {0, 0.5}, {0, 1}, {0, 0}};
    double lx = 0, ly = 0;
    int best = -1;
    for (int c = 0; c < 6; c++) {
        double x = at[c][0] ? LEFT + pw - 108 : LEFT + 8;
        double y = at[c][1] == 1   ? TOP + ph - 8 - LEGEND_H
                   : at[c][1] == 0 ? TOP + 8
                                   : TOP + ph / 2 - LEGEND_H / 2;
        int covered = 0;
        for (int s = 0; s < NS; s++)
            for (int i = 0; i + 1 < n; i++)
                for (int k = 0; k <= 16; k++) {
                    double v0 = value(&h[i], S[s].offset), v1 = value(&h[i + 1], S[s].offset);
                    double px = PX(h[i].epoch + (h[i + 1].epoch - h[i].epoch) * k / 16.0);
                    double py = PY(v0 + (v1 - v0) * k / 16.0);
                    covered += px >= x - 4 && px <= x + 104 && py >= y - 4 && py <= y + LEGEND_H + 4;
                }
        if (best < 0 || covered < best) {
            best = covered;
            lx = x;
            ly = y;
        }
    }
    cli_buf_printf(b,
                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"100\" height=\"%d\" fill=\"white\" "
                   "fill-opacity=\"0.85\" stroke=\"#bbbbbb\"/>\n",
                   lx, ly, (int)LEGEND_H);
    for (int s = 0; s < NS; s++) {
        double y = ly + 14 + 17 * s;
        cli_buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"1.8\"%s%s%s/>\n<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                       lx + 8, y, lx + 36, y, S[s].color, S[s].dash ? " stroke-dasharray=\"" : "",
                       S[s].dash ? S[s].dash : "", S[s].dash ? "\"" : "", lx + 42, y + 4, S[s].label);
    }
    cli_buf_printf(b, "</svg>\n");
#undef PX
#undef PY
}
