/* loop.c - the outer loop that `brick train` (train_loop.c) and `brick train-lm`
 * (lm_train.c) share: stop signals, the test hooks that raise them, the progress bar's
 * setup, what an interrupted run prints, and the checks and names of a run's files before
 * it starts (an earlier run's files, --resume's derived --out, generator states in
 * metadata). Each command keeps its own steps, evaluation and metadata.
 *
 * Interrupts: SIGINT (Ctrl-C) and SIGTERM only set a flag (cli_loop_signal), which the
 * command checks after every step. The step in progress finishes, the command saves its
 * checkpoint with what it needs to go on bit for bit, and cli_loop_interrupted prints
 * where it stopped and the command that continues, and gives the exit status 128 + the
 * signal (130 for Ctrl-C). A repeated signal (either of the two) is:
 *   - the same request when it comes within STOP_REPEAT_WINDOW of the first: ignored. GNU
 *     timeout sends its signal to the process and then to its process group, so a run
 *     under timeout gets two at once; a one-shot handler let the second kill the run
 *     before its checkpoint was written (1 run in 20);
 *   - deferred while the command is saving (cli_loop_saving): the save completes and the
 *     run exits as for the first signal;
 *   - otherwise, "stop now": one line on stderr and _exit(128 + signal). The loop has not
 *     reached its check for a second or more (a long step, an evaluation, a hang), and
 *     the user means it. Nothing is damaged: every file is replaced atomically, so the
 *     files of the last save stay whole (only that last step's checkpoint is not written).
 * The handler uses only async-signal-safe calls (clock_gettime, write, _exit).
 *
 * Hidden test hooks (cli_loop_after_step): BRICK_TEST_INTERRUPT_AT_STEP=N raises SIGINT
 * after step N; BRICK_TEST_INTERRUPT_REPEAT=now|save|hang then also raises it again at
 * once, raises it again during the checkpoint's save (1.1 s after the first), or hangs
 * after step N without ever reaching the check (so a second signal from outside must stop
 * it).
 */
#define _XOPEN_SOURCE 700 /* isatty, sigaction, clock_gettime, nanosleep */

#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- stop signals ----------------------------------------------------------------------- */

#define STOP_REPEAT_WINDOW 1.0 /* seconds */

static volatile sig_atomic_t stop_signal;  /* the first signal's number, 0 before */
static volatile sig_atomic_t saving;       /* the command is writing files: repeats wait */
static struct timespec first_signal_at;    /* written before stop_signal, read after */
static struct sigaction old_int, old_term; /* restored by cli_loop_end */

static double seconds_since(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + 1e-9 * (double)(now.tv_nsec - t0->tv_nsec);
}

static void on_stop_signal(int sig) {
    int saved_errno = errno;
    if (!stop_signal) {
        clock_gettime(CLOCK_MONOTONIC, &first_signal_at);
        stop_signal = sig;
    } else if (!saving && seconds_since(&first_signal_at) >= STOP_REPEAT_WINDOW) {
        static const char msg
            [] = ": stopped at once by a second signal: the step in progress "
                 "is not saved; the files saved before are whole\n";
        ssize_t ignored = write(2, cli_prog, strlen(cli_prog));
        ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(128 + sig);
    }
    errno = saved_errno;
}

/* The test hooks' repeated signal: sleeps until `after` seconds have passed since the first
 * signal (by the same clock as the handler, so the outcome never depends on the machine's
 * speed), then raises it again. */
static void raise_again_after(double after) {
    double left;
    while ((left = after - seconds_since(&first_signal_at)) > 0) {
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9) + 1};
        if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
        nanosleep(&ts, NULL);
    }
    raise(stop_signal);
}

void cli_loop_begin(cli_loop *L, const char *cmd, bool draw, bool detect_anomaly) {
    memset(L, 0, sizeof *L);
    L->cmd = cmd;
    cli_progress_init(&L->pg, draw && isatty(2));
    const char *at = getenv("BRICK_TEST_INTERRUPT_AT_STEP");
    if (!at || !cli_parse_i64(at, &L->interrupt_at)) L->interrupt_at = 0;
    L->interrupt_repeat = getenv("BRICK_TEST_INTERRUPT_REPEAT");
    if (!L->interrupt_repeat) L->interrupt_repeat = "";
    L->prev_anomaly = bk_set_detect_anomaly(detect_anomaly);
    /* Ctrl-C and SIGTERM from here on (a repeat: see on_stop_signal; each blocks the other
     * while its handler runs; SA_RESTART so that no write is cut short by EINTR). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    stop_signal = 0;
    saving = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
}

void cli_loop_end(cli_loop *L) {
    cli_progress_clear(&L->pg);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    bk_set_detect_anomaly(L->prev_anomaly);
}

int cli_loop_signal(void) { return stop_signal; }

void cli_loop_saving(bool on) { saving = on; }

void cli_loop_after_step(const cli_loop *L, int64_t step) {
    if (L->interrupt_at <= 0 || step != L->interrupt_at) return;
    raise(SIGINT);
    if (!strcmp(L->interrupt_repeat, "now")) raise(SIGINT);
    if (!strcmp(L->interrupt_repeat, "hang")) {
        fprintf(stderr, "%s: test hook: hanging after step %" PRId64 "\n", cli_prog, step);
        for (;;) pause(); /* never reaches the check: only a second signal ends this */
    }
}

/* ---- what an interrupted run says ------------------------------------------------------- */

/* A word of a shell command, quoted when it needs to be. */
static void shell_word(cli_buf *b, const char *w) {
    bool plain = *w != '\0';
    for (const char *c = w; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+=:,@", *c))
            plain = false;
    if (plain) {
        cli_buf_printf(b, " %s", w);
        return;
    }
    cli_buf_printf(b, " '");
    for (const char *c = w; *c; c++) cli_buf_printf(b, *c == '\'' ? "'\\''" : "%c", *c);
    cli_buf_printf(b, "'");
}

int cli_loop_interrupted(cli_loop *L, int sig, const char *where, const char *ckpt, const char *out,
                         const char *extra, int (*save)(void *ctx), void *ctx) {
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    saving = 1; /* from here to the exit: a repeated signal waits */
    cli_progress_clear(&L->pg);
    if (save) {
        if (!strcmp(L->interrupt_repeat, "save")) raise_again_after(STOP_REPEAT_WINDOW + 0.1);
        int rc = save(ctx);
        if (rc) {
            fprintf(stderr,
                    "%s: interrupted by %s, and the checkpoint could not be saved (the "
                    "one saved before, if any, is kept)\n",
                    cli_prog, name);
            return rc;
        }
        fprintf(stderr, "%s: interrupted by %s %s: saved the checkpoint %s\n", cli_prog, name, where, ckpt);
    } else {
        fprintf(stderr, "%s: interrupted by %s %s: the checkpoint %s holds it\n", cli_prog, name, where,
                ckpt);
    }
    /* The command that goes on: the checkpoint keeps every other setting. */
    cli_buf cmd = {0};
    cli_buf_printf(&cmd, "%s --resume", L->cmd);
    shell_word(&cmd, ckpt);
    char *derived = cli_resume_out_name(ckpt); /* --out is needed unless it is this one */
    if (!derived || strcmp(derived, out)) {
        cli_buf_printf(&cmd, " --out");
        shell_word(&cmd, out);
    }
    free(derived);
    if (extra) cli_buf_printf(&cmd, " %s", extra);
    if (cmd.oom || !cmd.p) fprintf(stderr, "%s: to continue: %s --resume CKPT\n", cli_prog, L->cmd);
    else fprintf(stderr, "%s: to continue: %s\n", cli_prog, cmd.p);
    cli_buf_free(&cmd);
    fflush(stdout);
    return 128 + sig;
}

/* ---- a run's files ---------------------------------------------------------------------- */

#define CKPT_SUFFIX ".ckpt.safetensors"

char *cli_resume_out_name(const char *ckpt) {
    size_t len = strlen(ckpt), sl = strlen(CKPT_SUFFIX);
    if (len <= sl || strcmp(ckpt + len - sl, CKPT_SUFFIX)) return NULL;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    memcpy(out, ckpt, len - sl);
    strcpy(out + len - sl, ".safetensors");
    return out;
}

int cli_resume_out(const char *ckpt, char **out) {
    *out = cli_resume_out_name(ckpt);
    if (*out) return CLI_OK;
    size_t len = strlen(ckpt), sl = strlen(CKPT_SUFFIX);
    if (len > sl && !strcmp(ckpt + len - sl, CKPT_SUFFIX)) return cli_fail("out of memory");
    return cli_usage("--resume %s: give --out (the name does not end in %s)", ckpt, CKPT_SUFFIX);
}

int cli_outputs_check(const char *resume, bool force, const char *ckpt, int n, const char *const *paths,
                      const char *const *what) {
    if (!resume) {
        /* A new run does not silently replace an earlier one's weights (a resumed run
         * continues its own files). */
        const char *earlier = cli_is_file(paths[0]) ? paths[0] : cli_is_file(ckpt) ? ckpt : NULL;
        if (!force && earlier)
            return cli_usage(
                "%s exists (an earlier run's?): give --force to replace it, --resume %s to "
                "continue that run, or another --out",
                earlier, ckpt);
        return CLI_OK;
    }
    /* No output but the new checkpoint may replace the one being resumed (compared by
     * inode: the same file under another name counts too). */
    for (int i = 0; i < n; i++)
        if (cli_same_file(paths[i], resume))
            return cli_usage(
                "--out %s: %s %s would replace the checkpoint being resumed; give another "
                "--out",
                paths[0], what[i], paths[i]);
    return CLI_OK;
}

void cli_rng_format(char buf[CLI_RNG_CHARS], const bk_rng *r) {
    snprintf(buf, CLI_RNG_CHARS, "%016llx:%016llx", (unsigned long long)r->state, (unsigned long long)r->inc);
}

bool cli_rng_parse(const char *s, bk_rng *r) {
    uint64_t v[2] = {0, 0};
    if (!s || strlen(s) != 33 || s[16] != ':') return false;
    for (int i = 0; i < 33; i++) {
        if (i == 16) continue;
        char ch = s[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0) return false;
        v[i > 16] = v[i > 16] << 4 | (uint64_t)d;
    }
    if (!(v[1] & 1)) return false;
    r->state = v[0];
    r->inc = v[1];
    return true;
}
