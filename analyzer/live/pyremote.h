/* Reading (and, for ftprof attach, writing PEP 768's request into) another process's CPython through
 * its _Py_DebugOffsets and the recorder's own layout tables (preload/layout.c, compiled in here too).
 * Every access is process_vm_readv/writev: the kernel grants it only to who may ptrace the process. */
#ifndef FTPROF_ANALYZER_PYREMOTE_H
#define FTPROF_ANALYZER_PYREMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../../preload/layout.h"

struct pyremote {
    pid_t pid;
    uintptr_t runtime; /* _PyRuntime in the target */
    uintptr_t interp;  /* its main interpreter */
    uint64_t version;  /* PY_VERSION_HEX */
    bool free_threaded;
    struct ftp_layout lay;
};

/* Finds the runtime and loads its layout. 0, or -errno: -ENOENT no CPython runtime, -EPERM/-EACCES not
 * allowed to read it, -ESRCH gone, -ENOTSUP a layout we do not know (an unknown version or table),
 * -EAGAIN a runtime without an interpreter (starting up, or finalised). */
int pyremote_open(struct pyremote *r, pid_t pid);

/* 1 when the process's executable or a libpython it maps holds a CPython runtime, 0 not, or -errno. */
int pyremote_is_python(pid_t pid);

struct pyremote_thread {
    uintptr_t tstate;
    unsigned long tid;   /* native thread id */
    uint64_t ident;      /* pthread_self(), threading.get_ident() */
};
/* The interpreter's thread states, main thread first when it is known (3.14+); how many (<= cap), or
 * -errno. */
int pyremote_threads(const struct pyremote *r, struct pyremote_thread *out, int cap);

/* PEP 768 in every thread state: the script path, the pending call, and each thread's eval-breaker bit,
 * so that whichever thread next runs bytecode runs the script. Returns how many threads got it, or
 * -errno (-EPERM not allowed, -ENOTSUP remote debugging disabled in the target, -ENAMETOOLONG). */
int pyremote_request_exec(const struct pyremote *r, const char *script);
/* Withdraws it from every thread (the pending call cleared, the path pointed at /dev/null). */
int pyremote_withdraw_exec(const struct pyremote *r);

struct pyremote_frame {
    char file[256];
    char func[128];
    int line;
};
/* The Python stack of one thread state now, innermost first: how many frames, or -errno. */
int pyremote_stack(const struct pyremote *r, uintptr_t tstate, struct pyremote_frame *frames, int cap);

/* What the kernel says thread `tid` of `pid` does now: "running" (on a CPU, in user or kernel code),
 * "sleeping" (nanosleep/clock_nanosleep: time.sleep), "futex" (a lock, a condition, a join), "in NAME"
 * (another system call, named when known), or "" when unreadable; `syscall` gets the call's name. */
void pyremote_task_state(pid_t pid, unsigned long tid, char *state, size_t cap);
/* One line per Python thread: its name, what the kernel has it do (and its wchan), its Python line. */
void pyremote_describe_threads(const struct pyremote *r, FILE *out);

#endif
