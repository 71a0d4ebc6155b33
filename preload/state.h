/* The bottom of the recorder: the state every part shares (ftp_state, the thread's ftp_tls, the libc
 * originals in ftp_real), the settings that the environment or an attach gave, warnings, and a stop.
 * It calls nothing else of the recorder: every other part may use it, it uses none of them. */
#ifndef FTPROF_STATE_H
#define FTPROF_STATE_H

#include "recorder.h"

FTP_HIDDEN extern struct ftp_state ftp_state;
FTP_HIDDEN extern __thread struct ftp_thread ftp_tls __attribute__((tls_model("initial-exec"), aligned(64)));

/* ---- libc originals, resolved once (state.c) ---- */
FTP_HIDDEN extern struct ftp_real ftp_real;
FTP_HIDDEN extern _Atomic int ftp_real_resolved; /* released once ftp_real is filled */
FTP_HIDDEN void ftp_resolve_real(void);
/* attach.c sets it at load: true once the library was loaded late (not preloaded); hooks then ignore
 * what they could only misread, such as a park semaphore initialised before the hooks were installed. */
FTP_HIDDEN extern bool ftp_loaded_late;

/* ---- time ---- */
static inline uint64_t ftp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The time-stamp counter, when spins are timed by it (ftp_state.spin_ticks), else 0: about 10 ns
 * where the clock takes 24, read twice by each of the interpreter's spinning yields. */
static inline uint64_t ftp_ticks(void)
{
#if defined(__x86_64__)
    return ftp_state.spin_ticks ? __builtin_ia32_rdtsc() : 0;
#else
    return 0;
#endif
}

/* When the current spin's last yield returned: read from the clock, or counted in ticks from the
 * spin's start, which the clock gave. */
static inline uint64_t ftp_spin_last_ns(const struct ftp_thread *t)
{
    if (!t->spin_last_ticks)
        return t->spin_last_ns;
    uint64_t ticks = t->spin_last_ticks > t->spin_start_ticks ? t->spin_last_ticks - t->spin_start_ticks : 0;
    return t->spin_start_ns + (uint64_t)((double)ticks * t->ns_per_tick);
}

/* How long before `now` the current spin's last yield returned (0 if the counted time came out later). */
static inline uint64_t ftp_spin_since_last(const struct ftp_thread *t, uint64_t now)
{
    uint64_t last = ftp_spin_last_ns(t);
    return now > last ? now - last : 0;
}

/* Whether spins are timed by the counter on this machine (see ftp_state.spin_ticks); `allowed`: not
 * turned off by the settings. */
FTP_HIDDEN void ftp_ticks_decide(bool allowed);

static inline uint64_t ftp_thread_cpu_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A thread that blocked in a hook before a detach (or an attach) comes back stale: what it saw
 * belongs to no recording, or to one that is finished. Under LD_PRELOAD only a fork changes the
 * generation, in the child, whose one thread is not blocked in a hook. */
static inline bool ftp_thread_stale(const struct ftp_thread *t)
{
    return t->generation != atomic_load_explicit(&ftp_state.generation, memory_order_relaxed);
}

/* ---- warnings and stopping ---- */
/* Notes fd 2 as the stream the program was started with (the constructor, before main): warnings are
 * written there only while it is still that stream. */
FTP_HIDDEN void ftp_warn_remember_stderr(void);
FTP_HIDDEN void ftp_stop(const char *why);
/* "ftprof: a b c" on the program's stderr when that cannot harm it, and always into the recording's
 * notes (state.c). Hook-safe; preserves errno. */
FTP_HIDDEN void ftp_warn(const char *a, const char *b, const char *c);
/* A new recording's header gets the notes given before it existed (start-up warnings). */
FTP_HIDDEN void ftp_notes_copy_early(struct ftp_file_header *h);

/* Copy len bytes from an address we are not sure of: false instead of a fault (process_vm_readv). */
FTP_HIDDEN bool ftp_safe_read(void *dst, uintptr_t src, size_t len);
/* `each` bytes from each of `n` addresses, in as few system calls as they allow; readable[i] says which. */
FTP_HIDDEN void ftp_safe_read_each(void *dst, size_t each, const uintptr_t *src, int n, bool *readable);
/* [src, src + len) read in place when it lies in the 4 KiB block of `live`, an address the interpreter
 * itself reads now (so mapped); else through ftp_safe_read. */
FTP_HIDDEN bool ftp_read_near(void *dst, uintptr_t src, size_t len, uintptr_t live);
/* No user-space address lies at or above this (x86-64 and arm64, even with 5-level page tables). */
#define FTP_USER_ADDR_END (1ull << 56)

/* ---- settings kept for the recording file: the buffer size and the program's arguments ---- */
FTP_HIDDEN size_t ftp_buffer_bytes(void);
FTP_HIDDEN void ftp_set_buffer_bytes(size_t bytes);
FTP_HIDDEN void ftp_argv(const char **argv, uint32_t *len, uint32_t *argc);
FTP_HIDDEN void ftp_save_argv(int argc, char **argv);
/* ftprof attach: the settings come from the CLI, never from the host's environment. */
FTP_HIDDEN void ftp_attach_settings(const char *path, size_t buffer, bool native);

#endif
