/* ftprof pause FILE|PID, ftprof resume FILE|PID: flip the control word in a live recording's header,
 * which the recorder's hooks read (no signal, no thread in the target), and note the time in the
 * header's window table so the report covers only the recorded windows. Also: naming a recording by
 * the process that writes it (shared with `top`). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "live.h"

int cmd_live_target(const char *arg, char *path, size_t cap)
{
    struct stat st;
    bool digits = *arg != 0;
    for (const char *p = arg; *p; p++)
        digits = digits && isdigit((unsigned char)*p);
    if (!digits || lstat(arg, &st) == 0) {
        if (strlen(arg) >= cap)
            return cmd_error(FTPROF_EXIT_USAGE, arg, "name too long");
        strcpy(path, arg);
        return FTPROF_EXIT_OK;
    }
    long pid = strtol(arg, NULL, 10);
    int rc = live_find_recording(pid, path, cap);
    if (rc == -ESRCH)
        return cmd_error(FTPROF_EXIT_NO_RECORDING, arg, "no such process");
    if (rc == -EACCES || rc == -EPERM)
        return cmd_error(FTPROF_EXIT_NO_RECORDING, arg, "cannot read /proc/%ld/maps: %s", pid, strerror(-rc));
    if (rc < 0)
        return cmd_error(FTPROF_EXIT_NO_RECORDING, arg, "process %ld has no ftprof recording mapped (not run under "
                         "the recorder, or not a Python process)", pid);
    return FTPROF_EXIT_OK;
}

static uint64_t control_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int control_flip(const char *command, const char *arg, bool pause)
{
    char path[4096];
    int rc = cmd_live_target(arg, path, sizeof(path));
    if (rc != FTPROF_EXIT_OK)
        return rc;
    /* Read-write, never through a symlink, and only a regular file: this writes into it. */
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return cmd_error(FTPROF_EXIT_CANNOT_READ, path, "is a symbolic link; not following it");
        return cmd_error(FTPROF_EXIT_CANNOT_READ, path, "cannot open for writing: %s", strerror(e));
    }
    struct stat st;
    struct ftp_file_header h;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cmd_error(FTPROF_EXIT_CANNOT_READ, path, "not a regular file, not a recording");
    }
    if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h.magic, FTP_MAGIC, FTP_MAGIC_LEN) != 0) {
        close(fd);
        return cmd_error(FTPROF_EXIT_BAD_FORMAT, path, "not an ftprof recording");
    }
    if (h.version == 0 || h.min_reader_version == 0 || h.header_size != FTP_HEADER_SIZE) {
        close(fd);
        return cmd_error(FTPROF_EXIT_BAD_FORMAT, path, "corrupted header");
    }
    if (h.min_reader_version > FTP_VERSION) {
        close(fd);
        return cmd_error(FTPROF_EXIT_TOO_NEW, path, "recording needs ftprof format version %u, this ftprof reads "
                         "version %u", h.min_reader_version, FTP_VERSION);
    }
    if (h.version < 4) {
        close(fd);
        return cmd_error(FTPROF_EXIT_NOT_LIVE, path, "written by a recorder without pause/resume (format version %u)",
                         h.version);
    }
    if (h.flags & (FTP_FLAG_FINISHED | FTP_FLAG_ENDED_BY_EXEC)) {
        close(fd);
        return cmd_error(FTPROF_EXIT_NOT_LIVE, path, "its process already ended; nothing to %s", command);
    }
    void *m = mmap(NULL, FTP_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return cmd_error(FTPROF_EXIT_CANNOT_READ, path, "cannot map its header: %s", strerror(errno));
    struct ftp_file_header *mh = m;
    _Atomic uint32_t *control = (_Atomic uint32_t *)&mh->control;
    uint64_t now = control_now();
    uint32_t old = pause ? atomic_fetch_or(control, FTP_CONTROL_PAUSED) : atomic_fetch_and(control, ~FTP_CONTROL_PAUSED);
    bool was_paused = old & FTP_CONTROL_PAUSED;
    if (was_paused == pause) {
        munmap(m, FTP_HEADER_SIZE);
        printf("ftprof: %s: already %s\n", path, pause ? "paused" : "recording");
        return FTPROF_EXIT_OK;
    }
    uint32_t slot = atomic_fetch_add((_Atomic uint32_t *)&mh->n_windows, 1);
    if (slot < FTP_WINDOWS_MAX)
        atomic_store((_Atomic uint64_t *)&mh->windows[slot], (pause ? FTP_WINDOW_PAUSE : 0) | now);
    munmap(m, FTP_HEADER_SIZE);
    double at = now > h.start_ns ? (double)(now - h.start_ns) / 1e9 : 0;
    printf("ftprof: %s: %s at +%.3f s\n", path, pause ? "paused" : "resumed", at);
    if (slot >= FTP_WINDOWS_MAX)
        fprintf(stderr, "ftprof: %s: warning: more than %d pauses and resumes; the report counts this window as "
                "recorded\n", path, FTP_WINDOWS_MAX);
    return FTPROF_EXIT_OK;
}

static int control_command(int argc, char **argv, const char *command, bool pause)
{
    bool help;
    const struct cmd_option opts[] = {CMD_END};
    char **targets;
    size_t n;
    int rc = cmd_parse_args(argc, argv, command, opts, &targets, &n, &help);
    if (rc == FTPROF_EXIT_OK && !help && n != 1)
        rc = cmd_error(FTPROF_EXIT_USAGE, command, "one recording or process id (%s)", cmd_usage(command));
    if (rc == FTPROF_EXIT_OK && !help)
        rc = control_flip(command, targets[0], pause);
    free(targets);
    return rc;
}

int cmd_pause(int argc, char **argv) { return control_command(argc, argv, "pause", true); }
int cmd_resume(int argc, char **argv) { return control_command(argc, argv, "resume", false); }
