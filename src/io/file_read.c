/* file_read.c - opening a file named by a user for reading, without ever blocking.
 *
 * fopen of a FIFO blocks until a writer opens it, which may be never; so does a read of a
 * terminal or of some devices. A path that reaches a reader comes from a user (a command
 * line, a directory listing, a data directory where anything may sit under a data file's
 * name), so every reader opens through here: open(O_NONBLOCK) never waits, fstat says what
 * the file is, anything but a regular file is refused, and only then is O_NONBLOCK
 * cleared (it means nothing for a regular file, but the stream should not inherit it).
 */
#define _XOPEN_SOURCE 700 /* open, fstat, fcntl, fdopen, O_CLOEXEC */

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file_kind(mode_t m) {
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a plain file";
}

FILE *bk__open_regular(const char *path, char *why, size_t why_size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    FILE *f = NULL;
    int flags;
    if (fstat(fd, &st) != 0) {
        snprintf(why, why_size, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "not a regular file (%s)", file_kind(st.st_mode));
    } else if ((flags = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
    } else if (!(f = fdopen(fd, "rb"))) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
    }
    if (!f) close(fd);
    return f;
}

FILE *bk_file_open_read(const char *path) {
    if (!path) {
        bk_set_error("file_open_read: path is NULL");
        return NULL;
    }
    char why[256];
    FILE *f = bk__open_regular(path, why, sizeof why);
    if (!f) bk_set_error("%s: %s", path, why);
    return f;
}
