/* test_crash_save.c - a process killed while it saves a checkpoint loses nothing.
 *
 * 200 trials (at least 50 on a disk so slow that 200 take over 15 s): a child process
 * saves a checkpoint (an MLP and its SGD momentum state, 400 KB) to the same path over and
 * over, alternating between two states A and B, and the parent SIGKILLs it a random time
 * after it started, up to about three saves. After each kill:
 *   - bk_checkpoint_load of the path succeeds, and the model and optimizer then hold
 *     exactly A or exactly B (never a mix, never a torn file), and the file's metadata
 *     names the same state as its tensors;
 *   - temporary files "<path>.tmp.XXXXXX" left by the killed save are counted (they show
 *     that the kill landed mid-save).
 * At the end, one more save removes every leftover temporary file (the cleanup policy of
 * bk_safetensors_save, docs/reliability.md), which is checked too. Prints the trials, the
 * kills that landed mid-save and the losses (which must be 0).
 * Files go to a mkdtemp directory on /dev/shm (or /tmp without it), removed at the end: a
 * SIGKILL tests the process dying, not the disk (the kernel keeps every completed write
 * and rename either way), and a tmpfs keeps fsync from making the test slow.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nanosleep, kill */
#define _DEFAULT_SOURCE   /* flock */

#include "test.h"
#include "files.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TRIALS 200
#define MIN_TRIALS 50
#define TIME_BUDGET_S 15.0 /* a slow disk ends the run early, after MIN_TRIALS at least */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Is there a name in now[0..n_now) that is not in before[0..n_before)? */
static bool has_new_name(char now[][256], int n_now, char before[][256], int n_before) {
    for (int i = 0; i < n_now; i++) {
        bool old = false;
        for (int k = 0; k < n_before && !old; k++) old = !strcmp(now[i], before[k]);
        if (!old) return true;
    }
    return false;
}

/* The state a model + optimizer pair is in: parameters and momentum buffers. */
typedef struct state {
    bk_module *m;
    bk_optim *o;
} state;

static state make_state(float base) {
    bk_manual_seed(1);
    state s;
    s.m = bk_nn_sequential(3, bk_nn_linear(128, 256), bk_nn_relu(), bk_nn_linear(256, 64));
    bk_sgd_config c = BK_SGD_DEFAULTS(0.1);
    c.momentum = 0.9;
    s.o = bk_optim_sgd(s.m, c);
    fill_pattern(s.m, s.o, base, 1e-4f);
    return s;
}

static void free_state(state *s) {
    bk_optim_free(s->o);
    bk_module_free(s->m);
}

static int save(const char *path, const state *s, const char *name) {
    const char *keys[] = {"state"}, *values[] = {name};
    return bk_checkpoint_save(path, s->m, s->o, 1, keys, values);
}

/* The child: says it has started, then saves A, B, A, B, ... until it is killed. */
static void saver(const char *path, const state *a, const state *b, int ready_fd) {
    char c = 1;
    if (write(ready_fd, &c, 1) != 1) _exit(4);
    for (unsigned long i = 0;; i++)
        if (save(path, i % 2 ? b : a, i % 2 ? "B" : "A") != 0) {
            fprintf(stderr, "  child: save failed: %s\n", bk_last_error());
            _exit(3);
        }
}

TEST(kill_during_save_loses_nothing) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.ckpt.safetensors", tmpdir);
    state a = make_state(1.0f), b = make_state(-3.0f), got = make_state(7.0f);
    CHECK(a.o && b.o && got.o);
    if (!a.o || !b.o || !got.o) return;

    /* how long one save takes here, to spread the kills over a few saves */
    double t0 = now_s();
    for (int i = 0; i < 3; i++) CHECK(save(path, &a, "A") == 0);
    double save_s = (now_s() - t0) / 3;

    uint64_t x = 0x9E3779B97F4A7C15u ^ (uint64_t)getpid();
    int trials = 0, mid_save = 0, losses = 0, seen_a = 0, seen_b = 0;
    double start = now_s();
    static char before[MAX_TEMPS][256], after[MAX_TEMPS][256];
    for (; trials < TRIALS && (trials < MIN_TRIALS || now_s() - start < TIME_BUDGET_S); trials++) {
        int n_before = list_temp_files(tmpdir, before);
        fflush(stdout);
        fflush(stderr);
        int ready[2];
        CHECK(pipe(ready) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid < 0) break;
        if (pid == 0) saver(path, &a, &b, ready[1]);
        char c;
        CHECK(read(ready[0], &c, 1) == 1); /* the delay counts from the child's start */
        close(ready[0]);
        close(ready[1]);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        double delay = save_s * 3.0 * (double)(x % 10000) / 10000.0;
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            fprintf(stderr, "  FAIL trial %d: the saver was not killed but ended (status %d)\n", trials,
                    status);
            test_failed_checks_++;
        }
        int n_after = list_temp_files(tmpdir, after);
        if (has_new_name(after, n_after, before, n_before)) mid_save++; /* this child's */

        /* the checkpoint loads and is A or B, entirely */
        bk_clear_error();
        bool loaded = bk_checkpoint_load(path, got.m, got.o) == 0;
        bk_safetensors *st = loaded ? bk_safetensors_load(path) : NULL;
        const char *meta = st ? bk_safetensors_meta(st, "state") : NULL;
        bool is_a = loaded && same_state(got.m, got.o, a.m, a.o),
             is_b = loaded && same_state(got.m, got.o, b.m, b.o);
        bool ok = (is_a && meta && !strcmp(meta, "A")) || (is_b && meta && !strcmp(meta, "B"));
        seen_a += is_a;
        seen_b += is_b;
        if (!ok) {
            losses++;
            fprintf(stderr, "  FAIL trial %d: after the kill the checkpoint %s\n", trials,
                    !loaded ? bk_last_error() : "holds neither state A nor state B");
            test_failed_checks_++;
        }
        bk_safetensors_free(st);
    }
    double secs = now_s() - start;

    /* the next successful save removes what the killed ones left */
    int left = count_temp_files(tmpdir);
    CHECK(save(path, &a, "A") == 0);
    CHECK(count_temp_files(tmpdir) == 0);
    CHECK(trials >= MIN_TRIALS);
    CHECK(mid_save > 0); /* else the test proved nothing: no kill landed inside a save */
    printf(
        "    %d trials in %.1f s (one save: %.1f ms): %d kills landed mid-save, the file then "
        "held A %d times and B %d times; %d losses; %d leftover temporary file(s) removed by "
        "the next save\n",
        trials, secs, save_s * 1e3, mid_save, seen_a, seen_b, losses, left);
    free_state(&a);
    free_state(&b);
    free_state(&got);
}

/* A temporary file that a live writer holds is never removed by another save's cleanup:
 * its lock is taken. Simulated with a child that holds the lock of a fake temporary file
 * of the same path while the parent saves. */
TEST(cleanup_spares_a_live_writers_file) {
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/shared.safetensors", tmpdir);
    snprintf(tmp, sizeof tmp, "%s.tmp.Abc123", path);
    bk_tensor *t = bk_tensor_new(BK_SHAPE(4));
    const char *name = "w";
    const bk_tensor *ts[1] = {t};
    int ready[2];
    CHECK(pipe(ready) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* a writer in progress: the file exists and is locked (bk_safetensors_save's flock) */
        FILE *f = fopen(tmp, "wb");
        if (!f) _exit(2);
        char c = 1;
        if (flock(fileno(f), LOCK_EX) != 0 || write(ready[1], &c, 1) != 1) _exit(2);
        pause(); /* until killed */
        _exit(0);
    }
    char c;
    CHECK(pid > 0 && read(ready[0], &c, 1) == 1);
    CHECK(bk_safetensors_save(path, 1, &name, ts, 0, NULL, NULL) == 0);
    struct stat st;
    CHECK(stat(tmp, &st) == 0); /* still there: its writer lives */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(bk_safetensors_save(path, 1, &name, ts, 0, NULL, NULL) == 0);
    CHECK(stat(tmp, &st) != 0); /* its writer died: removed */
    close(ready[0]);
    close(ready[1]);
    bk_tensor_free(t);
}

int main(void) {
    if (!files_init("crash", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp")) return 1;
    RUN(kill_during_save_loses_nothing);
    RUN(cleanup_spares_a_live_writers_file);
    files_cleanup();
    return test_summary("test_crash_save");
}
