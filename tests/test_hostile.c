/* test_hostile.c - hostile files, names and states (issue 11, part B): no crash, no hang,
 * no silent change.
 *
 *   - bk_escape: control characters, ESC sequences, C1 controls, bidi overrides and
 *     invalid UTF-8 become visible escapes; the result is valid UTF-8 without control
 *     bytes, idempotent and cut cleanly; every library message goes through it;
 *   - a strict load refuses an extra tensor named "" (bk_module_load_from and
 *     bk_checkpoint_load), and the message names it as "";
 *   - a tensor name with a newline and an ESC sequence cannot forge a line or a control
 *     sequence in the error message that quotes it;
 *   - readers given a FIFO (bk_safetensors_load, bk_idx_load, bk_fashion_mnist_load with a
 *     valid .gz beside it, bk_file_open_read) fail at once with "not a regular file (a
 *     FIFO)" instead of blocking forever (an alarm kills the test if one blocks);
 *   - a generator state with an even increment (0:0, on which the loader's shuffle looped
 *     forever) is refused by bk_rng_set_state and bk_loader_set_rng, which change nothing;
 *   - bk_file_write_atomic replaces a file, removes the leftovers of killed writers (but not
 *     a temporary file a live writer holds), and leaves the old file on failure;
 *   - bk_file_check_writable probes with the writer's own temporary file and leaves no
 *     file behind, nor removes one it did not make;
 *   - bk_checkpoint_load_from loads from a file read once.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, mkfifo, alarm, flock via sys/file.h */
#define _DEFAULT_SOURCE   /* flock */

#include "test.h"
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Valid UTF-8 with no control character (C0, DEL, C1) and no bidi override. */
static bool printable(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c < 0x20 || c == 0x7f) return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0xC2 || c > 0xF4 || i + len > n) return false;
        uint32_t cp = c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
            (cp >= 0x2066 && cp <= 0x2069))
            return false;
        i += len;
    }
    return true;
}

TEST(escape_makes_names_printable) {
    char buf[256], again[256];
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain name.weight", "plain name.weight"},
        {"x\nbrick eval: all good", "x\\nbrick eval: all good"},
        {"\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"},
        {"tab\there\rcr", "tab\\there\\rcr"},
        {"del\x7f bell\x07", "del\\x7f bell\\x07"},
        {"c1 \xc2\x9b"
         "2J",
         "c1 \\u009b2J"}, /* U+009B, CSI */
        {"bidi \xe2\x80\xae"
         "evil",
         "bidi \\u202eevil"}, /* U+202E */
        {"bad \xff\xfe utf8", "bad \\xff\\xfe utf8"},
        {"overlong \xc0\xaf", "overlong \\xc0\\xaf"},
        {"cut \xe2\x82", "cut \\xe2\\x82"},
        {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"back\\slash", "back\\slash"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = bk_escape(cases[i].in, buf, sizeof buf);
        if (strcmp(got, cases[i].out) != 0) {
            fprintf(stderr, "  case %zu: got \"%s\", want \"%s\"\n", i, got, cases[i].out);
            CHECK(!"bk_escape output");
        }
        CHECK(printable(got));
        CHECK(!strcmp(bk_escape(got, again, sizeof again), got)); /* idempotent */
    }
    CHECK(!strcmp(bk_escape(NULL, buf, sizeof buf), "(null)"));
    CHECK(!strcmp(bk_escape("x", NULL, 10), ""));
    CHECK(!strcmp(bk_escape("x", buf, 0), ""));
    /* Too long: cut between whole characters or escapes, "..." at the end, within n. */
    const char *longer = "abc\x1b\xc3\xa9xyz";
    for (size_t n = 1; n <= 16; n++) {
        char small[16];
        memset(small, 'Z', sizeof small);
        const char *got = bk_escape(longer, small, n);
        CHECK(strlen(got) < n);
        CHECK(printable(got));
        size_t len = strlen(got);
        if (n >= 4 && n <= 12) CHECK(len >= 3 && !strcmp(got + len - 3, "..."));
        if (n == 8) CHECK(!strcmp(got, "abc...")); /* "\x1b" (4) does not fit with "..." */
    }
    CHECK(!strcmp(bk_escape(longer, buf, sizeof buf), "abc\\x1b\xc3\xa9xyz"));
}

TEST(library_messages_are_escaped) {
    bk_set_error("a name: %s", "x\ny\x1b[2J\xff");
    CHECK(!strcmp(bk_last_error(), "a name: x\\ny\\x1b[2J\\xff"));
    CHECK(printable(bk_last_error()));
    /* an op that quotes a user-given name: the module lookup */
    bk_module *net = bk_nn_sequential(1, bk_nn_relu());
    CHECK(bk_module_get(net, "evil\n\x1b]0;title\x07") == NULL);
    CHECK(printable(bk_last_error()));
    CHECK(strstr(bk_last_error(), "evil\\n\\x1b]0;title\\x07") != NULL);
    bk_module_free(net);
}

/* Saves a Linear(2, 3) state dict plus the extra tensors `extra` (names) in path. */
static int save_linear_plus(const char *path, int n_extra, const char *const *extra) {
    bk_manual_seed(1);
    bk_module *lin = bk_nn_linear(2, 3);
    bk_param_list *l = bk_module_named(lin, BK_STATE);
    const char *names[8];
    const bk_tensor *ts[8];
    int n = 0;
    for (int i = 0; i < l->n; i++, n++) {
        names[n] = l->names[i];
        ts[n] = l->tensors[i];
    }
    for (int i = 0; i < n_extra; i++, n++) {
        names[n] = extra[i];
        ts[n] = l->tensors[0];
    }
    int rc = bk_safetensors_save(path, n, names, ts, 0, NULL, NULL);
    bk_param_list_free(l);
    bk_module_free(lin);
    return rc;
}

TEST(strict_load_refuses_an_empty_name) {
    const char *path = tpath("empty-name.safetensors");
    const char *extra[1] = {""};
    CHECK(save_linear_plus(path, 1, extra) == 0);
    bk_module *lin = bk_nn_linear(2, 3);
    float before = lin->params[0].tensor->data[0];
    CHECK_FAILS_INT(bk_module_load(lin, path, true), "unexpected: \"\"");
    CHECK(lin->params[0].tensor->data[0] == before); /* nothing changed */
    CHECK(bk_module_load(lin, path, false) == 0);    /* non-strict: extra names are fine */
    CHECK_FAILS_INT(bk_checkpoint_load(path, lin, NULL), "unexpected: \"\"");
    bk_module_free(lin);
}

TEST(hostile_names_cannot_forge_lines) {
    const char *path = tpath("forged.safetensors");
    const char *extra[2] = {"x\nbrick eval: all good, accuracy 1.0000", "\x1b[2J\x1b]0;pwned\x07"};
    CHECK(save_linear_plus(path, 2, extra) == 0);
    bk_module *lin = bk_nn_linear(2, 3);
    bk_clear_error();
    CHECK(bk_module_load(lin, path, true) != 0);
    const char *e = bk_last_error();
    CHECK(printable(e));
    CHECK(strstr(e, "x\\nbrick eval: all good") && strstr(e, "\\x1b[2J\\x1b]0;pwned\\x07"));
    bk_clear_error();
    CHECK(bk_checkpoint_load(path, lin, NULL) != 0);
    CHECK(printable(bk_last_error()) && strstr(bk_last_error(), "x\\nbrick eval"));
    bk_module_free(lin);
}

/* A FIFO at path (nothing ever writes to it: a reader that opens it blocking waits
 * forever, so the test arms an alarm whose default action kills it). */
static void make_fifo(const char *path) {
    unlink(path);
    if (mkfifo(path, 0600) != 0) fprintf(stderr, "  mkfifo %s: %s\n", path, strerror(errno));
}

TEST(readers_refuse_a_fifo_at_once) {
    alarm(60);
    const char *fifo = tpath("model.safetensors");
    make_fifo(fifo);
    CHECK_ERR(bk_safetensors_load(fifo), "not a regular file (a FIFO)");
    bk_module *lin = bk_nn_linear(2, 3);
    CHECK_FAILS_INT(bk_module_load(lin, fifo, true), "not a regular file (a FIFO)");
    CHECK_FAILS_INT(bk_checkpoint_load(fifo, lin, NULL), "not a regular file (a FIFO)");
    bk_module_free(lin);
    CHECK_ERR(bk_file_open_read(fifo), "model.safetensors: not a regular file (a FIFO)");
    CHECK_ERR(bk_file_open_read(tmpdir), "not a regular file (a directory)");
    CHECK_ERR(bk_file_open_read(tpath("missing")), "cannot open: No such file");
    CHECK_ERR(bk_file_open_read("/dev/null"), "not a regular file (a character device)");

    /* a data directory whose plain images file is a FIFO, with a valid .gz beside it */
    const char *dir = tpath("data");
    mkdir(dir, 0700);
    static const char *const files[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++) {
        char src[512], dst[512], cmd[1200];
        snprintf(src, sizeof src, "data/fashion-mnist-subset/%s.gz", files[i]);
        snprintf(dst, sizeof dst, "%s/%s.gz", dir, files[i]);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
        CHECK(system(cmd) == 0);
    }
    char fifo_img[600];
    snprintf(fifo_img, sizeof fifo_img, "%s/t10k-images-idx3-ubyte", dir);
    make_fifo(fifo_img);
    CHECK_ERR(bk_fashion_mnist_load(dir, false), "t10k-images-idx3-ubyte: not a regular file (a FIFO)");
    char gz_img[600], gz_lab[600];
    snprintf(gz_img, sizeof gz_img, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(gz_lab, sizeof gz_lab, "%s/t10k-labels-idx1-ubyte.gz", dir);
    CHECK_ERR(bk_idx_load(fifo_img, gz_lab, 10), "not a regular file (a FIFO)");
    CHECK_ERR(bk_idx_load(gz_img, fifo_img, 10), "not a regular file (a FIFO)");
    /* the gzip files still load (through the descriptor checked, not the path again) */
    bk_dataset *train = bk_fashion_mnist_load(dir, true);
    CHECK(train && train->n == 6000);
    bk_dataset_free(train);
    alarm(0);
}

TEST(even_rng_increments_are_refused) {
    bk_rng r;
    bk_rng_seed(&r, 3);
    bk_rng keep = r;
    CHECK_FAILS_INT(bk_rng_set_state(&r, 0, 0), "increment 0000000000000000 is even");
    CHECK(r.state == keep.state && r.inc == keep.inc);
    CHECK_FAILS_INT(bk_rng_set_state(&r, 12345, 2), "is even");
    CHECK(bk_rng_set_state(&r, 0, 1) == 0 && r.state == 0 && r.inc == 1);
    CHECK(bk_rng_set_state(NULL, 7, 55) == 0 && bk_default_rng()->inc == 55);
    bk_manual_seed(0);

    float x[4] = {0, 1, 2, 3};
    int64_t y[4] = {0, 1, 0, 1};
    bk_dataset *ds = bk_dataset_from_arrays(4, 1, (int64_t[]){1}, x, y, 2, NULL, 0);
    bk_loader *l = bk_loader_new(ds, 2, true, 9, false);
    bk_rng before = bk_loader_rng(l);
    CHECK_FAILS_INT(bk_loader_set_rng(l, (bk_rng){0, 0}), "loader_set_rng: rng_set_state");
    bk_rng after = bk_loader_rng(l);
    CHECK(after.state == before.state && after.inc == before.inc);
    bk_loader_start(l); /* (with 0:0 this looped forever) */
    CHECK(bk_loader_next(l, NULL, NULL, NULL) == 2);
    CHECK(bk_loader_set_rng(l, before) == 0);
    bk_loader_free(l);
    bk_dataset_free(ds);
}

/* Reads a whole small file into buf (NUL-terminated); its length or -1. */
static long slurp(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t k = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[k] = '\0';
    return (long)k;
}

/* Files in tmpdir whose name starts with prefix. */
static int count_prefix(const char *prefix) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return n;
}

TEST(atomic_writer_replaces_and_cleans_up) {
    const char *path = tpath("log.csv");
    char buf[64];
    CHECK(bk_file_write_atomic(path, "one\n", 4) == 0);
    CHECK(slurp(path, buf, sizeof buf) == 4 && !strcmp(buf, "one\n"));
    /* two leftovers of killed writers, and one a live writer holds (locked) */
    const char *dead1 = tpath("log.csv.tmp.AbCdEf"), *dead2 = tpath("log.csv.tmp.123456");
    const char *live = tpath("log.csv.tmp.LiVe01"), *other = tpath("log.csv.tmp.toolong1");
    FILE *f;
    if ((f = fopen(dead1, "w"))) fclose(f);
    if ((f = fopen(dead2, "w"))) fclose(f);
    if ((f = fopen(other, "w"))) fclose(f);
    int live_fd = open(live, O_WRONLY | O_CREAT, 0600);
    CHECK(live_fd >= 0 && flock(live_fd, LOCK_EX | LOCK_NB) == 0);
    CHECK(count_prefix("log.csv.tmp.") == 4);
    CHECK(bk_file_write_atomic(path, "two\n", 4) == 0);
    CHECK(slurp(path, buf, sizeof buf) == 4 && !strcmp(buf, "two\n"));
    CHECK(access(dead1, F_OK) != 0 && access(dead2, F_OK) != 0); /* removed */
    CHECK(access(live, F_OK) == 0);                              /* its writer is alive */
    CHECK(access(other, F_OK) == 0);                             /* not a name the writer makes */
    close(live_fd);                                              /* the writer dies: its file is abandoned */
    CHECK(bk_file_write_atomic(path, "", 0) == 0);
    CHECK(slurp(path, buf, sizeof buf) == 0);
    CHECK(access(live, F_OK) != 0);
    unlink(other);
    CHECK(count_prefix("log.csv.tmp.") == 0);
    /* a failure leaves the old file and no temporary file */
    CHECK(bk_file_write_atomic(path, "three\n", 6) == 0);
    CHECK_FAILS_INT(bk_file_write_atomic(tpath("no/such/dir.csv"), "x", 1),
                    "no/such/dir.csv: cannot create a temporary file");
    CHECK_FAILS_INT(bk_file_write_atomic(NULL, "x", 1), "file_write_atomic: path is NULL");
    CHECK_FAILS_INT(bk_file_write_atomic(path, NULL, 1), "data is NULL");
    CHECK(slurp(path, buf, sizeof buf) == 6 && !strcmp(buf, "three\n"));
    CHECK(count_prefix("log.csv.tmp.") == 0);
}

/* The CLI's check before training (was its own "<path>.probe.<pid>" file, which it
 * unlinked blindly first: another process's file of that name was lost). */
TEST(writable_check_uses_the_writer_s_temporary_file) {
    const char *path = tpath("out.csv");
    char other[600], buf[64];
    snprintf(other, sizeof other, "%s.probe.%ld", path, (long)getpid());
    FILE *f = fopen(other, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    CHECK(bk_file_write_atomic(path, "old\n", 4) == 0);
    CHECK(bk_file_check_writable(path, 1 << 20) == 0);
    CHECK(access(other, F_OK) == 0);                                   /* not its file: left alone */
    CHECK(slurp(path, buf, sizeof buf) == 4 && !strcmp(buf, "old\n")); /* path untouched */
    CHECK(count_prefix("out.csv.tmp.") == 0);                          /* nothing left */
    CHECK(bk_file_check_writable(tpath("new.csv"), 0) == 0);
    CHECK(access(tpath("new.csv"), F_OK) != 0); /* a check creates nothing */
    CHECK_FAILS_INT(bk_file_check_writable(tpath("no/such/dir.csv"), 10),
                    "no/such/dir.csv cannot be written: cannot create a file there: No such file");
    CHECK_FAILS_INT(bk_file_check_writable(NULL, 10), "file_check_writable: path is NULL");
    /* no room: a file size limit of 64 KiB against 1 MiB */
    struct rlimit old_limit, small = {65536, 65536};
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    if (getrlimit(RLIMIT_FSIZE, &old_limit) == 0 && setrlimit(RLIMIT_FSIZE, &small) == 0) {
        CHECK_FAILS_INT(bk_file_check_writable(path, 1 << 20),
                        "out.csv cannot be written: no room for its 1.0 MiB: File too large");
        setrlimit(RLIMIT_FSIZE, &old_limit);
    }
    signal(SIGXFSZ, old_handler);
    CHECK(count_prefix("out.csv.tmp.") == 0);
    unlink(other);
}

TEST(checkpoint_load_from_a_file_read_once) {
    const char *path = tpath("ck.safetensors");
    bk_manual_seed(4);
    bk_module *a = bk_nn_linear(2, 3), *b = bk_nn_linear(2, 3);
    CHECK(bk_checkpoint_save(path, a, NULL, 0, NULL, NULL) == 0);
    bk_safetensors *st = bk_safetensors_load(path);
    CHECK(st != NULL);
    CHECK(bk_checkpoint_load_from(st, b, NULL) == 0);
    bk_safetensors_free(st);
    CHECK(!memcmp(a->params[0].tensor->data, b->params[0].tensor->data, 6 * sizeof(float)));
    CHECK_FAILS_INT(bk_checkpoint_load_from(NULL, b, NULL), "checkpoint_load: file is NULL");
    bk_module_free(a);
    bk_module_free(b);
}

int main(void) {
    if (!files_init("test-hostile", NULL)) return 1;
    RUN(escape_makes_names_printable);
    RUN(library_messages_are_escaped);
    RUN(strict_load_refuses_an_empty_name);
    RUN(hostile_names_cannot_forge_lines);
    RUN(readers_refuse_a_fifo_at_once);
    RUN(even_rng_increments_are_refused);
    RUN(atomic_writer_replaces_and_cleans_up);
    RUN(writable_check_uses_the_writer_s_temporary_file);
    RUN(checkpoint_load_from_a_file_read_once);
    files_cleanup();
    return test_summary("test_hostile");
}
