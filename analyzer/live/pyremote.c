/* Another process's CPython, read (and for PEP 768 written) through process_vm_readv/writev. See
 * pyremote.h. The layout is the recorder's (preload/layout.c): the table of word indices, the
 * fingerprints of the tables we know, the plausibility checks; an interpreter it does not know is
 * refused here as it is there. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "linetable.h"
#include "pyremote.h"

#define PYREMOTE_MAX_THREADS 4096
#define PYREMOTE_DBG_WORDS 128 /* more than any table we know (3.15: 111) */
#define PYREMOTE_PLEASE_STOP_BIT (1u << 5) /* _PY_EVAL_PLEASE_STOP_BIT, Include/internal/pycore_ceval.h */

static int pyremote_read_at(pid_t pid, uintptr_t addr, void *buf, size_t n)
{
    struct iovec local = {buf, n}, remote = {(void *)addr, n};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got < 0)
        return -errno;
    return (size_t)got == n ? 0 : -EFAULT;
}

static int pyremote_write_at(pid_t pid, uintptr_t addr, const void *buf, size_t n)
{
    struct iovec local = {(void *)buf, n}, remote = {(void *)addr, n};
    ssize_t put = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    if (put < 0)
        return -errno;
    return (size_t)put == n ? 0 : -EFAULT;
}

static int pyremote_word(const struct pyremote *r, uintptr_t addr, uint64_t *out)
{
    return pyremote_read_at(r->pid, addr, out, sizeof *out);
}

/* The address (sh_addr) of section `want` in the ELF file at `path`, and the lowest PT_LOAD's page: 1
 * found, 0 not, -errno. */
static int pyremote_elf_section(const char *path, const char *want, uint64_t *addr, uint64_t *first_load)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int found = 0;
    if (fstat(fd, &st) == 0 && st.st_size > 64) {
        uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            uint64_t size = (uint64_t)st.st_size, shoff, phoff;
            uint16_t phentsize, phnum, shentsize, shnum, shstrndx;
            bool elf64 = !memcmp(m, "\177ELF", 4) && m[4] == 2;
            if (elf64) {
                memcpy(&phoff, m + 0x20, 8);
                memcpy(&shoff, m + 0x28, 8);
                memcpy(&phentsize, m + 0x36, 2);
                memcpy(&phnum, m + 0x38, 2);
                memcpy(&shentsize, m + 0x3a, 2);
                memcpy(&shnum, m + 0x3c, 2);
                memcpy(&shstrndx, m + 0x3e, 2);
            }
            *first_load = UINT64_MAX;
            for (uint16_t i = 0; elf64 && phentsize == 56 && phoff + (uint64_t)phnum * 56 <= size && i < phnum; i++) {
                uint32_t type;
                uint64_t vaddr;
                memcpy(&type, m + phoff + (uint64_t)i * 56, 4);
                memcpy(&vaddr, m + phoff + (uint64_t)i * 56 + 0x10, 8);
                if (type == 1 /* PT_LOAD */ && vaddr < *first_load)
                    *first_load = vaddr & ~(uint64_t)0xfff;
            }
            if (elf64 && shentsize == 64 && shoff + (uint64_t)shnum * 64 <= size && shstrndx < shnum) {
                uint64_t stroff, strsize;
                memcpy(&stroff, m + shoff + (uint64_t)shstrndx * 64 + 0x18, 8);
                memcpy(&strsize, m + shoff + (uint64_t)shstrndx * 64 + 0x20, 8);
                for (uint16_t i = 0; i < shnum && stroff + strsize <= size && !found; i++) {
                    uint32_t name;
                    memcpy(&name, m + shoff + (uint64_t)i * 64, 4);
                    if (name < strsize && !strncmp((const char *)m + stroff + name, want, strsize - name)) {
                        memcpy(addr, m + shoff + (uint64_t)i * 64 + 0x10, 8);
                        found = *first_load != UINT64_MAX;
                    }
                }
            }
            munmap(m, (size_t)st.st_size);
        }
    }
    close(fd);
    return found;
}

/* _PyRuntime's address: the .PyRuntime section (CPython 3.12+) of the executable or of a libpython the
 * process maps, relocated by where that file's first page is mapped. 0 when there is none. */
static int pyremote_find_runtime(pid_t pid, uintptr_t *runtime)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char line[PATH_MAX + 128], done[PATH_MAX] = "";
    int rc = 0;
    *runtime = 0;
    while (rc <= 0 && fgets(line, sizeof(line), f)) {
        unsigned long start, offset;
        char *file = strchr(line, '/');
        if (!file || sscanf(line, "%lx-%*x %*s %lx", &start, &offset) != 2 || offset != 0)
            continue;
        file[strcspn(file, "\n")] = 0;
        if (!strcmp(file, done))
            continue;
        snprintf(done, sizeof(done), "%s", file);
        snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, file);
        uint64_t sh_addr = 0, first_load = 0;
        int found = pyremote_elf_section(path, ".PyRuntime", &sh_addr, &first_load);
        if (found > 0) {
            *runtime = (uintptr_t)(start - first_load + sh_addr);
            rc = 1;
        } else if (found < 0 && (found == -EACCES || found == -EPERM) && !rc) {
            rc = found;
        }
    }
    fclose(f);
    return rc;
}

int pyremote_is_python(pid_t pid)
{
    uintptr_t runtime;
    int rc = pyremote_find_runtime(pid, &runtime);
    return rc > 0 ? 1 : rc;
}

int pyremote_open(struct pyremote *r, pid_t pid)
{
    memset(r, 0, sizeof(*r));
    r->pid = pid;
    int rc = pyremote_find_runtime(pid, &r->runtime);
    if (rc <= 0)
        return rc ? rc : -ENOENT;
    static uint64_t dbg[PYREMOTE_DBG_WORDS];
    rc = pyremote_read_at(pid, r->runtime, dbg, sizeof(dbg));
    if (rc)
        return rc;
    if (memcmp(dbg, "xdebugpy", 8) != 0)
        return -ENOTSUP;
    r->version = dbg[1];
    r->free_threaded = dbg[2] != 0;
    if (!ftp_layout_load(&r->lay, dbg, r->version, r->free_threaded))
        return -ENOTSUP;
    /* Until Py_Initialize() is done, a PEP 768 script would run inside the start-up's own imports, before
     * the interpreter can open a file (CPython prints an error on the program's stderr): wait for it. */
    int32_t initialized = 0;
    rc = pyremote_read_at(pid, r->runtime + r->lay.rt_initialized, &initialized, sizeof(initialized));
    if (rc)
        return rc;
    if (!initialized)
        return -EAGAIN;
    uint64_t interp = 0;
    rc = pyremote_word(r, r->runtime + r->lay.rt_interpreters_head, &interp);
    if (rc)
        return rc;
    if (!interp)
        return -EAGAIN; /* not initialised yet, or finalised */
    r->interp = (uintptr_t)interp;
    return 0;
}

int pyremote_threads(const struct pyremote *r, struct pyremote_thread *out, int cap)
{
    const struct ftp_layout *l = &r->lay;
    uint64_t main_ts = 0, ts = 0;
    int rc = l->is_threads_main ? pyremote_word(r, r->interp + l->is_threads_main, &main_ts) : 0;
    if (!rc)
        rc = pyremote_word(r, r->interp + l->is_threads_head, &ts);
    if (rc)
        return rc;
    int n = 0;
    if (main_ts && n < cap)
        out[n++].tstate = (uintptr_t)main_ts;
    for (int steps = 0; ts && n < cap && steps < PYREMOTE_MAX_THREADS; steps++) {
        if (ts != main_ts)
            out[n++].tstate = (uintptr_t)ts;
        if ((rc = pyremote_word(r, ts + l->ts_next, &ts)) != 0)
            return rc;
    }
    for (int i = 0; i < n; i++) {
        uint64_t tid = 0;
        if ((rc = pyremote_word(r, out[i].tstate + l->ts_native_thread_id, &tid)) != 0)
            return rc;
        out[i].tid = (unsigned long)tid;
        if ((rc = pyremote_word(r, out[i].tstate + l->ts_thread_id, &out[i].ident)) != 0)
            return rc;
    }
    return n;
}

/* PEP 768 is on in the target: the interpreter's config.remote_debug (what sys.remote_exec checks). */
static int pyremote_exec_enabled(const struct pyremote *r)
{
    const struct ftp_layout *l = &r->lay;
    if (!l->dbg_script_path_size)
        return -ENOTSUP; /* 3.13: no PEP 768 */
    int32_t enabled = 0;
    int rc = pyremote_read_at(r->pid, r->interp + l->dbg_remote_enabled, &enabled, sizeof(enabled));
    return rc ? rc : enabled == 1 ? 0 : -ENOTSUP;
}

/* Writes the path, then the pending call (`pending`), then (when asked) the eval-breaker bit, into one
 * thread state. As sys.remote_exec does: the path first, so a thread that sees the call finds it. */
static int pyremote_exec_one(const struct pyremote *r, uintptr_t ts, const char *path, int32_t pending)
{
    const struct ftp_layout *l = &r->lay;
    uintptr_t support = ts + l->dbg_remote_support;
    /* A thread asked already and not yet there is left alone: the eval breaker is written from outside
     * with a read and a write, not atomically, so each write risks losing a bit the interpreter sets in
     * between (as sys.remote_exec's own does); asking again only where the call was taken keeps them
     * few. */
    int32_t was = 0;
    uint64_t breaker = 0;
    if (pending && !pyremote_read_at(r->pid, support + l->dbg_pending_call, &was, sizeof(was)) && was == 1 &&
        !pyremote_word(r, ts + l->dbg_eval_breaker, &breaker) && (breaker & PYREMOTE_PLEASE_STOP_BIT))
        return 0;
    int rc = pyremote_write_at(r->pid, support + l->dbg_script_path, path, strlen(path) + 1);
    if (!rc)
        rc = pyremote_write_at(r->pid, support + l->dbg_pending_call, &pending, sizeof(pending));
    if (!rc && pending && !(rc = pyremote_word(r, ts + l->dbg_eval_breaker, &breaker))) {
        breaker |= PYREMOTE_PLEASE_STOP_BIT;
        rc = pyremote_write_at(r->pid, ts + l->dbg_eval_breaker, &breaker, sizeof(breaker));
    }
    return rc;
}

static int pyremote_exec_all(const struct pyremote *r, const char *path, int32_t pending)
{
    int rc = pyremote_exec_enabled(r);
    if (rc)
        return rc;
    if (strlen(path) >= r->lay.dbg_script_path_size)
        return -ENAMETOOLONG;
    static struct pyremote_thread threads[PYREMOTE_MAX_THREADS];
    int n = pyremote_threads(r, threads, PYREMOTE_MAX_THREADS);
    if (n <= 0)
        return n ? n : -ENOENT;
    int done = 0;
    for (int i = 0; i < n; i++) {
        int one = pyremote_exec_one(r, threads[i].tstate, path, pending);
        if (one == -EPERM || one == -ESRCH)
            return one;
        done += one == 0; /* a thread state freed meanwhile reads as a fault: that thread is gone */
    }
    return done;
}

int pyremote_request_exec(const struct pyremote *r, const char *script) { return pyremote_exec_all(r, script, 1); }

int pyremote_withdraw_exec(const struct pyremote *r) { return pyremote_exec_all(r, "/dev/null", 0); }

/* A compact str object's text as UTF-8 (ASCII and Latin-1 read as is; wider kinds byte by byte are
 * not worth it for file and function names: '?' per character). */
static void pyremote_str(const struct pyremote *r, uintptr_t str, char *out, size_t cap)
{
    const struct ftp_layout *l = &r->lay;
    out[0] = 0;
    uint32_t state = 0;
    int64_t length = 0;
    if (!str || pyremote_read_at(r->pid, str + l->str_state, &state, sizeof(state)) ||
        pyremote_read_at(r->pid, str + l->str_length, &length, sizeof(length)))
        return;
    unsigned kind = (state >> l->str_kind_shift) & 7, compact = (state >> l->str_compact_shift) & 1,
             ascii = (state >> l->str_ascii_shift) & 1;
    if (!compact || length <= 0 || kind != 1)
        return;
    uint8_t raw[256];
    size_t n = (size_t)length < sizeof(raw) ? (size_t)length : sizeof(raw);
    if (pyremote_read_at(r->pid, str + (ascii ? l->str_ascii_size : l->str_compact_size), raw, n))
        return;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < cap; i++) {
        if (raw[i] < 0x80) {
            out[o++] = (char)raw[i];
        } else {
            out[o++] = (char)(0xC0 | raw[i] >> 6);
            out[o++] = (char)(0x80 | (raw[i] & 0x3F));
        }
    }
    out[o] = 0;
}

/* Where a frame's bytecode starts: co_code_adaptive, or its thread's copy (free-threaded 3.14+). */
static uintptr_t pyremote_bytecode(const struct pyremote *r, uintptr_t frame, uintptr_t code)
{
    const struct ftp_layout *l = &r->lay;
    uintptr_t adaptive = code + l->co_code_adaptive;
    int32_t index = 0;
    if (!l->co_tlbc || pyremote_read_at(r->pid, frame + l->fr_tlbc_index, &index, sizeof(index)) || index <= 0)
        return adaptive;
    uint64_t array = 0, entry = 0;
    int64_t size = 0;
    if (pyremote_word(r, code + l->co_tlbc, &array) || !array ||
        pyremote_read_at(r->pid, array, &size, sizeof(size)) || index >= size ||
        pyremote_word(r, array + 8 + (uint64_t)index * 8, &entry))
        return 0;
    return (uintptr_t)entry;
}

/* The line a frame of `code` is at (0 unknown). */
static int pyremote_line(const struct pyremote *r, uintptr_t frame, uintptr_t code)
{
    const struct ftp_layout *l = &r->lay;
    uint64_t ip = 0, table = 0;
    int64_t units = 0, tlen = 0;
    int32_t first = 0;
    if (pyremote_word(r, frame + l->fr_instr_ptr, &ip) || pyremote_read_at(r->pid, code + l->ob_size, &units, 8) ||
        pyremote_read_at(r->pid, code + l->co_firstlineno, &first, 4) ||
        pyremote_word(r, code + l->co_linetable, &table) || !table ||
        pyremote_read_at(r->pid, table + l->bytes_size, &tlen, 8) || tlen <= 0 || tlen > 65536)
        return 0;
    uintptr_t start = pyremote_bytecode(r, frame, code);
    if (!start || ip < start || ip - start >= (uint64_t)units * 2)
        return 0;
    static uint8_t lt[65536];
    if (pyremote_read_at(r->pid, table + l->bytes_sval, lt, (size_t)tlen))
        return 0;
    return linetable_line(lt, (size_t)tlen, first, (uint32_t)(ip - start));
}

/* The code object a frame runs, or 0 (an entry frame, or an executable that is not code). */
static uintptr_t pyremote_frame_code(const struct pyremote *r, uintptr_t frame)
{
    const struct ftp_layout *l = &r->lay;
    uint8_t owner = 0;
    uint64_t exe = 0, type = 0, name = 0;
    char tname[8] = "";
    if (pyremote_read_at(r->pid, frame + l->fr_owner, &owner, 1) || owner >= l->frame_owner_entry ||
        pyremote_word(r, frame + l->fr_executable, &exe))
        return 0;
    uintptr_t code = (uintptr_t)exe & ~l->executable_tag_mask;
    if (!code || pyremote_word(r, code + l->ob_type, &type) || pyremote_word(r, type + l->tp_name, &name) ||
        pyremote_read_at(r->pid, name, tname, 5) || memcmp(tname, "code", 5) != 0)
        return 0;
    return code;
}

int pyremote_stack(const struct pyremote *r, uintptr_t tstate, struct pyremote_frame *frames, int cap)
{
    const struct ftp_layout *l = &r->lay;
    uint64_t frame = 0;
    int rc = pyremote_word(r, tstate + l->ts_current_frame, &frame);
    if (rc)
        return rc;
    int n = 0;
    for (int steps = 0; frame && n < cap && steps < 1024; steps++) {
        uintptr_t code = pyremote_frame_code(r, (uintptr_t)frame);
        if (code) {
            uint64_t file = 0, func = 0;
            pyremote_word(r, code + l->co_filename, &file);
            pyremote_word(r, code + l->co_qualname, &func);
            pyremote_str(r, (uintptr_t)file, frames[n].file, sizeof(frames[n].file));
            pyremote_str(r, (uintptr_t)func, frames[n].func, sizeof(frames[n].func));
            frames[n].line = pyremote_line(r, (uintptr_t)frame, code);
            n++;
        }
        if (pyremote_word(r, frame + l->fr_previous, &frame))
            break;
    }
    return n;
}

/* A system call by number (x86-64), for saying what a thread is blocked in. */
static const char *pyremote_syscall_name(long nr)
{
    static const struct {
        long nr;
        const char *name;
    } names[] = {{0, "read"}, {7, "poll"}, {23, "select"}, {35, "nanosleep"}, {43, "accept"}, {45, "recvfrom"},
                 {47, "recvmsg"}, {61, "wait4"}, {202, "futex"}, {230, "clock_nanosleep"}, {232, "epoll_wait"},
                 {247, "waitid"}, {270, "pselect6"}, {271, "ppoll"}, {281, "epoll_pwait"}, {288, "accept4"},
                 {441, "epoll_pwait2"}, {449, "futex_waitv"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].nr == nr)
            return names[i].name;
    return NULL;
}

static void pyremote_task_file(pid_t pid, unsigned long tid, const char *name, char *buf, size_t cap)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%lu/%s", (int)pid, tid, name);
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
}

void pyremote_task_state(pid_t pid, unsigned long tid, char *state, size_t cap)
{
    char stat[512], sc[128];
    pyremote_task_file(pid, tid, "stat", stat, sizeof(stat));
    pyremote_task_file(pid, tid, "syscall", sc, sizeof(sc));
    const char *paren = strrchr(stat, ')');
    state[0] = 0;
    if (!paren || !paren[1])
        return;
    bool in_call = sc[0] >= '0' && sc[0] <= '9';
    long nr = in_call ? strtol(sc, NULL, 10) : -1;
    const char *name = in_call ? pyremote_syscall_name(nr) : NULL;
    if (paren[2] == 'R' || !in_call)
        snprintf(state, cap, "running");
    else if (nr == 35 || nr == 230)
        snprintf(state, cap, "sleeping");
    else if (nr == 202 || nr == 449)
        snprintf(state, cap, "futex");
    else if (name)
        snprintf(state, cap, "in %s()", name);
    else
        snprintf(state, cap, "in system call %ld", nr);
}

void pyremote_describe_threads(const struct pyremote *r, FILE *out)
{
    static struct pyremote_thread threads[256];
    int n = pyremote_threads(r, threads, 256);
    for (int i = 0; i < n; i++) {
        char comm[64], wchan[64], state[64], what[160];
        pyremote_task_file(r->pid, threads[i].tid, "comm", comm, sizeof(comm));
        pyremote_task_file(r->pid, threads[i].tid, "wchan", wchan, sizeof(wchan));
        pyremote_task_state(r->pid, threads[i].tid, state, sizeof(state));
        bool kernel = wchan[0] && strcmp(wchan, "0") != 0;
        if (!strcmp(state, "running"))
            snprintf(what, sizeof(what), "running in C code");
        else
            snprintf(what, sizeof(what), "%s%s%s%s", strcmp(state, "futex") ? "" : "blocked in ",
                     state[0] ? state : "state unknown", kernel ? ", kernel " : "", kernel ? wchan : "");
        struct pyremote_frame fr[1];
        int nf = pyremote_stack(r, threads[i].tstate, fr, 1);
        const char *base = nf > 0 ? strrchr(fr[0].file, '/') : NULL;
        if (nf > 0)
            fprintf(out, "  %s (tid %lu): %s, Python at %s (%s:%d)\n", comm[0] ? comm : "?", threads[i].tid, what,
                    fr[0].func, base ? base + 1 : fr[0].file, fr[0].line);
        else
            fprintf(out, "  %s (tid %lu): %s%s\n", comm[0] ? comm : "?", threads[i].tid, what,
                    nf < 0 ? ", Python stack unreadable" : ", no Python frame");
    }
}
