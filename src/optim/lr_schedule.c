/* lr_schedule.c - per-step learning-rate schedules as torch.optim.lr_scheduler computes
 * them: LinearLR (warmup), LambdaLR, OneCycleLR, ReduceLROnPlateau.
 *
 * The first three are closed forms of the step number (torch's LinearLR multiplies the lr
 * by a ratio each step; its closed form, _get_closed_form_lr, is the one here, equal to
 * rounding), so a resumed run needs only the step count. OneCycleLR is torch's get_lr line
 * for line: its phases end at float(pct_start total_steps) - 1 (and 2 pct_start total_steps
 * - 2 with three phases) and total_steps - 1. ReduceLROnPlateau has state (best metric,
 * counters): bk_lr_plateau is that state as plain numbers.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

double bk_lr_linear(double base_lr, int64_t step, int64_t total_iters, double start_factor,
                    double end_factor) {
    if (step < 0 || total_iters < 1 || !(start_factor > 0 && start_factor <= 1) ||
        !(end_factor >= 0 && end_factor <= 1)) {
        bk_set_error(
            "lr_linear: needs step >= 0, total_iters >= 1, 0 < start_factor <= 1 and 0 <= end_factor "
            "<= 1, got step %" PRId64 ", total_iters %" PRId64 ", start_factor %g, end_factor %g",
            step, total_iters, start_factor, end_factor);
        return NAN;
    }
    double t = (double)(step < total_iters ? step : total_iters);
    return base_lr * (start_factor + (end_factor - start_factor) * t / (double)total_iters);
}

double bk_lr_lambda(double base_lr, int64_t step, double (*fn)(int64_t step, void *ud), void *ud) {
    if (!fn || step < 0) {
        bk_set_error("lr_lambda: %s", !fn ? "fn is NULL" : "step must be >= 0");
        return NAN;
    }
    double f = fn(step, ud);
    if (!isfinite(f)) {
        bk_set_error("lr_lambda: the factor of step %" PRId64 " is %g", step, f);
        return NAN;
    }
    return base_lr * f;
}

/* ---- OneCycleLR ---------------------------------------------------------------------------------- */

static double anneal(bk_anneal how, double start, double end, double pct) {
    if (how == BK_ANNEAL_LINEAR) return (end - start) * pct + start;
    return end + (start - end) / 2.0 * (cos(3.14159265358979323846 * pct) + 1);
}

double bk_lr_one_cycle(const bk_one_cycle_config *c, int64_t step, double *momentum) {
    if (!c) {
        bk_set_error("lr_one_cycle: config is NULL");
        return NAN;
    }
    if (c->total_steps < 1 || step < 0 || step > c->total_steps ||
        !(c->pct_start >= 0 && c->pct_start <= 1) || !(c->max_lr > 0) || !(c->div_factor > 0) ||
        !(c->final_div_factor > 0) || (unsigned)c->anneal >= BK_ANNEAL_COUNT) {
        bk_set_error(
            "lr_one_cycle: needs 0 <= step <= total_steps, total_steps >= 1, 0 <= pct_start <= 1, "
            "max_lr, div_factor, final_div_factor > 0 and anneal cos or linear; got step %" PRId64
            ", total_steps %" PRId64
            ", pct_start %g, max_lr %g, div_factor %g, final_div_factor %g, "
            "anneal %d",
            step, c->total_steps, c->pct_start, c->max_lr, c->div_factor, c->final_div_factor,
            (int)c->anneal);
        return NAN;
    }
    double initial = c->max_lr / c->div_factor, min_lr = initial / c->final_div_factor;
    double total = (double)c->total_steps, up = c->pct_start * total - 1;
    struct {
        double end, lr0, lr1, m0, m1;
    } phases[3] = {{up, initial, c->max_lr, c->max_momentum, c->base_momentum},
                   {total - 1, c->max_lr, min_lr, c->base_momentum, c->max_momentum}};
    int n = 2;
    if (c->three_phase) {
        phases[1].end = 2 * c->pct_start * total - 2;
        phases[1].lr1 = initial;
        phases[2].end = total - 1;
        phases[2].lr0 = initial;
        phases[2].lr1 = min_lr;
        phases[2].m0 = phases[2].m1 = c->max_momentum;
        n = 3;
    }
    double start = 0;
    for (int i = 0; i < n; i++) {
        if ((double)step <= phases[i].end || i == n - 1) {
            if (phases[i].end == start) { /* torch: ZeroDivisionError */
                bk_set_error("lr_one_cycle: phase %d has no steps (pct_start %g of total_steps %" PRId64 ")",
                             i + 1, c->pct_start, c->total_steps);
                return NAN;
            }
            double pct = ((double)step - start) / (phases[i].end - start);
            if (momentum) *momentum = anneal(c->anneal, phases[i].m0, phases[i].m1, pct);
            return anneal(c->anneal, phases[i].lr0, phases[i].lr1, pct);
        }
        start = phases[i].end;
    }
    return NAN; /* not reached: the last phase always answers */
}

/* ---- ReduceLROnPlateau --------------------------------------------------------------------------- */

int bk_lr_plateau_init(bk_lr_plateau *p) {
    if (!p) {
        bk_set_error("lr_plateau_init: p is NULL");
        return -1;
    }
    if (!(p->factor >= 0 && p->factor < 1) || p->patience < 0 || p->cooldown < 0 || !(p->threshold >= 0) ||
        !(p->min_lr >= 0) || !(p->eps >= 0)) {
        bk_set_error(
            "lr_plateau_init: needs 0 <= factor < 1 and patience, cooldown, threshold, min_lr, eps >= 0; "
            "got factor %g, patience %" PRId64 ", cooldown %" PRId64 ", threshold %g, min_lr %g, eps %g",
            p->factor, p->patience, p->cooldown, p->threshold, p->min_lr, p->eps);
        return -1;
    }
    p->best = p->mode_max ? -INFINITY : INFINITY;
    p->num_bad_epochs = p->cooldown_counter = p->last_epoch = 0;
    return 0;
}

static bool plateau_better(const bk_lr_plateau *p, double a) {
    if (!p->mode_max) return p->threshold_abs ? a < p->best - p->threshold : a < p->best * (1 - p->threshold);
    return p->threshold_abs ? a > p->best + p->threshold : a > p->best * (p->threshold + 1);
}

double bk_lr_plateau_step(bk_lr_plateau *p, double metric, double lr) {
    if (!p || !(lr >= 0)) {
        bk_set_error("lr_plateau_step: %s", !p ? "p is NULL" : "lr must be >= 0");
        return NAN;
    }
    p->last_epoch++;
    if (plateau_better(p, metric)) {
        p->best = metric;
        p->num_bad_epochs = 0;
    } else {
        p->num_bad_epochs++;
    }
    if (p->cooldown_counter > 0) { /* bad epochs in the cooldown do not count */
        p->cooldown_counter--;
        p->num_bad_epochs = 0;
    }
    if (p->num_bad_epochs > p->patience) {
        double cut = fmax(lr * p->factor, p->min_lr);
        if (lr - cut > p->eps) lr = cut;
        p->cooldown_counter = p->cooldown;
        p->num_bad_epochs = 0;
    }
    return lr;
}
