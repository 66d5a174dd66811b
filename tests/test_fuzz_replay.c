/* test_fuzz_replay.c - every input the fuzz targets have kept, replayed in the normal test
 * run (gcc, `make test` and `make test SAN=1`), without clang or libFuzzer.
 *
 * The fuzz targets (fuzz/fuzz_<target>.c) are included here compiled with FUZZ_REPLAY, which
 * names each target's entry point fuzz_<target> instead of LLVMFuzzerTestOneInput. Each
 * file of fuzz/corpus/<target>/ (the seeds) and fuzz/regressions/<target>/ (every input
 * that ever crashed a target, kept once fixed) goes through its target, which checks its
 * own invariants and aborts on a broken one. Around each input the blocks brick holds
 * (bk__alloc_live) must come back to where they were: a leak check without ASan (ASan's
 * leak checker does the same under SAN=1). The file being replayed is printed first, so a
 * crash names it. Runs from the repository root (scripts/run_tests.sh does).
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, strnlen, dirent */
#define FUZZ_REPLAY 1

#include "test.h"

#include "../fuzz/fuzz_cifar.c"
#include "../fuzz/fuzz_ckpt.c"
#include "../fuzz/fuzz_cli.c"
#include "../fuzz/fuzz_csv.c"
#include "../fuzz/fuzz_escape.c"
#include "../fuzz/fuzz_idx.c"
#include "../fuzz/fuzz_image.c"
#include "../fuzz/fuzz_image_folder.c"
#include "../fuzz/fuzz_model_spec.c"
#include "../fuzz/fuzz_safetensors.c"

#include <dirent.h>

typedef struct replay_target {
    const char *name;
    int (*run)(const uint8_t *data, size_t size);
} replay_target;

static const replay_target TARGETS[] = {
    {"safetensors", fuzz_safetensors},
    {"idx", fuzz_idx},
    {"model_spec", fuzz_model_spec},
    {"cli", fuzz_cli},
    {"ckpt", fuzz_ckpt},
    {"escape", fuzz_escape},
    {"image", fuzz_image},
    {"cifar", fuzz_cifar},
    {"image_folder", fuzz_image_folder},
    {"csv", fuzz_csv},
};
#define N_TARGETS (int)(sizeof TARGETS / sizeof TARGETS[0])

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replays every file of dir (name order; dot files skipped) through t. Returns how many,
 * or -1 if the directory does not exist. */
static int replay_dir(const replay_target *t, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char *names[4096];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    int stdout_fd = dup(1), null_fd = open("/dev/null", O_WRONLY);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        if (!f) continue;
        static uint8_t buf[1 << 20];
        size_t size = fread(buf, 1, sizeof buf, f);
        CHECK(!ferror(f) && feof(f)); /* inputs are small: under 1 MiB */
        fclose(f);
        fprintf(stderr, "    %s (%zu bytes)\n", path, size);
        bk_thread_cleanup(); /* as every input ends: the thread's arena is not a leak */
        long live = bk__alloc_live();
        /* the CLI prints help and usage; keep stdout for the results (stderr stays, for
         * a sanitizer's report) */
        fflush(stdout);
        if (stdout_fd >= 0 && null_fd >= 0) dup2(null_fd, 1);
        t->run(buf, size);
        fflush(stdout);
        if (stdout_fd >= 0) dup2(stdout_fd, 1);
        if (bk__alloc_live() != live) {
            fprintf(stderr, "  FAIL %s: %ld block(s) leaked\n", path, bk__alloc_live() - live);
            test_failed_checks_++;
        }
        free(names[i]);
    }
    if (null_fd >= 0) close(null_fd);
    if (stdout_fd >= 0) close(stdout_fd);
    return n;
}

static int total_inputs;

static void replay(const replay_target *t) {
    char dir[256];
    snprintf(dir, sizeof dir, "fuzz/corpus/%s", t->name);
    int seeds = replay_dir(t, dir);
    if (seeds <= 0) {
        fprintf(stderr, "  FAIL %s: no seed inputs (run from the repository root)\n", dir);
        test_failed_checks_++;
    }
    snprintf(dir, sizeof dir, "fuzz/regressions/%s", t->name);
    int regressions = replay_dir(t, dir); /* -1: none ever found */
    printf("    %-12s %3d seeds, %3d regression inputs\n", t->name, seeds, regressions < 0 ? 0 : regressions);
    total_inputs += (seeds > 0 ? seeds : 0) + (regressions > 0 ? regressions : 0);
}

TEST(replay_safetensors) { replay(&TARGETS[0]); }
TEST(replay_idx) { replay(&TARGETS[1]); }
TEST(replay_model_spec) { replay(&TARGETS[2]); }
TEST(replay_cli) { replay(&TARGETS[3]); }
TEST(replay_ckpt) { replay(&TARGETS[4]); }
TEST(replay_escape) { replay(&TARGETS[5]); }
TEST(replay_image) { replay(&TARGETS[6]); }
TEST(replay_cifar) { replay(&TARGETS[7]); }
TEST(replay_image_folder) { replay(&TARGETS[8]); }
TEST(replay_csv) { replay(&TARGETS[9]); }

int main(void) {
    RUN(replay_safetensors);
    RUN(replay_idx);
    RUN(replay_model_spec);
    RUN(replay_cli);
    RUN(replay_ckpt);
    RUN(replay_escape);
    RUN(replay_image);
    RUN(replay_cifar);
    RUN(replay_image_folder);
    RUN(replay_csv);
    printf("    %d inputs replayed through %d targets\n", total_inputs, N_TARGETS);
    return test_summary("test_fuzz_replay");
}
