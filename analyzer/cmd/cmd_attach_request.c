/* The attach request (cmd_attach_request.h): the directory the target reads its script from and writes
 * its status to, made so that no third user can touch it. */
#include "cmd_attach_request.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "live.h"

static const char *const attach_request_names[] = {"token", "claimed", "status", "status.tmp", "script.py", "owner"};

/* The start time (field 22 of stat) of the process whose /proc directory procfd is, or 0. */
static unsigned long long attach_proc_start(int procfd) { return live_proc_start_ticks_at(procfd, "stat"); }

static unsigned long long attach_pid_start(pid_t pid)
{
    char path[32];
    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    int procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (procfd < 0)
        return 0;
    unsigned long long start = attach_proc_start(procfd);
    close(procfd);
    return start;
}

int attach_proc_read(pid_t pid, struct attach_proc *p)
{
    char path[32], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    int procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (procfd < 0)
        return -errno;
    int fd = openat(procfd, "status", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    int err = n < 0 ? -errno : 0;
    if (fd >= 0)
        close(fd);
    p->pid = pid;
    p->start = attach_proc_start(procfd);
    close(procfd);
    if (err || n <= 0 || !p->start)
        return err ? err : -ESRCH;
    buf[n] = 0;
    /* "Uid:\treal\teffective\tsaved\tfs" */
    unsigned long u[4], g[4];
    const char *us = strstr(buf, "\nUid:"), *gs = strstr(buf, "\nGid:");
    if (!us || !gs || sscanf(us, "\nUid: %lu %lu %lu %lu", &u[0], &u[1], &u[2], &u[3]) != 4 ||
        sscanf(gs, "\nGid: %lu %lu %lu %lu", &g[0], &g[1], &g[2], &g[3]) != 4)
        return -EINVAL;
    p->uid = (uid_t)u[3];
    p->gid = (gid_t)g[3];
    return 0;
}

/* Removes the request directory `name` (in tmp_fd) through dir_fd: our known names, never following a
 * link (unlinkat removes a symbolic link itself), then the directory, which fails if anything else is in
 * it. Closes dir_fd. */
static void attach_request_remove_at(int tmp_fd, int dir_fd, const char *name)
{
    for (size_t i = 0; i < sizeof(attach_request_names) / sizeof(attach_request_names[0]); i++)
        unlinkat(dir_fd, attach_request_names[i], 0);
    close(dir_fd);
    unlinkat(tmp_fd, name, AT_REMOVEDIR);
}

void attach_request_remove(struct attach_request *req)
{
    if (req->dir_fd >= 0)
        attach_request_remove_at(req->tmp_fd, req->dir_fd, req->name);
    if (req->tmp_fd >= 0)
        close(req->tmp_fd);
    req->dir_fd = req->tmp_fd = -1;
}

int attach_request_file(const struct attach_request *req, const char *name, const char *text, mode_t mode,
                        bool for_target)
{
    int fd = openat(req->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), done = 0;
    int rc = 0;
    while (!rc && done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            done += (size_t)w;
    }
    if (!rc && for_target && req->give && fchown(fd, req->uid, req->gid) != 0)
        rc = -errno;
    if (close(fd) != 0 && !rc)
        rc = -errno;
    return rc;
}

int attach_request_create(struct attach_request *req, const struct attach_proc *target)
{
    memset(req, 0, sizeof(*req));
    req->dir_fd = -1;
    req->uid = target->uid;
    req->gid = target->gid;
    req->give = geteuid() != target->uid;
    req->tmp_fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (req->tmp_fd < 0)
        return -errno;
    char path[] = "/tmp/" ATTACH_DIR_PREFIX "XXXXXX";
    if (!mkdtemp(path)) { /* 0700, ours */
        int err = -errno;
        close(req->tmp_fd);
        req->tmp_fd = -1;
        return err;
    }
    snprintf(req->name, sizeof(req->name), "%s", path + 5);
    snprintf(req->script, sizeof(req->script), "%s/script.py", path);
    req->dir_fd = openat(req->tmp_fd, req->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    int rc = req->dir_fd < 0 ? -errno : fstat(req->dir_fd, &st) != 0 ? -errno : 0;
    if (!rc && (st.st_uid != geteuid() || (st.st_mode & 077)))
        rc = -EPERM; /* not the directory mkdtemp made: cannot happen in a sticky /tmp */
    char mark[128];
    snprintf(mark, sizeof(mark), "ftprof-attach cli %d %llu target %d %llu\n", (int)getpid(),
             attach_pid_start(getpid()), (int)target->pid, target->start);
    if (!rc)
        rc = attach_request_file(req, "owner", mark, 0400, false);
    if (!rc && req->give && fchown(req->dir_fd, req->uid, req->gid) != 0)
        rc = -errno;
    if (rc) {
        if (req->dir_fd < 0)
            rmdir(path); /* only reached if opening what mkdtemp just made failed */
        attach_request_remove(req);
    }
    return rc;
}

ssize_t attach_request_status(const struct attach_request *req, char *buf, size_t cap)
{
    int fd = openat(req->dir_fd, "status", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    ssize_t n = fstat(fd, &st) != 0 ? -errno : 0;
    if (!n && !S_ISREG(st.st_mode))
        n = -EINVAL;
    if (!n && st.st_uid != req->uid && st.st_uid != geteuid())
        n = -EPERM;
    if (!n) {
        n = read(fd, buf, cap - 1);
        if (n < 0)
            n = -errno;
        else
            buf[n] = 0;
    }
    close(fd);
    return n;
}

void attach_sweep_stale(const struct attach_proc *attached_to)
{
    int tmp_fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tmp_fd < 0)
        return;
    int list_fd = dup(tmp_fd);
    DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
    if (!d) {
        if (list_fd >= 0)
            close(list_fd);
        close(tmp_fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ATTACH_DIR_PREFIX, strlen(ATTACH_DIR_PREFIX)) != 0)
            continue;
        int dir_fd = openat(tmp_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir_fd < 0)
            continue; /* not a directory, or another user's */
        char mark[129] = "";
        int fd = openat(dir_fd, "owner", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        if (fd >= 0) {
            if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid()) {
                ssize_t n = read(fd, mark, sizeof(mark) - 1);
                mark[n > 0 ? n : 0] = 0;
            }
            close(fd);
        }
        int cli, tpid;
        unsigned long long cli_start, tstart;
        bool remove = false;
        if (sscanf(mark, "ftprof-attach cli %d %llu target %d %llu", &cli, &cli_start, &tpid, &tstart) == 4 &&
            cli != (int)getpid() && attach_pid_start(cli) != cli_start) {
            bool target_gone = attach_pid_start(tpid) != tstart;
            bool pending = fstatat(dir_fd, "token", &st, AT_SYMLINK_NOFOLLOW) == 0;
            bool replaced = attached_to && attached_to->pid == tpid && attached_to->start == tstart;
            remove = target_gone || !pending || replaced;
        }
        if (remove)
            attach_request_remove_at(tmp_fd, dir_fd, e->d_name);
        else
            close(dir_fd);
    }
    closedir(d);
    close(tmp_fd);
}

/* `s` as hex digits, which the script turns back into bytes: any path survives, whatever it holds. */
static void attach_hex(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 3 <= cap; s++, n += 2)
        snprintf(out + n, 3, "%02x", (unsigned char)*s);
    out[n] = 0;
}

int attach_write_script(const struct attach_request *req, const char *lib, const char *digest,
                        const char *out, unsigned long long buffer, int flags)
{
    static char text[32768]; /* the script, and three paths of up to PATH_MAX as hex */
    char dir_hex[2 * sizeof(req->script) + 1], lib_hex[2 * PATH_MAX + 1], out_hex[2 * PATH_MAX + 1];
    char dir[sizeof(req->script)];
    snprintf(dir, sizeof(dir), "/tmp/%s", req->name);
    attach_hex(dir, dir_hex, sizeof(dir_hex));
    attach_hex(lib, lib_hex, sizeof(lib_hex));
    attach_hex(out, out_hex, sizeof(out_hex));
    int n = snprintf(
        text, sizeof(text),
        "def __ftprof_attach():\n"
        "    import os\n"
        "    d = os.fsdecode(bytes.fromhex('%s'))\n"
        "    import sys\n"
        "    # A module half imported (this thread stopped inside its import, or another thread's): loading\n"
        "    # ctypes now could meet it half done. Not now: ftprof attach asks again in 50 ms.\n"
        "    for m in list(sys.modules.values()):\n"
        "        if getattr(getattr(m, '__spec__', None), '_initializing', False):\n"
        "            return\n"
        "    try:\n"
        "        os.rename(d + '/token', d + '/claimed')\n"
        "    except OSError:\n"
        "        return\n"
        "    status = '-1 unknown'\n"
        "    try:\n"
        "        import ctypes\n"
        "        try:\n"
        "            from _sha2 import sha256  # CPython's own: hashlib would load OpenSSL into the target\n"
        "        except ImportError:\n"
        "            from hashlib import sha256\n"
        "        path = os.fsdecode(bytes.fromhex('%s'))\n"
        "        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)\n"
        "        try:\n"
        "            h, off = sha256(), 0\n"
        "            while True:\n"
        "                b = os.pread(fd, 1 << 20, off)\n"
        "                if not b:\n"
        "                    break\n"
        "                h.update(b)\n"
        "                off += len(b)\n"
        "            if h.hexdigest() != '%s':\n"
        "                status = ('-1 %%s is not the library ftprof attach checked (SHA-256 %%s, expected %%s); '\n"
        "                          'not loaded' %% (path, h.hexdigest(), '%s'))\n"
        "            else:\n"
        "                lib = ctypes.CDLL('/proc/self/fd/%%d' %% fd)\n"
        "                fn = lib.ftprof_attach\n"
        "                fn.restype = ctypes.c_int\n"
        "                fn.argtypes = [ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_int, ctypes.c_int,\n"
        "                               ctypes.c_char_p, ctypes.c_size_t]\n"
        "                err = ctypes.create_string_buffer(512)\n"
        "                rc = fn(bytes.fromhex('%s'), %llu, %d, %d, err, 512)\n"
        "                status = '%%d %%s' %% (rc, err.value.decode('utf-8', 'replace').replace('\\n', ' '))\n"
        "        finally:\n"
        "            os.close(fd)\n"
        "    except BaseException as e:\n"
        "        status = '-1 %%s: %%s' %% (type(e).__name__, str(e).replace('\\n', ' '))\n"
        "    try:\n"
        "        import sys, threading\n"
        "        frames, me = sys._current_frames(), threading.get_ident()\n"
        "        for t in threading.enumerate():\n"
        "            f = frames.get(t.ident)\n"
        "            if t.ident != me and f is not None:\n"
        "                status += '\\n%%d\\t%%s\\t%%s\\t%%s\\t%%s' %% (t.native_id or 0, t.name.replace('\\t', ' '),\n"
        "                    f.f_code.co_filename, f.f_lineno, f.f_code.co_qualname)\n"
        "        del frames, f\n"
        "    except BaseException:\n"
        "        pass\n"
        "    try:\n"
        "        fd = os.open(d + '/status.tmp', os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,\n"
        "                     0o600)\n"
        "        with os.fdopen(fd, 'w') as f:\n"
        "            f.write(status)\n"
        "        os.rename(d + '/status.tmp', d + '/status')\n"
        "    except BaseException:\n"
        "        pass\n"
        "try:\n"
        "    __ftprof_attach()\n"
        "except BaseException:\n"
        "    pass\n"
        "finally:\n"
        "    del __ftprof_attach\n",
        dir_hex, lib_hex, digest, digest, out_hex, buffer, flags, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(text))
        return -ENAMETOOLONG;
    return attach_request_file(req, "script.py", text, 0400, true);
}

bool attach_request_cancel(struct attach_request *req, const struct pyremote *py)
{
    if (unlinkat(req->dir_fd, "token", 0) != 0 && errno == ENOENT)
        return false;
    pyremote_withdraw_exec(py);
    attach_request_remove(req);
    return true;
}
