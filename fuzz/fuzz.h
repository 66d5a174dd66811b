/* fuzz.h - what brick's fuzz targets share (fuzz/fuzz_<target>.c).
 *
 * Each target is one function of (data, size) that must never crash, leak or trip a
 * sanitizer, whatever the bytes. It is compiled two ways:
 *   - by `make fuzz` with clang -fsanitize=fuzzer,address,undefined: FUZZ_TARGET(name)
 *     is then libFuzzer's LLVMFuzzerTestOneInput and the binary is build-fuzz/fuzz/<name>;
 *   - with FUZZ_REPLAY defined, by tests/test_fuzz_replay.c (gcc, the normal build), which
 *     includes every target and feeds it each file of fuzz/corpus/<name>/ and
 *     fuzz/regressions/<name>/: FUZZ_TARGET(name) is then the function fuzz_<name>.
 * The readers take paths, so an input is first written to a scratch file (fuzz_file) in a
 * private directory, on /dev/shm when there is one. Every single allocation brick makes is
 * capped at FUZZ_ALLOC_LIMIT (bk__alloc_limit), so an input that asks for a huge model or
 * tensor exercises the out-of-memory path instead of exhausting the machine.
 */
#ifndef BRICK_FUZZ_H
#define BRICK_FUZZ_H

#include "brick.h"
#include "internal.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_ALLOC_LIMIT ((size_t)16 << 20) /* bytes per allocation */

#ifdef FUZZ_REPLAY
#define FUZZ_TARGET(name)                              \
    int fuzz_##name(const uint8_t *data, size_t size); \
    int fuzz_##name(const uint8_t *data, size_t size)
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#define FUZZ_TARGET(name) int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#endif

/* A broken invariant (not a crash the sanitizers see): report it and abort, which
 * libFuzzer records as a crash with the input that caused it. */
#define FUZZ_ASSERT(cond)                                                                                \
    do {                                                                                                 \
        if (!(cond)) {                                                                                   \
            fprintf(stderr, "%s:%d: invariant broken: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
                    bk_last_error());                                                                    \
            abort();                                                                                     \
        }                                                                                                \
    } while (0)

static char fuzz_dir[64];

static void fuzz_remove_dir(void) {
    static const char *const names[] = {"in0", "in1", "out"};
    char p[128];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", fuzz_dir, names[i]);
        unlink(p);
    }
    rmdir(fuzz_dir); /* fails, harmlessly, if a save left something else behind */
}

/* The scratch path "<dir>/<name>" (name: "in0", "in1" or "out"). */
static inline const char *fuzz_path(const char *name) {
    static char paths[3][128];
    static int next;
    if (!fuzz_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/brick-fuzz-XXXXXX", base);
        if (!mkdtemp(fuzz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_remove_dir);
    }
    char *p = paths[next++ % 3];
    snprintf(p, sizeof paths[0], "%s/%s", fuzz_dir, name);
    return p;
}

/* Writes the bytes to the scratch file `name` and returns its path. */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
    for (size_t done = 0; done < size;) {
        ssize_t k = write(fd, data + done, size - done);
        if (k <= 0) {
            perror(path);
            abort();
        }
        done += (size_t)k;
    }
    close(fd);
    return path;
}

/* Every input starts from the same state: no error, seed 0, the allocation cap. */
static inline void fuzz_begin(void) {
    bk_clear_error();
    bk_manual_seed(0);
    bk__alloc_limit(FUZZ_ALLOC_LIMIT);
}

/* ... and leaves nothing behind (the thread's arena and scratch buffers included). */
static inline void fuzz_end(void) {
    bk__alloc_limit(0);
    bk_thread_cleanup();
}

#endif
