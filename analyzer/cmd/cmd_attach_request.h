#ifndef FTPROF_ANALYZER_CMD_ATTACH_REQUEST_H
#define FTPROF_ANALYZER_CMD_ATTACH_REQUEST_H

#include <stdbool.h>
#include <sys/types.h>

#include "pyremote.h"

/* The request of `ftprof attach` (cmd_attach.c): what the target reads and writes, and who else can
 * touch it.
 *
 * A directory /tmp/ftprof-attach-XXXXXX, mode 0700, owned by the target's uid (a root CLI attaching to
 * another user's process hands it over with fchown; a CLI of the target's own uid owns it already).
 * Nobody else can list it, create, replace or remove a name in it, so no third user can swap the script
 * the target will run, forge its status or cancel it. Every file in it is created O_EXCL|O_NOFOLLOW, and
 * everything the CLI does in it is relative to one descriptor of the directory, opened once: the target
 * (which owns the directory, and could rename it and leave a symbolic link in its place) cannot steer a
 * root CLI elsewhere. `status`, the one file read back, is opened O_NOFOLLOW|O_NONBLOCK and must be a
 * regular file of the target's uid or ours.
 *
 *   owner       "ftprof-attach cli PID START target PID START": which CLI made it (ours, never the
 *               target's: only we can create a file we own), so a later attach can tell a stale one
 *   script.py   what the target runs (PEP 768), given to the target's uid, 0400
 *   token       renamed to `claimed` by the script when it runs; the CLI cancels by removing it
 *   status      written by the script (through status.tmp, created O_EXCL|O_NOFOLLOW, 0600)
 */
#define ATTACH_DIR_PREFIX "ftprof-attach-"

struct attach_proc {
    pid_t pid;
    uid_t uid; /* the file-system ids: what the kernel checks when the process opens a file */
    gid_t gid;
    unsigned long long start; /* clock ticks since boot: a pid reused later has another */
};

struct attach_request {
    int tmp_fd, dir_fd;
    char name[sizeof(ATTACH_DIR_PREFIX) + 6];
    char script[64]; /* /tmp/NAME/script.py, the path the target opens */
    uid_t uid;       /* the target's, owner of what it reads and writes */
    gid_t gid;
    bool give;       /* we are another uid (root): fchown to the target */
};

/* The target's ids and start time, all read through one descriptor of /proc/PID: should the pid be
 * reused meanwhile, the reads fail (ESRCH) instead of describing another process. 0 or -errno. */
int attach_proc_read(pid_t pid, struct attach_proc *p);

/* Removes the request: its files (never following a link), then its directory; closes its descriptors. */
void attach_request_remove(struct attach_request *req);

/* Creates `name` in the request, exclusively, with `text`; given to the target when for_target. */
int attach_request_file(const struct attach_request *req, const char *name, const char *text, mode_t mode,
                        bool for_target);

/* The directory, marked with our pid and start time and the target's, handed to the target's uid. On
 * failure nothing is left behind; -EPERM when we may not hand it over. */
int attach_request_create(struct attach_request *req, const struct attach_proc *target);

/* Reads `status` if the script wrote it: bytes read, -ENOENT while it has not, or -errno (-ELOOP for a
 * symbolic link, -EPERM for a file that is not the target's or ours, -EINVAL for a non-regular one). */
ssize_t attach_request_status(const struct attach_request *req, char *buf, size_t cap);

/* Removes request directories left by an `ftprof attach` that was killed (kill -9) before it could:
 * only ones we made (their `owner` mark is a regular file of our uid, which nobody else can create),
 * whose CLI is gone, and whose script cannot run any more: the target is gone, or the script ran
 * (`token` claimed), or `attached_to` is that target and our own script has just run there (PEP 768
 * keeps one pending script per thread, so the killed CLI's request was replaced by ours). A script still
 * pending stays: the target would print an error on its stderr when it finds the file gone. */
void attach_sweep_stale(const struct attach_proc *attached_to);

/* The script the target runs (PEP 768). Everything inside one function, deleted after; all output goes
 * to the status file. It loads the recorder only if the bytes it reads are the ones we digested
 * (`digest`, SHA-256), and loads them through the descriptor it read them from, so a library replaced
 * (renamed over) in between is not the one loaded. */
int attach_write_script(const struct attach_request *req, const char *lib, const char *digest,
                        const char *out, unsigned long long buffer, int flags);

/* Withdraws a request whose script has not run: without its token the script does nothing should it
 * still run, and every thread's pending PEP 768 call is cleared (its path pointed at /dev/null, an empty
 * script, for a thread that read the call just before), so none goes looking for the file we remove
 * (CPython would print an error on its stderr). False when the script has claimed the token: it is
 * running. */
bool attach_request_cancel(struct attach_request *req, const struct pyremote *py);

#endif
