/* atomic_file.c - replacing a file atomically, and cleaning up after writers that died.
 *
 * Every file brick writes (safetensors models and checkpoints, the CLI's CSV and SVG) goes
 * through here:
 *   1. bk__atomic_open creates "<path>.tmp.XXXXXX" next to path (same directory, so that
 *      the rename stays on one file system) and takes an exclusive flock() on it;
 *   2. the caller writes the stream;
 *   3. bk__atomic_commit flushes, fsyncs, closes, renames the temporary file over path,
 *      fsyncs the directory (so the rename itself is durable) and removes leftovers;
 *   on any failure (bk__atomic_fail) the temporary file is removed and path is untouched.
 * So a reader sees the old file or the new one, never a mix.
 *
 * Leftover temporary files. A writer that is killed (SIGKILL, power loss) cannot remove
 * its "<path>.tmp.XXXXXX"; readers never look at such files, and the next successful
 * write of the same path removes them. A writer holds the flock on its temporary file
 * from creating it until after the rename, and the kernel drops the lock when the writer
 * dies, so "no one holds the lock" is exactly "abandoned": the cleanup removes only the
 * files whose lock it can take, never one another thread or process is still writing
 * (docs/reliability.md, "Killed while saving"). On a file system without flock nothing is
 * locked and nothing is removed: a leftover stays, nothing is lost.
 */
#define _XOPEN_SOURCE 700 /* open, fstat, fsync, O_CLOEXEC */
#define _DEFAULT_SOURCE   /* flock (BSD and Linux; not in POSIX) */

#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEMP_SUFFIX ".tmp."
#define TEMP_RANDOM 6 /* characters after TEMP_SUFFIX */
static const char TEMP_CHARS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* Takes the writer's lock on a temporary file just created as tmp. False when a cleanup
 * got to the file first (between open and flock) and is removing it: the caller then
 * picks another name. A file system without flock gives an unlocked file, which no
 * cleanup ever removes (it removes only files whose lock it holds). */
static bool lock_new_temp(int fd, const char *tmp) {
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) return errno != EWOULDBLOCK;
    struct stat a, b; /* still linked under its name? */
    return fstat(fd, &a) == 0 && stat(tmp, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Creates "<path>.tmp.XXXXXX" exclusively, mode 0666 less the umask (what fopen gives),
 * and locks it (lock_new_temp). mkstemp would pick the name the same way but creates the
 * file 0600, and a checkpoint should get the permissions of any other file its owner
 * writes. */
static int open_temp(const char *path, char *tmp, size_t tmp_size) {
    const char *chars = TEMP_CHARS;
    static _Thread_local uint64_t counter;
    struct timespec ts = {0, 0};
    timespec_get(&ts, TIME_UTC);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32 ^
                 (uint64_t)(uintptr_t)&counter ^ ++counter << 48;
    for (int attempt = 0; attempt < 100; attempt++) {
        x += 0x9E3779B97F4A7C15u; /* splitmix64 */
        uint64_t z = x;
        z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9u;
        z = (z ^ z >> 27) * 0x94D049BB133111EBu;
        z ^= z >> 31;
        char suffix[TEMP_RANDOM + 1];
        for (int k = 0; k < TEMP_RANDOM; k++, z /= 62) suffix[k] = chars[z % 62];
        suffix[TEMP_RANDOM] = '\0';
        snprintf(tmp, tmp_size, "%s" TEMP_SUFFIX "%s", path, suffix);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) return -1;
        if (fd >= 0) {
            if (lock_new_temp(fd, tmp)) return fd;
            close(fd); /* a cleanup is removing it */
        }
    }
    errno = EEXIST;
    return -1;
}

/* Removes the temporary files of earlier saves of path that were killed before they could
 * remove them: "<path>.tmp.XXXXXX" files whose writer's lock can be taken (their writer
 * is gone). Best effort and silent: the save itself has succeeded. */
static void remove_stale_temps(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t base_len = strlen(base), path_len = strlen(path), suffix_len = strlen(TEMP_SUFFIX);
    char *dir = slash ? bk__strdup(path) : bk__strdup(".");
    char *full = bk__malloc(path_len + suffix_len + TEMP_RANDOM + 1);
    DIR *d = NULL;
    if (dir && full) {
        if (slash) dir[slash == path ? 1 : slash - path] = '\0';
        d = opendir(dir);
    }
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *name = e->d_name;
        if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, TEMP_SUFFIX, suffix_len) != 0)
            continue;
        const char *rnd = name + base_len + suffix_len;
        if (strlen(rnd) != TEMP_RANDOM || strspn(rnd, TEMP_CHARS) != TEMP_RANDOM) continue;
        memcpy(full, path, path_len);
        strcpy(full + path_len, name + base_len);
        int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) continue;
        struct stat a, b;
        if (fstat(fd, &a) == 0 && S_ISREG(a.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            stat(full, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            unlink(full);
        close(fd); /* drops the lock */
    }
    if (d) closedir(d);
    bk__free(full);
    bk__free(dir);
}

/* Makes the rename itself durable. Best effort: some file systems refuse to sync a
 * directory, and the data is safely in place either way. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? bk__strdup(path) : bk__strdup(".");
    if (!dir) return;
    if (slash) dir[slash == path ? 1 : slash - path] = '\0';
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    bk__free(dir);
}

/* Records "<who>: <path>: cannot <step> (<tmp>): <reason>" (or without "<who>: "). */
static void atomic_error(bk__atomic_file *a, const char *step, int err) {
    a->err = err;
    bk_set_error("%s%s%s: cannot %s (%s): %s", a->who ? a->who : "", a->who ? ": " : "", a->path, step,
                 a->tmp ? a->tmp : "?", strerror(err));
}

/* Closes the stream and the lock and removes the temporary file (which exists once
 * open_temp succeeded). */
static void atomic_discard(bk__atomic_file *a) {
    if (a->f) fclose(a->f);
    if (a->fd >= 0) {
        unlink(a->tmp);
        close(a->fd);
    }
    a->f = NULL;
    a->fd = -1;
    bk__free(a->tmp);
    a->tmp = NULL;
}

FILE *bk__atomic_open(bk__atomic_file *a, const char *path, const char *who) {
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->path = path;
    a->who = who;
    size_t tmp_size = strlen(path) + sizeof TEMP_SUFFIX + TEMP_RANDOM;
    a->tmp = bk__malloc(tmp_size);
    if (!a->tmp) {
        a->err = ENOMEM;
        bk_set_error("%s%s%s: out of memory", who ? who : "", who ? ": " : "", path);
        return NULL;
    }
    /* fd holds the temporary file's lock until after the rename; the stream writes through
     * a duplicate, so that closing the stream before the rename keeps the lock. */
    a->fd = open_temp(path, a->tmp, tmp_size);
    int wfd = a->fd >= 0 ? fcntl(a->fd, F_DUPFD_CLOEXEC, 0) : -1;
    a->f = wfd >= 0 ? fdopen(wfd, "wb") : NULL;
    if (!a->f) {
        int e = errno;
        if (wfd >= 0) close(wfd);
        atomic_error(a, "create a temporary file", e);
        atomic_discard(a);
        return NULL;
    }
    return a->f;
}

void bk__atomic_fail(bk__atomic_file *a, const char *step) {
    atomic_error(a, step, errno ? errno : EIO);
    atomic_discard(a);
}

int bk__atomic_commit(bk__atomic_file *a) {
    const char *step = "write";
    if (fflush(a->f) != 0) goto fail;
    step = "sync";
    if (fsync(fileno(a->f)) != 0) goto fail;
    step = "close";
    int rc = fclose(a->f);
    a->f = NULL;
    if (rc != 0) goto fail;
    step = "rename the temporary file";
    if (rename(a->tmp, a->path) != 0) goto fail;
    close(a->fd); /* drops the lock, after the rename */
    a->fd = -1;
    sync_parent_dir(a->path);
    remove_stale_temps(a->path);
    bk__free(a->tmp);
    a->tmp = NULL;
    return 0;
fail:
    bk__atomic_fail(a, step);
    return -1;
}

int bk_file_write_atomic(const char *path, const void *data, size_t n) {
    if (!path) {
        bk_set_error("file_write_atomic: path is NULL");
        return -1;
    }
    if (!data && n > 0) {
        bk_set_error("file_write_atomic: %s: data is NULL", path);
        return -1;
    }
    bk__atomic_file a;
    FILE *f = bk__atomic_open(&a, path, NULL);
    if (!f) return -1;
    if (n > 0 && fwrite(data, 1, n, f) != n) return bk__atomic_fail(&a, "write"), -1;
    return bk__atomic_commit(&a);
}

int bk_file_check_writable(const char *path, int64_t bytes) {
    if (!path) {
        bk_set_error("file_check_writable: path is NULL");
        return -1;
    }
    /* The very temporary file a write would make: its name, place and lock, so a probe
     * killed midway leaves what a killed write leaves, and the next write removes it. */
    bk__atomic_file a;
    if (!bk__atomic_open(&a, path, NULL)) {
        bk_set_error("%s cannot be written: cannot create a file there: %s", path, strerror(a.err));
        return -1;
    }
    /* A file system without fallocate is not checked for room. */
    int err = bytes > 0 ? posix_fallocate(a.fd, 0, (off_t)bytes) : 0;
    atomic_discard(&a);
    if (err && err != EOPNOTSUPP && err != EINVAL && err != ENOSYS) {
        bk_set_error("%s cannot be written: no room for its %.1f MiB: %s", path, (double)bytes / 1048576.0,
                     strerror(err));
        return -1;
    }
    return 0;
}
