/* lm_train.c - `brick train-lm`: trains the character-level language model of cmd_lm.c.
 *
 * It reads a text file (bytes >= 128, '\r' and NUL are dropped, so the vocabulary is
 * ASCII), splits it 90/10 by position into train and validation, trains with AdamW on
 * random windows of --context characters (cosine learning-rate decay to a tenth; each step
 * is brick train's, cli_train_step: a NaN or infinite loss stops it before the backward),
 * and reports the validation loss in nats per character next to the add-one-smoothed bigram
 * baseline counted on the train split and evaluated on the same validation targets.
 *
 * The outer loop is brick train's (loop.c): a progress bar on a terminal (one bar per
 * --eval-every steps), Ctrl-C / SIGTERM finish the step, save the checkpoint and exit
 * 128 + signal, --resume continues bit for bit, a new run refuses to replace an earlier
 * one's files without --force. At every validation (every --eval-every steps and at the
 * end) it writes the model file, STEM.csv (a row per validation: the step, the train loss
 * since the row before, the validation and bigram losses, the lr, the seconds of training)
 * and STEM.ckpt.safetensors: the model, AdamW's state and
 * metadata "brick.format" = "brick-lm-checkpoint-1" with the model file's keys plus every
 * setting, the step, the window sampler's generator and the running sums of the printed
 * lines, so that a resumed run samples the same windows with the same lr and ends with a
 * model file byte-identical to an uninterrupted run's (same thread count).
 *
 * Exit statuses as every command: 0, 1 runtime failure, 2 usage error (one line).
 */
#define _XOPEN_SOURCE 700

#include "lm.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LM_EVAL_BATCH 32

static void help_train(FILE *f) {
    fprintf(f,
            "usage: brick train-lm [options]\n"
            "\n"
            "Trains a character-level language model (a decoder-only Transformer, or D2L's\n"
            "LSTM / GRU model) on a text file (90%% train / 10%% validation by position) and\n"
            "writes it to FILE. Prints the validation loss (nats/char) and the add-one bigram\n"
            "baseline on the same split.\n"
            "\n"
            "options:\n"
            "  --text FILE         the training text (default: brick's data/text/fortunes-sample.txt,\n"
            "                      in the source tree or installed under PREFIX/share/brick)\n"
            "  --arch ARCH         transformer, lstm or gru (default transformer)\n"
            "  --context N         context length in characters (default 64)\n"
            "  --d-model N         model width; the hidden size of an LSTM / GRU (default 64)\n"
            "  --layers N          Transformer or recurrent layers (default 2)\n"
            "  --heads N           attention heads, dividing --d-model (default 4; transformer)\n"
            "  --ff N              feed-forward width (default 256; transformer)\n"
            "  --positions KIND    learned or sinusoidal (default learned; transformer)\n"
            "  --steps N           optimizer steps (default 2000)\n"
            "  --batch-size B      windows per step (default 32)\n"
            "  --lr LR             AdamW peak learning rate, cosine-decayed to LR/10 (default 3e-3)\n"
            "  --eval-every N      validation, model file and checkpoint every N steps, 0: only\n"
            "                      at the end (default 250)\n"
            "  --seed S            seed of the init and the sampling of windows (default 0)\n"
            "  --threads T         compute threads (default: the library's)\n"
            "  --out FILE          the model file (default lm.safetensors); the checkpoint is\n"
            "                      STEM.ckpt.safetensors, the log STEM.csv. A new run refuses\n"
            "                      to replace an earlier one's unless --force is given\n"
            "  --force             replace an earlier run's files\n"
            "  --resume CKPT       continue the run of CKPT (a STEM.ckpt.safetensors) bit for\n"
            "                      bit; its settings are kept (--steps may grow; the lr\n"
            "                      schedule stays the first run's, LR/10 past its end)\n"
            "  -h, --help          this help\n"
            "\n"
            "Ctrl-C or SIGTERM finishes the step, saves the checkpoint and exits 130 / 143.\n");
}

/* ---- one run ---------------------------------------------------------------------------- */

typedef struct lm_run {
    /* settings: the flags, or a resumed checkpoint's */
    const char *text, *out, *resume, *positions, *arch;
    int64_t ctx, d, layers, heads, ff, steps, batch, seed, every, threads;
    int64_t sched_steps; /* the cosine schedule's length: --steps of the first run */
    double lr;
    bool force;
    /* the text */
    lm_hparams hp;
    char vocab[129];
    float *ids; /* every character's id */
    int64_t n, n_train, n_val;
    double *logp; /* the bigram baseline (V, V) */
    int64_t *tgt; /* a step's targets (batch * ctx) */
    /* what a checkpoint holds */
    bk_module *m;
    bk_optim *o;
    bk_rng rng; /* the sampler of windows */
    int64_t step;
    double run_sum; /* the train losses since the last printed line, and their count */
    int64_t run_n;
    double train_s; /* the time of the steps alone (for tokens/s) */
    double vloss, bigram;
    cli_buf log; /* the CSV log's rows so far (the checkpoint holds them too) */
    char *ckpt_path, *csv_path, *owned_out;
    cli_loop loop;
} lm_run;

/* Mean validation loss over the non-overlapping full windows of the validation split;
 * r->bigram gets the baseline on the same targets. */
static int evaluate(lm_run *r) {
    const float *val = r->ids + r->n_train;
    int64_t ctx = r->ctx, V = r->hp.vocab, windows = (r->n_val - 1) / ctx;
    if (windows < 1) {
        bk_set_error("the validation split (%" PRId64 " characters) is shorter than the context + 1",
                     r->n_val);
        return -1;
    }
    bool prev_grad = bk_set_grad_enabled(false);
    bk_module_train(r->m, false);
    double sum = 0, bsum = 0;
    int64_t *tgt = malloc(sizeof(int64_t) * LM_EVAL_BATCH * ctx);
    int rc = tgt ? 0 : -1;
    for (int64_t w0 = 0; rc == 0 && w0 < windows; w0 += LM_EVAL_BATCH) {
        int64_t nb = windows - w0 < LM_EVAL_BATCH ? windows - w0 : LM_EVAL_BATCH;
        bk_tensor *x = bk_empty(BK_SHAPE(nb, ctx));
        if (!x) {
            rc = -1;
            break;
        }
        for (int64_t b = 0; b < nb; b++)
            for (int64_t t = 0; t < ctx; t++) {
                int64_t i = (w0 + b) * ctx + t;
                x->data[b * ctx + t] = val[i];
                tgt[b * ctx + t] = (int64_t)val[i + 1];
                bsum -= r->logp[(int64_t)val[i] * V + (int64_t)val[i + 1]];
            }
        bk_tensor *l = bk_cross_entropy(bk_forward(r->m, x), tgt, nb * ctx, BK_REDUCTION_SUM);
        if (!l) rc = -1;
        else sum += bk_item(l);
        bk_arena_reset(NULL);
    }
    free(tgt);
    bk_module_train(r->m, true);
    bk_set_grad_enabled(prev_grad);
    r->vloss = sum / (double)(windows * ctx);
    r->bigram = bsum / (double)(windows * ctx);
    return rc;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

/* The checkpoint: the model file's metadata, every setting and the state of the run. */
static int write_checkpoint(void *ctx) {
    lm_run *r = ctx;
    lm_meta md = {0};
    char rng[2][CLI_RNG_CHARS];
    cli_rng_format(rng[0], &r->rng);
    cli_rng_format(rng[1], bk_default_rng());
    lm_meta_model(&md, LM_CKPT_FORMAT, &r->hp, r->vocab);
    lm_meta_add(&md, "brick.version", "%s", BK_VERSION_STRING);
    lm_meta_add(&md, "brick.lm.text_chars", "%" PRId64, r->n);
    lm_meta_add(&md, "brick.steps", "%" PRId64, r->steps);
    lm_meta_add(&md, "brick.lm.schedule_steps", "%" PRId64, r->sched_steps);
    lm_meta_add(&md, "brick.step", "%" PRId64, r->step);
    lm_meta_add(&md, "brick.lr", "%.17g", r->lr); /* (exact) */
    lm_meta_add(&md, "brick.batch_size", "%" PRId64, r->batch);
    lm_meta_add(&md, "brick.seed", "%" PRId64, r->seed);
    lm_meta_add(&md, "brick.eval_every", "%" PRId64, r->every);
    lm_meta_add(&md, "brick.threads", "%" PRId64, r->threads);
    lm_meta_add(&md, "brick.lm.window_rng", "%s", rng[0]);
    lm_meta_add(&md, "brick.model_rng", "%s", rng[1]);
    lm_meta_add(&md, "brick.lm.run_loss", "%a", r->run_sum); /* exact */
    lm_meta_add(&md, "brick.lm.run_n", "%" PRId64, r->run_n);
    lm_meta_add(&md, "brick.lm.train_seconds", "%.3f", r->train_s);
    lm_meta_add(&md, "brick.lm.text", "%s", ""); /* (a path: longer than val[]) */
    md.vals[md.n - 1] = r->text;
    lm_meta_add(&md, "brick.lm.log", "%s", ""); /* (the log's rows: longer too) */
    md.vals[md.n - 1] = r->log.p ? r->log.p : "";
    if (bk_checkpoint_save(r->ckpt_path, r->m, r->o, md.n, md.keys, md.vals)) return cli_fail(NULL);
    return CLI_OK;
}

/* After a validation: the model file, the checkpoint, then the CSV log. */
static int write_outputs(lm_run *r) {
    lm_meta md = {0};
    lm_meta_model(&md, LM_FORMAT, &r->hp, r->vocab);
    cli_loop_saving(true); /* a repeated signal waits for the files */
    int rc = bk_checkpoint_save(r->out, r->m, NULL, md.n, md.keys, md.vals) ? cli_fail(NULL)
                                                                            : write_checkpoint(r);
    if (!rc) {
        cli_buf csv = {0};
        cli_buf_printf(&csv, "step,train_loss,val_loss,bigram_loss,lr,train_seconds\n%s",
                       r->log.p ? r->log.p : "");
        if (csv.oom || r->log.oom) rc = cli_fail("out of memory");
        else if (cli_write_atomic(r->csv_path, &csv)) rc = cli_fail(NULL);
        cli_buf_free(&csv);
    }
    cli_loop_saving(false);
    return rc;
}

/* The log's rows of a checkpoint (metadata brick.lm.log, written by print_eval): digits,
 * signs, '.', ',', "nan", "inf", newlines only, so that a damaged or hostile file puts no
 * other text into the CSV. */
static bool log_rows_ok(const char *s) {
    for (; *s; s++)
        if (!strchr("0123456789+-.,einaf\n", *s)) return false;
    return true;
}

/* Reads the settings of the checkpoint st (r->resume) into r; a flag given in opts must
 * agree with the checkpoint's value, but for --steps (more than the steps done),
 * --eval-every, --threads and --text, which may change. CLI_OK or an exit status (message
 * printed). */
static int resume_settings(lm_run *r, const bk_safetensors *st, cli_option *opts, int n_opts) {
    const char *path = r->resume, *fmt = bk_safetensors_meta(st, "brick.format");
    char esc[80]; /* what a message quotes from the file, escaped (bk_escape) */
    if (!fmt || strcmp(fmt, LM_CKPT_FORMAT))
        return cli_fail("%s: not a brick train-lm checkpoint (brick.format is %s)", path,
                        fmt ? bk_escape(fmt, esc, sizeof esc) : "missing");
#define FLAG(name) cli_opt(opts, n_opts, name)
    /* Each value with the parser and range of the flag that sets it (cli_meta_value). */
    struct {
        const char *flag, *key;
        void *dst;
        bool keep; /* must equal a given flag */
    } set[] = {
        {"--arch", "brick.lm.arch", &r->arch, true},
        {"--positions", "brick.lm.positions", &r->positions, true},
        {"--context", "brick.lm.context", &r->ctx, true},
        {"--d-model", "brick.lm.d_model", &r->d, true},
        {"--layers", "brick.lm.layers", &r->layers, true},
        {"--heads", "brick.lm.heads", &r->heads, true},
        {"--ff", "brick.lm.ff", &r->ff, true},
        {"--batch-size", "brick.batch_size", &r->batch, true},
        {"--lr", "brick.lr", &r->lr, true},
        {"--seed", "brick.seed", &r->seed, true},
        {"--steps", "brick.steps", &r->steps, false},
        {"--eval-every", "brick.eval_every", &r->every, false},
        {"--text", "brick.lm.text", &r->text, false},
    };
    int rc;
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        cli_option *o = FLAG(set[i].flag);
        union {
            int64_t i;
            double f;
            const char *s;
        } v;
        if ((rc = cli_meta_value(path, st, set[i].key, o, true, &v))) return rc;
        char have[64];
        bool differs;
        if (o->kind == CLI_STR) {
            differs = strcmp(*(const char **)set[i].dst, v.s) != 0;
            snprintf(have, sizeof have, "%.63s", v.s);
        } else if (o->kind == CLI_INT) {
            differs = *(int64_t *)set[i].dst != v.i;
            snprintf(have, sizeof have, "%" PRId64, v.i);
        } else {
            differs = *(double *)set[i].dst != v.f;
            snprintf(have, sizeof have, "%g", v.f);
        }
        if (o->given && set[i].keep && differs)
            return cli_usage("%s differs from the checkpoint's %s (a resumed run keeps its settings)",
                             o->name, have);
        if (o->given) continue; /* (--steps, --eval-every, --text: the flag's) */
        if (o->kind == CLI_STR) *(const char **)set[i].dst = v.s;
        else if (o->kind == CLI_INT) *(int64_t *)set[i].dst = v.i;
        else *(double *)set[i].dst = v.f;
    }
    static const cli_option count = {"", CLI_INT, NULL, 0, 9.2e18, false, NULL};
    static const cli_option seconds = {"", CLI_FLOAT, NULL, 0, 1e300, false, NULL};
    cli_option threads = *FLAG("--threads");
    threads.min = 0; /* 0: the library's default (no --threads) */
    int64_t thr = 0;
    if ((rc = cli_meta_value(path, st, "brick.lm.schedule_steps", FLAG("--steps"), true, &r->sched_steps)) ||
        (rc = cli_meta_value(path, st, "brick.step", &count, true, &r->step)) ||
        (rc = cli_meta_value(path, st, "brick.lm.run_n", &count, true, &r->run_n)) ||
        (rc = cli_meta_value(path, st, "brick.lm.run_loss", &seconds, true, &r->run_sum)) ||
        (rc = cli_meta_value(path, st, "brick.lm.train_seconds", &seconds, true, &r->train_s)) ||
        (rc = cli_meta_value(path, st, "brick.threads", &threads, true, &thr)))
        return rc;
    if (!FLAG("--threads")->given) r->threads = thr;
    bool text_given = FLAG("--text")->given;
#undef FLAG
    const char *log = bk_safetensors_meta(st, "brick.lm.log");
    if (log && !log_rows_ok(log))
        return cli_fail("%s: metadata brick.lm.log \"%s\" is not rows of the log (numbers, ',', newlines)",
                        path, bk_escape(log, esc, sizeof esc));
    /* the text's path: printed, so plain (what bk_escape leaves as it is) */
    char plain[PATH_MAX];
    if (!text_given && strcmp(bk_escape(r->text, plain, sizeof plain), r->text))
        return cli_fail("%s: metadata brick.lm.text \"%s\" is not a plain path (give --text)", path,
                        bk_escape(r->text, esc, sizeof esc));
    if (log) cli_buf_printf(&r->log, "%s", log); /* (absent: the log restarts) */
    static const char *const rngs[2] = {"brick.lm.window_rng", "brick.model_rng"};
    for (int i = 0; i < 2; i++) {
        const char *v = bk_safetensors_meta(st, rngs[i]);
        bk_rng g;
        if (!cli_rng_parse(v, &g) || bk_rng_set_state(i ? NULL : &r->rng, g.state, g.inc))
            return cli_fail(
                "%s: metadata %s \"%s\" is not a generator state (16 hex digits, ':', 16 hex "
                "digits with the last one odd)",
                path, rngs[i], v ? bk_escape(v, esc, sizeof esc) : "(missing)");
    }
    if (r->step >= r->steps && cli_opt(opts, n_opts, "--steps")->given)
        return cli_usage("--steps %" PRId64 " is not more than the %" PRId64 " steps %s has done", r->steps,
                         r->step, path);
    if (r->step > r->steps)
        return cli_fail("%s: metadata brick.step %" PRId64 " is more than brick.steps %" PRId64, path,
                        r->step, r->steps);
    if (r->step == r->steps)
        return cli_usage("%s has done all its %" PRId64 " steps; give a larger --steps to go on", path,
                         r->steps);
    return cli_check_finite(path, st);
}

/* ---- the text --------------------------------------------------------------------------- */

/* Reads the text into ids (the vocabulary: its distinct bytes, sorted) and counts the
 * bigram baseline on the train split. A resumed run's text must give the checkpoint's
 * vocabulary and length (st; NULL for a new run). CLI_OK or CLI_RUNTIME (message printed). */
static int load_text(lm_run *r, const bk_safetensors *st) {
    unsigned char *raw = lm_read_text(r->text, &r->n);
    if (!raw) return cli_fail(NULL);
    int id_of[128], V = 0;
    bool seen[128] = {false};
    for (int64_t i = 0; i < r->n; i++) seen[raw[i]] = true;
    for (int c = 0; c < 128; c++) {
        id_of[c] = seen[c] ? V : -1;
        if (seen[c]) r->vocab[V++] = (char)c;
    }
    r->vocab[V] = 0;
    r->hp.vocab = V;
    r->n_train = r->n * 9 / 10;
    r->n_val = r->n - r->n_train;
    if (V < 2 || r->n_train < r->ctx + 2 || r->n_val < r->ctx + 2) {
        free(raw);
        return cli_fail("%s: %" PRId64 " usable characters (%d distinct) are too few for --context %" PRId64,
                        r->text, r->n, V, r->ctx);
    }
    if (st) {
        const char *vocab = bk_safetensors_meta(st, "brick.lm.vocab");
        const char *chars = bk_safetensors_meta(st, "brick.lm.text_chars");
        int64_t n_ck = -1;
        if (!vocab || strcmp(vocab, r->vocab) || !chars || !cli_parse_i64(chars, &n_ck) || n_ck != r->n) {
            free(raw);
            return cli_fail("%s: %" PRId64
                            " characters, %d distinct, but the run of %s trained on %.20s characters "
                            "of another vocabulary or length (a different text?)",
                            r->text, r->n, V, r->resume, chars ? chars : "?");
        }
    }
    r->ids = malloc(sizeof(float) * (size_t)r->n);
    r->logp = malloc(sizeof(double) * (size_t)V * (size_t)V);
    r->tgt = malloc(sizeof(int64_t) * (size_t)(r->batch * r->ctx));
    if (!r->ids || !r->logp || !r->tgt) {
        free(raw);
        return cli_fail("out of memory");
    }
    for (int64_t i = 0; i < r->n; i++) r->ids[i] = (float)id_of[raw[i]];
    free(raw);
    /* the bigram baseline: add-one smoothed counts of the train split */
    double *cnt = r->logp;
    for (int64_t i = 0; i < (int64_t)V * V; i++) cnt[i] = 1.0;
    for (int64_t i = 0; i + 1 < r->n_train; i++) cnt[(int64_t)r->ids[i] * V + (int64_t)r->ids[i + 1]] += 1.0;
    for (int a = 0; a < V; a++) {
        double row = 0;
        for (int b = 0; b < V; b++) row += cnt[a * V + b];
        for (int b = 0; b < V; b++) r->logp[a * V + b] = log(cnt[a * V + b] / row);
    }
    return CLI_OK;
}

/* ---- the loop --------------------------------------------------------------------------- */

/* The lr of step `step` (1-based): cosine from --lr down to a tenth over the first run's
 * steps, a tenth after them. */
static double lm_lr(const lm_run *r, int64_t step) {
    double frac = r->sched_steps > 1 ? (double)(step - 1) / (double)(r->sched_steps - 1) : 0;
    if (frac > 1) frac = 1;
    return r->lr * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * frac)));
}

/* After a validation: its line (the train loss since the last line) and the log's row. */
static void print_eval(lm_run *r, double t0) {
    double train = r->run_n ? r->run_sum / (double)r->run_n : NAN;
    printf("step %6" PRId64 "  train %.4f  val %.4f nats/char  (bigram %.4f)  %.1fs  %.0f tok/s\n", r->step,
           train, r->vloss, r->bigram, cli_now() - t0, (double)(r->step * r->batch * r->ctx) / r->train_s);
    fflush(stdout);
    cli_buf_printf(&r->log, "%" PRId64 ",%.6f,%.6f,%.6f,%.6g,%.3f\n", r->step, train, r->vloss, r->bigram,
                   bk_optim_lr(r->o), r->train_s);
    r->run_sum = 0;
    r->run_n = 0;
}

static int train_steps(lm_run *r) {
    cli_progress *pg = &r->loop.pg;
    double t0 = cli_now();
    int64_t tokens = r->batch * r->ctx, part_start = r->step;
    bk_module_train(r->m, true);
    while (r->step < r->steps) {
        int64_t step = r->step + 1;
        if (step == part_start + 1) { /* a part of the run: the steps up to the next validation */
            int64_t end = r->every > 0 ? (r->step / r->every + 1) * r->every : r->steps;
            if (end > r->steps) end = r->steps;
            char head[72];
            snprintf(head, sizeof head, "steps %" PRId64 "-%" PRId64 "/%" PRId64, step, end, r->steps);
            cli_progress_start_named(pg, head, "tokens", end - r->step);
        }
        bk_optim_set_lr(r->o, lm_lr(r, step));
        bk_tensor *x = bk_empty(BK_SHAPE(r->batch, r->ctx)); /* (B, T) ids */
        if (!x) return cli_fail(NULL);
        for (int64_t b = 0; b < r->batch; b++) {
            int64_t s = (int64_t)(bk_rng_uniform(&r->rng) * (float)(r->n_train - r->ctx - 1));
            if (s > r->n_train - r->ctx - 1) s = r->n_train - r->ctx - 1;
            for (int64_t t = 0; t < r->ctx; t++) {
                x->data[b * r->ctx + t] = r->ids[s + t];
                r->tgt[b * r->ctx + t] = (int64_t)r->ids[s + t + 1];
            }
        }
        double ts = cli_now(), lv = 0;
        /* the step of brick train (NaN or infinite: stopped before the backward) */
        cli_step_result st = cli_train_step(r->m, r->o, x, r->tgt, tokens, 0, &lv, NULL);
        bk_arena_reset(NULL);
        if (st == CLI_STEP_BAD_LOSS)
            return cli_fail("step %" PRId64 ": the loss is %g; stopping (the files saved before are kept)",
                            step, lv);
        if (st != CLI_STEP_DONE) return cli_fail(NULL);
        r->train_s += cli_now() - ts;
        r->step = step;
        r->run_sum += lv;
        r->run_n++;
        cli_progress_update(pg, step - part_start, (step - part_start) * tokens,
                            r->run_sum / (double)r->run_n);
        cli_loop_after_step(&r->loop, step);
        bool eval = (r->every > 0 && step % r->every == 0) || step == r->steps;
        if (eval) {
            cli_progress_note(pg, "validating");
            int rc = evaluate(r) ? cli_fail(NULL) : CLI_OK;
            cli_progress_clear(pg);
            if (rc) return rc;
            print_eval(r, t0);
            if ((rc = write_outputs(r))) return rc;
            part_start = step;
        }
        int sig = cli_loop_signal();
        if (sig) {
            char where[96];
            snprintf(where, sizeof where, "after step %" PRId64 " of %" PRId64, step, r->steps);
            return cli_loop_interrupted(&r->loop, sig, where, r->ckpt_path, r->out, NULL,
                                        eval ? NULL : write_checkpoint, r);
        }
    }
    cli_progress_clear(pg);
    return CLI_OK;
}

/* The run after its checks: data, model, optimizer (a resume loads its state), the loop. */
static int run_lm(lm_run *r, const bk_safetensors *st) {
    int rc = load_text(r, st);
    if (rc) return rc;
    r->hp.context = r->ctx;
    r->hp.d_model = r->d;
    r->hp.layers = r->layers;
    r->hp.heads = r->heads;
    r->hp.ff = r->ff;
    r->hp.learned = !strcmp(r->positions, "learned");
    r->hp.arch = (lm_arch)lm_arch_of(r->arch);
    if (!st) {
        bk_manual_seed((uint64_t)r->seed);
        bk_rng_seed(&r->rng, (uint64_t)r->seed * 0x9E3779B97F4A7C15ull + 1);
    }
    bk_rng model_rng = *bk_default_rng(); /* (a resume's: lm_build draws from it) */
    r->m = lm_build(&r->hp);
    r->o = r->m ? bk_optim_adamw(r->m, BK_ADAMW_DEFAULTS(r->lr)) : NULL;
    if (!r->o || (st && bk_checkpoint_load_from(st, r->m, r->o))) return cli_fail(NULL);
    if (st) *bk_default_rng() = model_rng;
    /* every output can be written, before the first step (model, AdamW's two states) */
    double weights = 4.0 * (double)bk_module_num_params(r->m, false);
    if ((rc = cli_check_writable("--out", r->out, (int64_t)weights)) ||
        (rc = cli_check_writable("the checkpoint", r->ckpt_path, (int64_t)(3 * weights))) ||
        (rc = cli_check_writable("the log", r->csv_path, 0)))
        return rc;
    printf("text %s: %" PRId64 " characters, vocabulary %" PRId64 "; train %" PRId64 ", validation %" PRId64
           "\n",
           r->text, r->n, r->hp.vocab, r->n_train, r->n_val);
    if (r->hp.arch == LM_TRANSFORMER)
        printf("model: context %" PRId64 ", d_model %" PRId64 ", %" PRId64 " layers, %" PRId64
               " heads, ff %" PRId64 ", %s positions, %" PRId64 " parameters\n",
               r->ctx, r->d, r->layers, r->heads, r->ff, r->positions, bk_module_num_params(r->m, true));
    else
        printf("model: %s, context %" PRId64 ", hidden %" PRId64 ", %" PRId64
               " layers, one-hot inputs, %" PRId64 " parameters\n",
               r->arch, r->ctx, r->d, r->layers, bk_module_num_params(r->m, true));
    if (st) printf("resuming %s after step %" PRId64 " of %" PRId64 "\n", r->resume, r->step, r->steps);
    fflush(stdout);
    cli_loop_begin(&r->loop, "brick train-lm", true, false);
    rc = train_steps(r);
    cli_loop_end(&r->loop);
    if (rc) return rc;
    if (r->steps == 0) { /* the initial weights: validated and written */
        if (evaluate(r)) return cli_fail(NULL);
        if ((rc = write_outputs(r))) return rc;
    }
    printf("final: val loss %.4f nats/char, bigram baseline %.4f nats/char (%s by %.4f)\n", r->vloss,
           r->bigram, r->vloss < r->bigram ? "better" : "WORSE", fabs(r->bigram - r->vloss));
    if (r->steps > 0)
        printf("training: %" PRId64 " steps, %" PRId64 " tokens in %.2f s: %.0f tokens/s\n", r->steps,
               r->steps * r->batch * r->ctx, r->train_s, (double)(r->steps * r->batch * r->ctx) / r->train_s);
    printf("wrote %s, %s, %s\n", r->out, r->ckpt_path, r->csv_path);
    return CLI_OK;
}

int cmd_train_lm(int argc, char **argv) {
    lm_run r = {.text = "data/text/fortunes-sample.txt",
                .positions = "learned",
                .arch = "transformer",
                .ctx = 64,
                .d = 64,
                .layers = 2,
                .heads = 4,
                .ff = 256,
                .steps = 2000,
                .batch = 32,
                .every = 250,
                .lr = 3e-3};
    cli_option opts[] = {
        {"--text", CLI_STR, &r.text, 0, 0, false, NULL},
        {"--arch", CLI_STR, &r.arch, 0, 0, false, LM_ARCHS},
        {"--context", CLI_INT, &r.ctx, 1, 4096, false, NULL},
        {"--d-model", CLI_INT, &r.d, 1, 4096, false, NULL},
        {"--layers", CLI_INT, &r.layers, 1, 64, false, NULL},
        {"--heads", CLI_INT, &r.heads, 1, 256, false, NULL},
        {"--ff", CLI_INT, &r.ff, 1, 65536, false, NULL},
        {"--positions", CLI_STR, &r.positions, 0, 0, false, LM_POSITIONS},
        {"--steps", CLI_INT, &r.steps, 0, 1e9, false, NULL},
        {"--batch-size", CLI_INT, &r.batch, 1, 65536, false, NULL},
        {"--lr", CLI_FLOAT, &r.lr, 0, 10, false, NULL},
        {"--eval-every", CLI_INT, &r.every, 0, 1e9, false, NULL},
        {"--seed", CLI_INT, &r.seed, 0, 9.0e15, false, NULL},
        CLI_OPT_THREADS(&r.threads),
        {"--out", CLI_STR, &r.out, 0, 0, false, NULL},
        {"--force", CLI_FLAG, &r.force, 0, 0, false, NULL},
        {"--resume", CLI_STR, &r.resume, 0, 0, false, NULL},
    };
    int n_opts = CLI_COUNT(opts), n_pos = 0;
    const char *pos[1];
    int rc = cli_parse(argc, argv, opts, n_opts, pos, 0, &n_pos, help_train);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (r.d % r.heads)
        return cli_usage("--d-model %" PRId64 " is not divisible by --heads %" PRId64, r.d, r.heads);
    if (r.out && (rc = cli_need_out(r.out))) return rc;
    if (r.resume && (rc = cli_need_file("--resume", r.resume))) return rc;
    char bundled[PATH_MAX]; /* the default text from any directory, in the tree or installed */
    if (!r.resume && !cli_opt(opts, n_opts, "--text")->given &&
        cli_bundled("text/fortunes-sample.txt", bundled, sizeof bundled))
        r.text = bundled;
    if (!r.resume && (rc = cli_need_file("--text", r.text))) return rc;
    if (cli_parse_only) return CLI_OK;

    bk_safetensors *st = NULL;
    if (r.resume) {
        st = bk_safetensors_load(r.resume);
        rc = st ? resume_settings(&r, st, opts, n_opts) : cli_fail(NULL);
        if (!rc && r.d % r.heads) /* (each value passed its flag's check, not this one) */
            rc = cli_fail("%s: metadata brick.lm.d_model %" PRId64
                          " is not divisible by brick.lm.heads %" PRId64,
                          r.resume, r.d, r.heads);
        if (!rc) rc = cli_need_file("--text", r.text);
        if (!rc && !r.out && !(rc = cli_resume_out(r.resume, &r.owned_out))) r.out = r.owned_out;
        if (rc) goto done;
    }
    if (!r.out) r.out = "lm.safetensors";
    if (!r.resume) r.sched_steps = r.steps; /* kept by a resume, whatever its --steps */
    r.ckpt_path = cli_sibling(r.out, ".ckpt.safetensors");
    r.csv_path = cli_sibling(r.out, ".csv");
    if (!r.ckpt_path || !r.csv_path) {
        rc = cli_fail("out of memory");
        goto done;
    }
    {
        const char *outs[2] = {r.out, r.csv_path};
        static const char *const what[2] = {"the model file", "the log"};
        if ((rc = cli_outputs_check(r.resume, r.force, r.ckpt_path, 2, outs, what))) goto done;
    }
    if (r.threads) cli_set_threads((int)r.threads);
    rc = run_lm(&r, st);
done:
    bk_safetensors_free(st);
    bk_optim_free(r.o);
    bk_module_free(r.m);
    free(r.ids), free(r.logp), free(r.tgt);
    free(r.ckpt_path);
    free(r.csv_path);
    free(r.owned_out);
    cli_buf_free(&r.log);
    bk_arena_reset(NULL);
    return rc;
}
