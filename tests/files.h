/* files.h - the scaffolding of the tests that write, corrupt and read back files
 * (test_safetensors, test_checkpoint, test_reader_edges, test_faults, test_hostile,
 * test_crash_save), written once:
 *   - a private directory per test binary (files_init / files_cleanup) and paths in it
 *     (tpath);
 *   - whole files written and read back, and crafted safetensors files (any header
 *     bytes, any declared length);
 *   - the temporary files saves leave ("<path>.tmp.XXXXXX");
 *   - a model + optimizer state as one array of floats, for "changed nothing" checks.
 * Include after test.h, with _XOPEN_SOURCE 700 (or _GNU_SOURCE) defined first. All
 * functions are static inline, so a test uses what it needs and nothing warns.
 */
#ifndef BRICK_TEST_FILES_H
#define BRICK_TEST_FILES_H

#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[128];

/* Makes <parent>/brick-<name>-XXXXXX (parent NULL: /tmp). False, with a message, if not. */
static inline bool files_init(const char *name, const char *parent) {
    snprintf(tmpdir, sizeof tmpdir, "%s/brick-%s-XXXXXX", parent ? parent : "/tmp", name);
    if (mkdtemp(tmpdir)) return true;
    fprintf(stderr, "test_%s: mkdtemp %s: %s\n", name, tmpdir, strerror(errno));
    return false;
}

/* tmpdir/name, in one of 16 rotating static buffers. */
static inline const char *tpath(const char *name) {
    static char bufs[16][512];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

/* Removes path and, for a directory, everything below it (made writable first: tests
 * leave read-only directories behind). */
static inline void remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(path);
        return;
    }
    chmod(path, 0700);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[1024];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub) remove_tree(sub);
    }
    if (d) closedir(d);
    rmdir(path);
}

static inline void files_cleanup(void) { remove_tree(tmpdir); }

/* Writes the n bytes at p as path. */
static inline bool write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = (n == 0 || fwrite(p, 1, n, f) == n);
    return fclose(f) == 0 && ok;
}

/* A safetensors file as a hostile writer makes it: an 8-byte little-endian header_len,
 * the first header_len bytes of header (the length may lie), then data_len zero bytes. */
static inline bool write_st_len(const char *path, const char *header, size_t header_len, size_t data_len) {
    unsigned char *buf = calloc(8 + header_len + data_len + 1, 1);
    if (!buf) return false;
    for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)header_len >> (8 * k));
    memcpy(buf + 8, header, header_len);
    bool ok = write_file(path, buf, 8 + header_len + data_len);
    free(buf);
    return ok;
}

static inline bool write_st(const char *path, const char *header, size_t data_len) {
    return write_st_len(path, header, strlen(header), data_len);
}

/* The whole file, malloc'ed (*n bytes), or NULL. */
static inline unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    for (size_t k; buf && (k = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += k;
        if (len == cap) {
            unsigned char *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

/* Does path hold exactly these n bytes? */
static inline bool file_is(const char *path, const unsigned char *bytes, size_t n) {
    size_t m;
    unsigned char *now = read_file(path, &m);
    bool same = now && m == n && memcmp(now, bytes, n) == 0;
    free(now);
    return same;
}

#define MAX_TEMPS 64

/* The temporary files of saves in dir (names holding ".tmp."): how many there are (with
 * names NULL), or the first MAX_TEMPS of them into names and their number; -1 if dir
 * cannot be read. */
static inline int list_temp_files(const char *dir, char names[][256]) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".tmp.")) continue;
        if (names && count == MAX_TEMPS) break;
        if (names) snprintf(names[count], 256, "%s", e->d_name);
        count++;
    }
    closedir(d);
    return count;
}

static inline int count_temp_files(const char *dir) { return list_temp_files(dir, NULL); }

/* Linear(6, 8) -> ReLU -> Linear(8, 3), weights from seed. */
static inline bk_module *small_mlp(uint64_t seed) {
    bk_manual_seed(seed);
    return bk_nn_sequential(3, bk_nn_linear(6, 8), bk_nn_relu(), bk_nn_linear(8, 3));
}

/* Every state-dict and optimizer-state value (o may be NULL), concatenated (malloc'ed,
 * *n floats). */
static inline float *snapshot(const bk_module *m, const bk_optim *o, int64_t *n) {
    bk_param_list *l = bk_module_named(m, BK_STATE);
    int64_t total = 0;
    for (int i = 0; i < l->n; i++) total += l->tensors[i]->numel;
    for (int i = 0; o && i < bk_optim_state_count(o); i++) total += bk_optim_state_tensor(o, i)->numel;
    float *buf = malloc((size_t)(total + 1) * sizeof *buf), *p = buf;
    for (int i = 0; i < l->n; i++) {
        memcpy(p, l->tensors[i]->data, (size_t)l->tensors[i]->numel * sizeof *p);
        p += l->tensors[i]->numel;
    }
    for (int i = 0; o && i < bk_optim_state_count(o); i++) {
        const bk_tensor *t = bk_optim_state_tensor(o, i);
        memcpy(p, t->data, (size_t)t->numel * sizeof *p);
        p += t->numel;
    }
    bk_param_list_free(l);
    *n = total;
    return buf;
}

/* Bitwise equality of the whole model + optimizer state with a snapshot. */
static inline bool same_as(const bk_module *m, const bk_optim *o, const float *snap, int64_t n) {
    int64_t k;
    float *now = snapshot(m, o, &k);
    bool same = k == n && !memcmp(now, snap, (size_t)n * sizeof *now);
    free(now);
    return same;
}

/* Sets every state-dict and optimizer-state value (o may be NULL) to base + step,
 * base + 2 step, ... in order, so that no two states made from different bases agree. */
static inline void fill_pattern(bk_module *m, bk_optim *o, float base, float step) {
    bk_param_list *l = bk_module_named(m, BK_STATE);
    float v = base;
    for (int i = 0; l && i < l->n; i++)
        for (int64_t j = 0; j < l->tensors[i]->numel; j++) l->tensors[i]->data[j] = v += step;
    for (int i = 0; o && i < bk_optim_state_count(o); i++) {
        bk_tensor *t = bk_optim_state_tensor(o, i);
        for (int64_t j = 0; j < t->numel; j++) t->data[j] = v += step;
    }
    bk_param_list_free(l);
}

/* Do b with ob and a with oa hold bitwise the same state (optimizers may be NULL)? */
static inline bool same_state(const bk_module *a, const bk_optim *oa, const bk_module *b,
                              const bk_optim *ob) {
    int64_t n;
    float *snap = snapshot(a, oa, &n);
    bool same = same_as(b, ob, snap, n);
    free(snap);
    return same;
}

#endif /* BRICK_TEST_FILES_H */
