/* The holders now: for a live recording, what the thread holding a long-blocked thread's lock is doing
 * at this moment. The recording says who holds a lock (the owner a 3.14+ RLock names, or the last
 * thread seen taking it after a wait); the process itself says what that thread does now: its Python
 * stack, read from its thread state with the recorder's own layout tables (pyremote.c), and whether the
 * kernel has it running, sleeping, in a futex wait or another system call. Reading another process
 * needs what attaching needs (its user, or root, and no ptrace restriction in the way); without it the
 * view says so and keeps what the recording holds. Nothing is read from a process that is gone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live_holder.h"

#define LIVE_MAX_PY_THREADS 1024

static int live_blocked_index(const struct live_frame *f, uint32_t tid)
{
    for (size_t j = 0; j < f->n_blocked; j++)
        if (f->blocked[j].tid == tid)
            return (int)j;
    return -1;
}

/* The kernel's name for a thread (3.14+ give it the Thread's name), for a holder that never waited and
 * so never had its name recorded; NULL when unreadable. */
static const char *live_task_comm(uint32_t pid, uint32_t tid, char *buf, size_t cap)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%u/task/%u/comm", pid, tid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    bool ok = fgets(buf, (int)cap, fp) != NULL;
    fclose(fp);
    if (!ok)
        return NULL;
    buf[strcspn(buf, "\n")] = 0;
    return buf[0] ? buf : NULL;
}

/* An owner the lock names (a 3.14+ RLock's thread ident) that is not blocked itself has no slot in the
 * in-flight table to be found by: the process's thread states give its native id. */
static void live_resolve_owners(struct live_frame *f, const struct pyremote_thread *threads, int n)
{
    for (size_t i = 0; i < f->n_blocked; i++) {
        struct live_blocked *b = &f->blocked[i];
        if (!b->owner || (b->holder_tid && b->holder_how && !strcmp(b->holder_how, "owner")))
            continue;
        for (int k = 0; k < n; k++)
            if (threads[k].ident == b->owner && threads[k].tid != b->tid) {
                b->holder_tid = (uint32_t)threads[k].tid;
                b->holder_how = "owner";
                b->holder = live_thread_name(&f->p, b->holder_tid);
                b->holder_blocked = live_blocked_index(f, b->holder_tid);
                if (!b->holder)
                    b->holder = live_task_comm(f->hdr.pid, b->holder_tid, b->holder_comm, sizeof(b->holder_comm));
            }
    }
}

static void live_read_holder(struct live_frame *f, const struct pyremote *r, struct live_blocked *b,
                             const struct pyremote_thread *threads, int n)
{
    struct live_now *now = calloc(1, sizeof(*now));
    if (!now)
        return;
    if (b->holder_blocked >= 0 && f->blocked[b->holder_blocked].kind == PROF_KIND_GIL) {
        snprintf(now->state, sizeof(now->state), "gil"); /* runnable, and about to run: not a lock's wait */
        now->blocked_on = f->blocked[b->holder_blocked].lock;
    } else if (b->holder_blocked >= 0) {
        snprintf(now->state, sizeof(now->state), "blocked");
        now->blocked_on = f->blocked[b->holder_blocked].lock;
    } else {
        pyremote_task_state(r->pid, b->holder_tid, now->state, sizeof(now->state));
    }
    now->n_frames = -1;
    for (int k = 0; k < n; k++)
        if (threads[k].tid == b->holder_tid)
            now->n_frames = pyremote_stack(r, threads[k].tstate, now->frames, LIVE_NOW_FRAMES);
    if (!now->state[0])
        snprintf(now->state, sizeof(now->state), "gone"); /* its /proc entry went: the thread exited */
    b->holder_now = now;
}

void live_holders_now(struct live_frame *f)
{
    if (f->state != LIVE_RUNNING || !f->hdr.pid)
        return;
    static struct pyremote r;
    int rc = pyremote_open(&r, (pid_t)f->hdr.pid);
    if (rc == -EPERM || rc == -EACCES) {
        f->now_unreadable = "no permission to read the process (reading it needs what ftprof attach needs: its "
                            "user or root, and no ptrace restriction)";
        return;
    }
    if (rc == -ENOTSUP) {
        f->now_unreadable = "its interpreter's memory layout is not one this ftprof knows";
        return;
    }
    if (rc != 0) {
        f->now_unreadable = "the process could not be read";
        return;
    }
    static struct pyremote_thread threads[LIVE_MAX_PY_THREADS];
    int n = pyremote_threads(&r, threads, LIVE_MAX_PY_THREADS);
    if (n < 0) {
        f->now_unreadable = n == -EPERM || n == -EACCES ? "no permission to read the process" : "its threads could not be read";
        return;
    }
    live_resolve_owners(f, threads, n);
    for (size_t i = 0; i < f->n_blocked; i++) {
        struct live_blocked *b = &f->blocked[i];
        if (b->holder_tid && b->blocked_ns >= LIVE_HOLDER_NOW_NS)
            live_read_holder(f, &r, b, threads, n);
    }
    /* Threads that could be holding the blocked threads' locks and still make progress on their own:
     * running or sleeping. One in a futex wait, a read or a poll waits for somebody else. */
    f->unrecorded = calloc((size_t)n + 1, sizeof(*f->unrecorded));
    for (int k = 0; k < n; k++) {
        char state[40];
        if (live_blocked_index(f, (uint32_t)threads[k].tid) >= 0)
            continue;
        pyremote_task_state(r.pid, threads[k].tid, state, sizeof(state));
        if (!strcmp(state, "running") || !strcmp(state, "sleeping"))
            f->n_free_threads++;
        if (strcmp(state, "futex") != 0 || !f->unrecorded)
            continue;
        struct live_unrecorded *u = &f->unrecorded[f->n_unrecorded++];
        u->tid = (uint32_t)threads[k].tid;
        const char *name = live_thread_name(&f->p, u->tid);
        if (name)
            snprintf(u->name, sizeof(u->name), "%s", name);
        else if (!live_task_comm(f->hdr.pid, u->tid, u->name, sizeof(u->name)))
            snprintf(u->name, sizeof(u->name), "thread %u", u->tid);
        if (pyremote_stack(&r, threads[k].tstate, &u->frame, 1) <= 0)
            memset(&u->frame, 0, sizeof(u->frame));
    }
    f->now_read = true;
}

bool live_holder_now_text(const struct live_blocked *b, char *buf, size_t cap)
{
    const struct live_now *now = b->holder_now;
    if (!b->holder_tid || !now)
        return false;
    char who[48], state[128], at[400] = "";
    if (b->holder)
        snprintf(who, sizeof(who), "%s", b->holder);
    else
        snprintf(who, sizeof(who), "thread %u", b->holder_tid);
    if (!strcmp(now->state, "blocked"))
        snprintf(state, sizeof(state), "blocked itself, on %s", now->blocked_on ? now->blocked_on : "a lock");
    else if (!strcmp(now->state, "gil"))
        snprintf(state, sizeof(state), "waiting for the GIL to run on");
    else if (!strcmp(now->state, "running"))
        snprintf(state, sizeof(state), "running");
    else if (!strcmp(now->state, "futex"))
        snprintf(state, sizeof(state), "waiting (futex), not on a lock the recording shows");
    else
        snprintf(state, sizeof(state), "%s", now->state);
    if (now->n_frames > 0) {
        /* The innermost frame, and its caller: a holder inside Event.is_set is in crunch(). */
        size_t o = 0;
        for (int i = 0; i < now->n_frames && i < 2 && o < sizeof(at); i++) {
            const char *base = strrchr(now->frames[i].file, '/');
            o += (size_t)snprintf(at + o, sizeof(at) - o, "%s %s (%s:%d)", i ? ", called from" : ", at",
                                  now->frames[i].func, base ? base + 1 : now->frames[i].file, now->frames[i].line);
        }
    } else {
        snprintf(at, sizeof(at), ", no Python frame");
    }
    snprintf(buf, cap, "holder %s (tid %u, %s) now: %s%s", who, b->holder_tid, b->holder_how ? b->holder_how : "?",
             state, at);
    return true;
}
