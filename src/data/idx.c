/* idx.c - reading IDX files (the MNIST / Fashion-MNIST format) into a bk_dataset.
 *
 * The format (yann.lecun.com/exdb/mnist), all integers big-endian:
 *
 *   [0x00 0x00][type: 0x08 = u8][ndim][ndim x u32 dims][prod(dims) bytes of data]
 *
 * so images are magic 0x00000803 (n, rows, cols) and labels 0x00000801 (n). Only u8 data
 * is read. A file may be gzip-compressed; that is detected from its first two bytes
 * (0x1f 0x8b), not from its name, and read with zlib.
 *
 * Reading trusts nothing in the file:
 *   - the dims' product is computed with overflow checks;
 *   - a plain file's size must equal header + data exactly, checked before anything is
 *     allocated;
 *   - a gzip file's decompressed size is unknown until it has been read, so its buffer
 *     starts at min(header size, IDX_FIRST_CHUNK) and doubles as data actually arrives:
 *     what is allocated is at most twice what was decompressed, whatever the header says;
 *   - corrupt and truncated gzip streams are errors (zlib's CRC and length checks);
 *   - image and label counts must agree, and every label must be < n_classes.
 * Every failure returns NULL with "idx: <path>: <what is wrong>".
 */
#define _XOPEN_SOURCE 700 /* fstat, fileno, dup */

#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_TYPE_U8 0x08
#define IDX_FIRST_CHUNK ((size_t)1 << 20) /* first gzip buffer: 1 MiB */
#define IDX_GZ_READ_MAX ((size_t)1 << 30) /* gzread takes an unsigned; read in 1 GiB steps */

/* Records "idx: <path>: <message>". Always returns false, for `return idx_fail(...)`. */
#define idx_fail(path, ...) bk__file_error("idx", path, __VA_ARGS__)

/* ---- a plain-or-gzip byte source ----------------------------------------------------- */

typedef struct idx_source {
    const char *path;
    FILE *f;       /* plain file, or NULL */
    gzFile gz;     /* gzip file, or NULL */
    uint64_t size; /* plain: bytes on disk */
    uint64_t pos;  /* bytes delivered so far (decompressed for gzip) */
} idx_source;

static bool source_open(idx_source *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    char why[256];
    s->f = bk__open_regular(path, why, sizeof why); /* never blocks (a FIFO is refused) */
    if (!s->f) return idx_fail(path, "%s", why);
    struct stat st;
    if (fstat(fileno(s->f), &st) != 0) return idx_fail(path, "cannot stat: %s", strerror(errno));
    if (st.st_size == 0) return idx_fail(path, "the file is empty");
    s->size = (uint64_t)st.st_size;

    unsigned char head[2] = {0, 0};
    size_t got = fread(head, 1, 2, s->f);
    if (got < 2 && ferror(s->f)) return idx_fail(path, "read error: %s", strerror(errno));
    if (got == 2 && head[0] == 0x1f && head[1] == 0x8b) {
        /* zlib reads the descriptor already checked (opening path again could find another
         * file there by now). */
        if (fseek(s->f, 0, SEEK_SET) != 0) return idx_fail(path, "cannot seek: %s", strerror(errno));
        int fd = dup(fileno(s->f));
        s->gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
        if (!s->gz) {
            int e = errno;
            if (fd >= 0) close(fd);
            return idx_fail(path, "cannot open as gzip: %s", e ? strerror(e) : "out of memory");
        }
        fclose(s->f);
        s->f = NULL;
        gzbuffer(s->gz, 1u << 17);
        return true;
    }
    if (fseek(s->f, 0, SEEK_SET) != 0) return idx_fail(path, "cannot seek: %s", strerror(errno));
    return true;
}

static void source_close(idx_source *s) {
    if (s->f) fclose(s->f);
    if (s->gz) gzclose(s->gz);
    s->f = NULL;
    s->gz = NULL;
}

/* Reads up to n bytes; returns how many (fewer only at the end of the data), or -1 with an
 * error (I/O error, corrupt or truncated gzip stream). */
static int64_t source_read(idx_source *s, void *buf, size_t n) {
    size_t done = 0;
    if (s->f) {
        done = fread(buf, 1, n, s->f);
        if (done < n && ferror(s->f)) {
            idx_fail(s->path, "read error at byte %" PRIu64 ": %s", s->pos + done, strerror(errno));
            return -1;
        }
    } else {
        while (done < n) {
            size_t want = n - done < IDX_GZ_READ_MAX ? n - done : IDX_GZ_READ_MAX;
            int got = gzread(s->gz, (unsigned char *)buf + done, (unsigned)want);
            int errnum = Z_OK;
            const char *zmsg = gzerror(s->gz, &errnum);
            if (got < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR)) {
                /* zlib's message is "<fd:N>: <what>" (gzdopen); keep the <what>. (No byte
                 * offset: zlib decompresses ahead of what it has delivered.) */
                const char *colon = zmsg && !strncmp(zmsg, "<fd:", 4) ? strstr(zmsg, ": ") : NULL;
                if (colon) zmsg = colon + 2;
                idx_fail(s->path, "corrupt gzip stream (%s)",
                         errnum == Z_ERRNO ? strerror(errno)
                         : zmsg            ? zmsg
                                           : "unknown error");
                return -1;
            }
            done += (size_t)got;
            if (got == 0) {
                /* zlib reports a stream cut short as Z_BUF_ERROR at its end. */
                if (errnum == Z_BUF_ERROR) {
                    idx_fail(s->path,
                             "truncated gzip stream: it ends after %" PRIu64
                             " decompressed bytes without its end marker",
                             s->pos + done);
                    return -1;
                }
                break;
            }
        }
    }
    s->pos += done;
    return (int64_t)done;
}

/* ---- one IDX file -------------------------------------------------------------------- */

typedef struct idx_file {
    int ndim;
    int64_t dims[3];
    int64_t count; /* prod(dims) = data bytes */
    uint8_t *data; /* malloc'ed, count bytes */
} idx_file;

static const char *kind_name(int ndim) {
    return ndim == 3 ? "an images file" : ndim == 1 ? "a labels file" : NULL;
}

/* Reads path, which must be a u8 IDX file with want_ndim (3 or 1) dims, into *out. */
static bool idx_read(const char *path, int want_ndim, idx_file *out) {
    memset(out, 0, sizeof *out);
    idx_source s;
    bool ok = false;
    uint8_t *data = NULL;
    if (!source_open(&s, path)) goto done;
    const char *what = s.gz ? "decompressed data" : "file";

    /* Header: magic, then the dims. */
    unsigned char magic[4];
    int64_t got = source_read(&s, magic, 4);
    if (got < 0) goto done;
    if (got == 0 && s.gz) {
        idx_fail(path, "the file decompresses to nothing");
        goto done;
    }
    if (got < 4) {
        idx_fail(path, "%s is %" PRId64 " bytes, too short for an IDX header (4 bytes of magic)", what, got);
        goto done;
    }
    uint32_t m = (uint32_t)magic[0] << 24 | (uint32_t)magic[1] << 16 | (uint32_t)magic[2] << 8 | magic[3];
    if (magic[0] != 0 || magic[1] != 0) {
        idx_fail(path,
                 "not an IDX file: magic number 0x%08" PRIx32
                 " (an IDX file starts with "
                 "two zero bytes, then the type 0x08, then the number of dims)",
                 m);
        goto done;
    }
    if (magic[2] != IDX_TYPE_U8) {
        idx_fail(path,
                 "IDX element type 0x%02x is not supported (only 0x08, unsigned bytes; "
                 "magic number 0x%08" PRIx32 ")",
                 magic[2], m);
        goto done;
    }
    int ndim = magic[3];
    if (ndim != want_ndim) {
        /* Name a swapped images/labels file as such: the likeliest mistake. */
        const char *kind = kind_name(ndim);
        char found[64];
        if (kind) snprintf(found, sizeof found, "%s (%d dim%s)", kind, ndim, ndim == 1 ? "" : "s");
        else snprintf(found, sizeof found, "%d dim%s", ndim, ndim == 1 ? "" : "s");
        idx_fail(path, "expected an IDX %s file (%d dim%s), found %s", want_ndim == 3 ? "images" : "labels",
                 want_ndim, want_ndim == 1 ? "" : "s", found);
        goto done;
    }
    unsigned char raw[12];
    got = source_read(&s, raw, 4 * (size_t)ndim);
    if (got < 0) goto done;
    if (got < 4 * ndim) {
        idx_fail(path, "%s ends inside the IDX header (%" PRId64 " of %d bytes of dims)", what, got,
                 4 * ndim);
        goto done;
    }
    int64_t count = 1;
    char dims_str[96];
    size_t k = 0;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *b = raw + 4 * i;
        out->dims[i] = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
        k += (size_t)snprintf(dims_str + k, sizeof dims_str - k, "%s%" PRId64, i ? " x " : "", out->dims[i]);
    }
    for (int i = 0; i < ndim; i++) {
        if (!bk__mul_ok(count, out->dims[i], &count) || (uint64_t)count > SIZE_MAX / sizeof(float)) {
            idx_fail(path, "dimensions %s overflow: their product is too large", dims_str);
            goto done;
        }
    }
    for (int i = 0; i < ndim; i++) {
        if (out->dims[i] == 0) {
            idx_fail(path, "dimensions %s: a zero dimension leaves no data", dims_str);
            goto done;
        }
    }
    uint64_t header = 4 + 4 * (uint64_t)ndim;

    /* Data. */
    if (s.f) {
        /* Plain: the file size says everything, before allocating. */
        uint64_t have = s.size - header;
        if (have < (uint64_t)count) {
            idx_fail(path,
                     "file is shorter than its header says: dimensions %s need %" PRId64
                     " data bytes, the file has %" PRIu64,
                     dims_str, count, have);
            goto done;
        }
        if (have > (uint64_t)count) {
            idx_fail(path,
                     "file is longer than its header says: dimensions %s need %" PRId64
                     " data bytes, the file has %" PRIu64 " (%" PRIu64 " extra)",
                     dims_str, count, have, have - (uint64_t)count);
            goto done;
        }
        data = bk__malloc((size_t)count);
        if (!data) {
            idx_fail(path, "out of memory for %" PRId64 " bytes", count);
            goto done;
        }
        got = source_read(&s, data, (size_t)count);
        if (got < 0) goto done;
        if (got != count) { /* the file changed under us */
            idx_fail(path, "file is shorter than its header says: read %" PRId64 " of %" PRId64 " data bytes",
                     got, count);
            goto done;
        }
    } else {
        /* gzip: grow with what actually decompresses. */
        size_t cap = (size_t)count < IDX_FIRST_CHUNK ? (size_t)count : IDX_FIRST_CHUNK;
        size_t have = 0;
        data = bk__malloc(cap);
        if (!data) {
            idx_fail(path, "out of memory for %zu bytes", cap);
            goto done;
        }
        for (;;) {
            got = source_read(&s, data + have, cap - have);
            if (got < 0) goto done;
            have += (size_t)got;
            if (have < cap) break; /* end of the stream */
            if (have == (size_t)count) break;
            size_t next = cap > (size_t)count / 2 ? (size_t)count : 2 * cap;
            uint8_t *grown = bk__realloc(data, next);
            if (!grown) {
                idx_fail(path, "out of memory for %zu bytes", next);
                goto done;
            }
            data = grown;
            cap = next;
        }
        if (have < (size_t)count) {
            idx_fail(path,
                     "decompressed data is shorter than its header says: dimensions %s need "
                     "%" PRId64 " data bytes, the file has %zu",
                     dims_str, count, have);
            goto done;
        }
        /* Anything after the data? (Also makes zlib check the stream's CRC and length.) */
        unsigned char probe[1];
        got = source_read(&s, probe, 1);
        if (got < 0) goto done;
        if (got > 0) {
            idx_fail(path,
                     "decompressed data is longer than its header says: dimensions %s need "
                     "%" PRId64 " data bytes, more follow",
                     dims_str, count);
            goto done;
        }
    }
    out->ndim = ndim;
    out->count = count;
    out->data = data;
    data = NULL;
    ok = true;
done:
    bk__free(data);
    source_close(&s);
    return ok;
}

/* ---- data sets ----------------------------------------------------------------------- */

bk_dataset *bk_idx_load(const char *images_path, const char *labels_path, int n_classes) {
    if (!images_path || !labels_path) {
        bk_set_error("idx: %s path is NULL", images_path ? "labels" : "images");
        return NULL;
    }
    if (n_classes < 1 || n_classes > 256) {
        bk_set_error("idx: n_classes %d is outside 1..256 (labels are bytes)", n_classes);
        return NULL;
    }
    idx_file img = {0}, lab = {0};
    bk_dataset *ds = NULL;
    if (!idx_read(images_path, 3, &img) || !idx_read(labels_path, 1, &lab)) goto fail;
    if (img.dims[0] != lab.dims[0]) {
        bk_set_error("idx: %s has %" PRId64 " images but %s has %" PRId64 " labels", images_path, img.dims[0],
                     labels_path, lab.dims[0]);
        goto fail;
    }
    int64_t n = img.dims[0];
    for (int64_t i = 0; i < n; i++) {
        if (lab.data[i] >= n_classes) {
            idx_fail(labels_path, "label %d at index %" PRId64 " is not a class (expected 0..%d)",
                     lab.data[i], i, n_classes - 1);
            goto fail;
        }
    }

    ds = bk__calloc(1, sizeof *ds);
    if (!ds) goto oom;
    ds->n = n;
    ds->ndim = 3;
    ds->shape[0] = 1;
    ds->shape[1] = img.dims[1];
    ds->shape[2] = img.dims[2];
    ds->sample_numel = img.dims[1] * img.dims[2];
    ds->n_classes = n_classes;
    /* img.count floats fit in size_t: idx_read checked it. */
    ds->x = bk__malloc((size_t)img.count * sizeof(float));
    ds->y = bk__malloc((size_t)n * sizeof(int64_t));
    if (!ds->x || !ds->y) goto oom;
    float scale[256];
    for (int v = 0; v < 256; v++) scale[v] = (float)v / 255.0f;
    for (int64_t i = 0; i < img.count; i++) ds->x[i] = scale[img.data[i]];
    for (int64_t i = 0; i < n; i++) ds->y[i] = lab.data[i];
    bk__free(img.data);
    bk__free(lab.data);
    return ds;
oom:
    bk_set_error("idx: out of memory for %" PRId64 " samples from %s", img.dims[0], images_path);
fail:
    bk_dataset_free(ds);
    bk__free(img.data);
    bk__free(lab.data);
    return NULL;
}

/* Fashion-MNIST (github.com/zalandoresearch/fashion-mnist), in label order. */
static const char *const FASHION_MNIST_CLASSES[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

/* Writes dir/name or dir/name.gz (the first that exists, plain preferred) into buf. */
static bool find_file(const char *dir, const char *name, char *buf, size_t n) {
    static const char *const suffixes[2] = {"", ".gz"};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        int k = snprintf(buf, n, "%s/%s%s", dir, name, suffixes[i]);
        if (k < 0 || (size_t)k >= n) return false;
        if (stat(buf, &st) == 0) return true;
    }
    return false;
}

/* The first labels of Fashion-MNIST's training and test files (the bundled subset is cut
 * from their starts): how its files, which have MNIST's names, are told apart from
 * MNIST's and other data sets in the same format. By chance another data set matches one
 * with probability 10^-16. */
#define FASHION_HEAD 16
static const int64_t FASHION_TRAIN_HEAD[FASHION_HEAD] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9};
static const int64_t FASHION_TEST_HEAD[FASHION_HEAD] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1};

static bool is_fashion_mnist(const bk_dataset *ds, bool train) {
    if (ds->n < FASHION_HEAD) return false;
    const int64_t *head = train ? FASHION_TRAIN_HEAD : FASHION_TEST_HEAD;
    return !memcmp(ds->y, head, sizeof FASHION_TRAIN_HEAD);
}

#define NAMES_MAX_BYTES 65536 /* classes.txt: at most 256 names of 255 bytes, and newlines */

/* dir/classes.txt, one class name per line, into ds: the names and n_classes = their
 * count, every label below it. false with an error naming the file and the line. */
static bool read_class_names(bk_dataset *ds, const char *path) {
    char why[256];
    FILE *f = bk__open_regular(path, why, sizeof why);
    if (!f) return bk__file_error("idx", path, "%s", why);
    char *text = bk__malloc(NAMES_MAX_BYTES + 1);
    size_t len = text ? fread(text, 1, NAMES_MAX_BYTES + 1, f) : 0;
    bool read_error = text && ferror(f);
    fclose(f);
    if (!text) return bk__file_error("idx", path, "out of memory");
    if (read_error || len > NAMES_MAX_BYTES || memchr(text, '\0', len)) {
        bk__free(text);
        return bk__file_error("idx", path, "%s",
                              read_error              ? "read error"
                              : len > NAMES_MAX_BYTES ? "larger than 64 KiB"
                                                      : "a NUL byte (not a text file)");
    }
    text[len] = '\0';
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = '\0';
    int n = 0;
    for (size_t i = 0; i <= len; i++) n += i == len || text[i] == '\n';
    if (len == 0 || n > 256) {
        bk__free(text);
        return bk__file_error("idx", path,
                              len ? "%d names, more than 256 classes"
                                  : "no class names (expected one per line)",
                              n);
    }
    size_t head = (size_t)n * sizeof(char *);
    char *block = bk__malloc(head + len + 1);
    if (!block) {
        bk__free(text);
        return bk__file_error("idx", path, "out of memory");
    }
    const char **names = (const char **)(void *)block;
    char *copy = block + head;
    memcpy(copy, text, len + 1);
    bk__free(text);
    char *s = copy;
    for (int k = 0; k < n; k++) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        size_t l = strlen(s);
        if (l > 0 && s[l - 1] == '\r') s[--l] = '\0';
        if (l == 0 || l > 255) {
            bk__free(block);
            return bk__file_error("idx", path, "line %d: %s", k + 1,
                                  l ? "a name longer than 255 bytes" : "an empty name");
        }
        names[k] = s;
        s = nl ? nl + 1 : s + l;
    }
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->y[i] >= n) {
            bk__free(block);
            return bk__file_error("idx", path, "%d names, but sample %" PRId64 " has label %" PRId64, n, i,
                                  ds->y[i]);
        }
    ds->owned = block;
    ds->class_names = names;
    ds->n_classes = n;
    return true;
}

bk_dataset *bk_fashion_mnist_load(const char *dir, bool train) {
    if (!dir) {
        bk_set_error("fashion_mnist: directory is NULL");
        return NULL;
    }
    const char *img_name = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    const char *lab_name = train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
    const char *split = train ? "training" : "test";
    char img_path[4096], lab_path[4096];
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        const char *why = stat(dir, &st) != 0 ? strerror(errno) : "not a directory";
        bk_set_error("fashion_mnist: %s: %s (looked for %s/%s[.gz] and %s/%s[.gz])", dir, why, dir, img_name,
                     dir, lab_name);
        return NULL;
    }
    bool have_img = find_file(dir, img_name, img_path, sizeof img_path);
    bool have_lab = find_file(dir, lab_name, lab_path, sizeof lab_path);
    if (!have_img || !have_lab) {
        char looked[512] = "";
        size_t k = 0;
        if (!have_img)
            k += (size_t)snprintf(looked + k, sizeof looked - k, "%s or %s.gz", img_name, img_name);
        if (!have_lab && k < sizeof looked)
            snprintf(looked + k, sizeof looked - k, "%s%s or %s.gz", k ? ", and " : "", lab_name, lab_name);
        bk_set_error("fashion_mnist: the %s set is not in %s: found no %s", split, dir, looked);
        return NULL;
    }
    bk_dataset *ds = bk_idx_load(img_path, lab_path, 10);
    if (!ds) return NULL;
    char names_path[4096];
    if (snprintf(names_path, sizeof names_path, "%s/classes.txt", dir) < (int)sizeof names_path &&
        stat(names_path, &st) == 0) {
        if (!read_class_names(ds, names_path)) {
            bk_dataset_free(ds);
            return NULL;
        }
    } else if (is_fashion_mnist(ds, train)) {
        ds->class_names = FASHION_MNIST_CLASSES;
    }
    return ds;
}
