/* fuzz_ckpt.c - what `brick train --resume` reads back from a checkpoint's metadata
 * (tools/train_state.c: train_resume_settings, and everything after it).
 *
 * The input is metadata edits, one per line: "key=value" sets a key (added if absent),
 * "-key" removes one (at most 64 lines). They are applied to the metadata of a valid
 * checkpoint (softmax trained for one epoch on 8 images of 4 x 4, made once per process in
 * the scratch directory), which is saved with its tensors and the edited metadata and
 * resumed with `brick train --resume`, the data and one thread pinned by flags, and
 * --epochs one more than the input's brick.epoch (when it is a number below 1e6), so that
 * an input trains at most one epoch of two steps. cli_main must return 0 (resumed), 1 (a
 * value refused, a model or file that does not load, a loss that diverges) or 2 (a usage
 * error, e.g. nothing left to train), never crash, leak or trip a sanitizer.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include "fuzz.h"
#include "../tools/cli.h"

#define CKPT_MAX_EDITS 64

/* The keys a checkpoint of `brick train` has (tools/train_state.c: common_meta and
 * train_write_checkpoint), in the order it writes them; an edit may add any other. */
static const char *const CKPT_KEYS[] = {"brick.format",     "brick.version",      "brick.arch",
                                        "brick.in_shape",   "brick.n_classes",    "brick.class_names",
                                        "brick.epoch",      "brick.optimizer",    "brick.lr",
                                        "brick.momentum",   "brick.weight_decay", "brick.lr_schedule",
                                        "brick.batch_size", "brick.seed",         "brick.test_loss",
                                        "brick.test_acc",   "brick.epochs",       "brick.step",
                                        "brick.loader_rng", "brick.model_rng",    "brick.threads",
                                        "brick.data",       "brick.history"};
#define CKPT_N_KEYS (int)(sizeof CKPT_KEYS / sizeof CKPT_KEYS[0])

/* Files this target makes in the scratch directory (removed at exit). */
static const char *const CKPT_FILES[] = {"train-images-idx3-ubyte",
                                         "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte",
                                         "t10k-labels-idx1-ubyte",
                                         "base.safetensors",
                                         "base.ckpt.safetensors",
                                         "base.csv",
                                         "base.svg",
                                         "in.ckpt.safetensors",
                                         "o.safetensors",
                                         "o.ckpt.safetensors",
                                         "o.csv",
                                         "o.svg"};
#define CKPT_N_FILES (int)(sizeof CKPT_FILES / sizeof CKPT_FILES[0])

static char ckpt_paths[CKPT_N_FILES][160];

static void ckpt_remove_files(void) {
    for (int i = 0; i < CKPT_N_FILES; i++)
        if (ckpt_paths[i][0]) unlink(ckpt_paths[i]);
}

/* An IDX file: images (n, 4, 4) with pixel values from i, or labels i % 10. */
static void ckpt_write_idx(const char *path, bool images, int n) {
    uint8_t buf[16 + 16 * 16];
    int hdr = images ? 16 : 8, per = images ? 16 : 1;
    const uint32_t words[4] = {images ? 0x803u : 0x801u, (uint32_t)n, 4, 4};
    for (int w = 0; w < hdr / 4; w++)
        for (int b = 0; b < 4; b++) buf[w * 4 + b] = (uint8_t)(words[w] >> (24 - 8 * b));
    for (int i = 0; i < n * per; i++) buf[hdr + i] = images ? (uint8_t)(i * 37 + 11) : (uint8_t)(i % 10);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_ASSERT(fd >= 0 && write(fd, buf, (size_t)(hdr + n * per)) == hdr + n * per);
    close(fd);
}

/* The data set and the checkpoint every input starts from (once per process). */
static const char *ckpt_setup(void) {
    static bool done;
    static char dir[128]; /* (fuzz_path's buffers are reused) */
    if (done) return dir;
    snprintf(dir, sizeof dir, "%s", fuzz_path(""));
    for (int i = 0; i < CKPT_N_FILES; i++)
        snprintf(ckpt_paths[i], sizeof ckpt_paths[i], "%s%s", dir, CKPT_FILES[i]);
    atexit(ckpt_remove_files); /* before fuzz.h's removal of the directory (atexit is LIFO) */
    ckpt_write_idx(ckpt_paths[0], true, 8);
    ckpt_write_idx(ckpt_paths[1], false, 8);
    ckpt_write_idx(ckpt_paths[2], true, 4);
    ckpt_write_idx(ckpt_paths[3], false, 4);
    char *argv[] = {"brick",        "train", "--model",   "softmax", "--data", (char *)dir,   "--epochs", "1",
                    "--batch-size", "4",     "--threads", "1",       "--out",  ckpt_paths[4], NULL};
    cli_parse_only = false;
    FUZZ_ASSERT(cli_main(14, argv) == 0);
    done = true;
    return dir;
}

FUZZ_TARGET(ckpt) {
    fuzz_begin();
    const char *dir = ckpt_setup();
    bk_safetensors *base = bk_safetensors_load(ckpt_paths[5]);
    FUZZ_ASSERT(base);
    /* the metadata: the base's, then the edits in order */
    const char *keys[CKPT_N_KEYS + CKPT_MAX_EDITS], *values[CKPT_N_KEYS + CKPT_MAX_EDITS];
    int n_meta = 0;
    for (int i = 0; i < CKPT_N_KEYS; i++)
        if (bk_safetensors_meta(base, CKPT_KEYS[i])) {
            keys[n_meta] = CKPT_KEYS[i];
            values[n_meta++] = bk_safetensors_meta(base, CKPT_KEYS[i]);
        }
    char *buf = malloc(size + 1);
    FUZZ_ASSERT(buf);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *p = buf;
    for (int e = 0; e < CKPT_MAX_EDITS && p; e++) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        bool remove = *p == '-';
        char *eq = remove ? NULL : strchr(p, '=');
        const char *key = remove ? p + 1 : p, *value = eq ? eq + 1 : NULL;
        if (eq) *eq = '\0';
        if (remove || eq) {
            int k = 0;
            while (k < n_meta && strcmp(keys[k], key)) k++;
            if (remove && k < n_meta) { /* drop it: the last one takes its place */
                keys[k] = keys[n_meta - 1];
                values[k] = values[--n_meta];
            } else if (!remove) {
                keys[k] = key;
                values[k] = value;
                if (k == n_meta) n_meta++;
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    /* the tensors as they were */
    int n = bk_safetensors_count(base);
    const char **names = malloc((size_t)(n > 0 ? n : 1) * sizeof *names);
    const bk_tensor **tensors = malloc((size_t)(n > 0 ? n : 1) * sizeof *tensors);
    FUZZ_ASSERT(names && tensors);
    for (int i = 0; i < n; i++) {
        names[i] = bk_safetensors_name(base, i);
        tensors[i] = bk_safetensors_get(base, names[i]);
    }
    /* a save refuses what safetensors cannot hold (invalid UTF-8, a duplicate or reserved
     * key): then there is nothing to resume */
    if (bk_safetensors_save(ckpt_paths[8], n, names, tensors, n_meta, keys, values) == 0) {
        char epochs[32] = "2";
        const char *done = NULL;
        for (int k = 0; k < n_meta; k++)
            if (!strcmp(keys[k], "brick.epoch")) done = values[k];
        int64_t e;
        if (done && cli_parse_i64(done, &e) && e >= 0 && e < 999999)
            snprintf(epochs, sizeof epochs, "%lld", (long long)e + 1);
        char *argv[] = {"brick",     "train",       "--resume", ckpt_paths[8], "--data",
                        (char *)dir, "--threads",   "1",        "--epochs",    epochs,
                        "--out",     ckpt_paths[9], NULL};
        cli_parse_only = false;
        int rc = cli_main(12, argv);
        FUZZ_ASSERT(rc == 0 || rc == 1 || rc == 2);
    }
    free(names);
    free(tensors);
    free(buf);
    bk_safetensors_free(base);
    fuzz_end();
    return 0;
}
