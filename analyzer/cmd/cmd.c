/* Helpers every subcommand shares: error lines, loading recordings, output files, arguments. */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <string.h>
#include <unistd.h>

#include "reader.h"

int cmd_read_exit_code(int err)
{
    switch (err) {
    case 0: return FTPROF_EXIT_OK;
    case RD_ERR_NOT_FTPROF:
    case RD_ERR_CORRUPT: return FTPROF_EXIT_BAD_FORMAT;
    case RD_ERR_TOO_NEW: return FTPROF_EXIT_TOO_NEW;
    case -ENOMEM: return FTPROF_EXIT_NO_MEMORY;
    default: return FTPROF_EXIT_CANNOT_READ; /* RD_ERR_CUT_SHORT too */
    }
}

int cmd_error(int code, const char *subject, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (subject)
        fprintf(stderr, "ftprof: %s: ", subject);
    else
        fputs("ftprof: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int cmd_load(struct profile *p, char *const *paths, size_t n, bool quiet)
{
    return cmd_load_with(p, paths, n, (struct prof_load_how){.quiet = quiet});
}

int cmd_load_with(struct profile *p, char *const *paths, size_t n, struct prof_load_how how)
{
    char err[256] = "";
    size_t failed = 0;
    int rc = prof_load_with(p, paths, n, how, &failed, err, sizeof(err));
    if (rc == 0)
        return FTPROF_EXIT_OK;
    return cmd_error(cmd_read_exit_code(rc), failed < n ? paths[failed] : NULL, "%s", err);
}

FILE *cmd_create_output(const char *path)
{
    /* Exports and flame graphs are made to be shared: the umask decides, as for any file a tool writes.
     * (Recordings, which hold the program's command line and source paths, stay 0600: preload/file.c.) */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) {
        if (errno == EEXIST)
            cmd_error(FTPROF_EXIT_CANNOT_WRITE, path, "already exists; not overwriting it");
        else
            cmd_error(FTPROF_EXIT_CANNOT_WRITE, path, "cannot create: %s", strerror(errno));
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(path);
        cmd_error(FTPROF_EXIT_CANNOT_WRITE, path, "cannot create: %s", strerror(e));
    }
    return f;
}

int cmd_finish_output(FILE *f, const char *path, int write_err)
{
    int e = write_err < 0 ? -write_err : 0;
    if (fflush(f) != 0 && !e)
        e = errno;
    if (!e && ferror(f))
        e = EIO;
    if (!e && fsync(fileno(f)) != 0 && errno != EINVAL)
        e = errno;
    if (fclose(f) != 0 && !e)
        e = errno;
    if (e) {
        unlink(path);
        return cmd_error(FTPROF_EXIT_CANNOT_WRITE, path, "cannot write: %s", strerror(e));
    }
    return FTPROF_EXIT_OK;
}

bool cmd_parse_count(const char *s, size_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || s[0] == '-')
        return false;
    *out = (size_t)v;
    return true;
}

unsigned cmd_terminal_width(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    size_t n;
    if (cols && cmd_parse_count(cols, &n) && n >= 40 && n <= 1000)
        return (unsigned)n;
    /* Not a terminal (a pipe, a file, a CI log): nothing to fit, so leave room for the lock names. */
    return 160;
}
