/* brick/io.h - part of brick.h: files: the atomic writer, safetensors, state dicts and checkpoints.
 * Include <brick.h>, which includes every part in order and states the ownership and
 * error rules once at its top. */
#ifndef BRICK_PART_IO_H
#define BRICK_PART_IO_H

#ifndef BRICK_H
#error "include <brick.h>, not <brick/io.h>"
#endif

/* ------------------------------------------------------------------------------------ */
/* Files                                                                                */
/* ------------------------------------------------------------------------------------ */

/* Opens path for reading ("rb") if it is a regular file, and only then: it is opened
 * non-blocking and checked with fstat before anything is read, so a FIFO, a terminal or a
 * device named like a data file gives an error at once instead of blocking forever (the
 * stream is made blocking again once the type is known). Every brick reader opens its
 * files this way. NULL with the error "<path>: cannot open: <reason>" or "<path>: not a
 * regular file (a FIFO)" (a directory, a character device, ...). Close with fclose. */
FILE *bk_file_open_read(const char *path);
/* Replaces path with the n bytes of data, atomically: a temporary file
 * "<path>.tmp.XXXXXX" in the same directory, written, fsync'ed and renamed over path, so a
 * reader sees the old file or the new one, never a mix; on failure path is left as it was
 * and the temporary file is removed. A write that is killed leaves its temporary file,
 * which the next successful write of path removes (those no running writer holds; the
 * same rule as bk_safetensors_save). A new file gets mode 0666 & ~umask. 0, or -1 with
 * the error "<path>: cannot <step> (<temporary file>): <reason>". */
int bk_file_write_atomic(const char *path, const void *data, size_t n);
/* Checks, before a long run, that bk_file_write_atomic can later write `bytes` bytes to
 * path: creates the temporary file such a write makes, reserves the room
 * (posix_fallocate; not checked on a file system without it) and removes it. path itself
 * is not touched. 0, or -1 with the error "<path> cannot be written: cannot create a file
 * there: <reason>" or "<path> cannot be written: no room for its <n> MiB: <reason>". */
int bk_file_check_writable(const char *path, int64_t bytes);

/* ------------------------------------------------------------------------------------ */
/* Images                                                                               */
/* ------------------------------------------------------------------------------------ */

/* What bk_image_load read and did. */
typedef struct bk_image_info {
    char format[8];        /* "PNG", "JPEG" or "PGM" */
    int64_t height, width; /* as stored */
    int channels;          /* as stored: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA */
    int bits;              /* bits per sample as stored: 8 or 16 */
    double border_mean;    /* mean of the result's outermost pixels, in [0, 1]: near 1 is a
                            * light background (an inverted image for data sets with dark
                            * ones, such as Fashion-MNIST) */
} bk_image_info;
/* Reads an image file (PNG or JPEG, decoded by stb_image when brick is built with libstb;
 * PGM P2 or P5, 8 or 16 bit, always) into a (channels, height, width) float32 heap tensor
 * in [0, 1] that the caller frees: alpha dropped, grey copied to RGB or RGB made grey as
 * torchvision's Grayscale does (0.2989 R + 0.587 G + 0.114 B), then resized as its
 * Resize((height, width)) does on tensors (bilinear, antialiased: src/io/image.c). The
 * format comes from the file's first bytes. channels: 1 or 3; height, width: 1..65536.
 * info (may be NULL) says what was read. NULL with the error "image: <path>: <problem>". */
bk_tensor *bk_image_load(const char *path, int channels, int64_t height, int64_t width, bk_image_info *info);

/* ------------------------------------------------------------------------------------ */
/* safetensors files                                                                    */
/* ------------------------------------------------------------------------------------ */

/* A loaded safetensors file: named float32 tensors and metadata. Tensors stored as F64,
 * F16, BF16, I64 or I32 (what PyTorch writes: a half-precision checkpoint, BatchNorm's
 * int64 num_batches_tracked) are converted to float32 as they are read: F16 and BF16
 * exactly, F64 rounded to nearest, integers exactly up to 2^24. Other dtypes are refused,
 * by name. */
typedef struct bk_safetensors bk_safetensors;

/* Reads and validates the whole file (a regular file only: see bk_file_open_read). NULL
 * with an error naming the file and the problem. */
bk_safetensors *bk_safetensors_load(const char *path);
void bk_safetensors_free(bk_safetensors *st);
/* Number of tensors (-1 with an error for NULL). Tensors are numbered in data order; for
 * files brick wrote, the order they were saved in. */
int bk_safetensors_count(const bk_safetensors *st);
/* The name of tensor i (0 <= i < count), decoded from the header: NUL-terminated UTF-8
 * (it may hold any character but NUL, so escape it before printing: bk_escape). Borrowed
 * from st: valid until bk_safetensors_free(st), do not free. NULL with an error for NULL
 * or an index out of range. */
const char *bk_safetensors_name(const bk_safetensors *st, int i);
/* Borrowed heap tensor owned by st (valid until bk_safetensors_free(st)), or NULL (with an
 * error) if absent. */
bk_tensor *bk_safetensors_get(const bk_safetensors *st, const char *name);
/* The dtype tensor `name` had in the file ("F32", "F16", ...: static, do not free), before
 * its conversion to float32. NULL with an error if absent. */
const char *bk_safetensors_dtype(const bk_safetensors *st, const char *name);
/* Metadata value, or NULL (without an error) when the key is absent. Like a name: decoded
 * UTF-8, borrowed from st, valid until bk_safetensors_free(st), do not free. */
const char *bk_safetensors_meta(const bk_safetensors *st, const char *key);

/* Writes n tensors under the given names, with optional metadata (n_meta key/value
 * pairs), atomically: a temporary file in the same directory, fsync, rename. Names must be
 * unique, valid UTF-8 and not "__metadata__". A new file gets mode 0666 & ~umask; on failure
 * an existing file is left as it was. A save killed midway leaves its temporary file
 * "<path>.tmp.XXXXXX", which loads ignore and the next successful save of path removes
 * (only those no running save holds; docs/reliability.md). */
int bk_safetensors_save(const char *path, int n, const char *const *names, const bk_tensor *const *tensors,
                        int n_meta, const char *const *meta_keys, const char *const *meta_values);

/* A module's state dict (parameters and persistent buffers under dotted names), with the
 * metadata format=pt that PyTorch-side loaders expect. */
int bk_module_save(const bk_module *m, const char *path);
/* Loads a state dict. strict: every name must match in both directions with equal
 * shapes; on any problem nothing is changed and the error lists every missing,
 * unexpected and mis-shaped name. */
int bk_module_load(bk_module *m, const char *path, bool strict);
int bk_module_load_from(bk_module *m, const bk_safetensors *st, bool strict);
/* What a load skipped, as torch's load_state_dict returns it: the module's names the file
 * lacks (missing, left as they were) and the file's names the module lacks (unexpected,
 * ignored), each a ", "-separated list in state-dict and file order (NULL when there are
 * none; heap strings owned by the report: free it with bk_load_report_free). */
typedef struct bk_load_report {
    int n_missing, n_unexpected;
    char *missing, *unexpected;
} bk_load_report;
/* bk_module_load_from that also fills *report (may be NULL) when it succeeds: with strict
 * false, a file of another model loads what matches and says what did not. On failure
 * *report is empty. */
int bk_module_load_report(bk_module *m, const bk_safetensors *st, bool strict, bk_load_report *report);
/* Frees the report's lists and zeroes it. NULL is fine. */
void bk_load_report_free(bk_load_report *report);

/* ------------------------------------------------------------------------------------ */
/* Checkpoints                                                                          */
/* ------------------------------------------------------------------------------------ */

/* Saves m's state dict and, when o is not NULL, the optimizer state under
 * "optim.<state name>", with n_meta string metadata pairs (e.g. "brick.arch"). Atomic:
 * an interrupted save leaves any previous file intact. */
int bk_checkpoint_save(const char *path, const bk_module *m, const bk_optim *o, int n_meta,
                       const char *const *meta_keys, const char *const *meta_values);
/* Loads a checkpoint into m (strict) and, when o is not NULL, the optimizer state (which
 * must be present). On any failure neither m nor o is changed. */
int bk_checkpoint_load(const char *path, bk_module *m, bk_optim *o);
/* The same from a file already read (bk_safetensors_load), so that a caller who needs its
 * metadata too (to rebuild the model) reads the file once and holds its tensors once.
 * st is only read; it may be freed as soon as this returns. */
int bk_checkpoint_load_from(const bk_safetensors *st, bk_module *m, bk_optim *o);

#endif /* BRICK_PART_IO_H */
