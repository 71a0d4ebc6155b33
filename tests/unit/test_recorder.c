/* Unit tests of the recorder through its real shared object: each case re-executes this program
 * under LD_PRELOAD=libftprof.so with FTPROF_ALL=1 (record a non-Python process), makes a known number
 * of contended waits with a handshake, and reads the recording back through format.h.
 *
 *   test_recorder LIBFTPROF.so            run every case
 *   test_recorder LIBFTPROF.so CASE DIR   (internal) one case, already under the preload
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ftprof/format.h"
#include "check.h"


static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ workloads (under the preload) */

enum { ROUNDS = 40, DROP_ROUNDS = 200 };
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static sem_t heap_sem;
static atomic_int ready;

/* The waiter announces itself, then blocks on a lock the main thread holds for 2 ms: exactly one
 * contended acquisition per round. */
static atomic_int waiter_tid;

/* Is thread `tid` of this process asleep (in the kernel: blocked on the futex of the mutex)? */
static bool thread_sleeping(int tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *end = strrchr(buf, ')'); /* the state follows the command name in parentheses */
    return end && end[1] == ' ' && end[2] == 'S';
}

/* Until thread `tid` really blocks (at most 2 s): on a loaded machine a thread may be preempted between
 * announcing itself and its blocking call for longer than any fixed delay, and then it would not wait. */
static void wait_until_asleep(int tid)
{
    for (int k = 0; k < 20000 && !thread_sleeping(tid); k++)
        sleep_ms(0.1);
}

/* Starts `waiter` and returns once it has announced itself (`ready`), just before it blocks. */
static void start_waiter(pthread_t *th, void *(*waiter)(void *))
{
    atomic_store(&ready, 0);
    pthread_create(th, NULL, waiter, NULL);
    while (!atomic_load(&ready))
        sleep_ms(0.05);
}

static void *mutex_waiter(void *arg)
{
    (void)arg;
    atomic_store(&waiter_tid, (int)syscall(SYS_gettid));
    atomic_store(&ready, 1);
    pthread_mutex_lock(&mutex);
    pthread_mutex_unlock(&mutex);
    return NULL;
}

static void contend_mutex_rounds(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        pthread_t th;
        pthread_mutex_lock(&mutex);
        start_waiter(&th, mutex_waiter);
        wait_until_asleep(atomic_load(&waiter_tid));
        sleep_ms(2);
        pthread_mutex_unlock(&mutex);
        pthread_join(th, NULL);
    }
}

static void *rw_waiter(void *arg)
{
    (void)arg;
    atomic_store(&ready, 1);
    pthread_rwlock_wrlock(&rwlock);
    pthread_rwlock_unlock(&rwlock);
    return NULL;
}

static void *sem_waiter(void *arg)
{
    (void)arg;
    atomic_store(&ready, 1);
    sem_wait(&heap_sem);
    sem_post(&heap_sem);
    return NULL;
}

static void contend_rwlock_and_sem(int rounds)
{
    sem_init(&heap_sem, 0, 1);
    for (int i = 0; i < rounds; i++) {
        pthread_t th;
        pthread_rwlock_rdlock(&rwlock);
        start_waiter(&th, rw_waiter);
        sleep_ms(2);
        pthread_rwlock_unlock(&rwlock);
        pthread_join(th, NULL);

        sem_wait(&heap_sem);
        start_waiter(&th, sem_waiter);
        sleep_ms(2);
        sem_post(&heap_sem);
        pthread_join(th, NULL);
    }
    sem_destroy(&heap_sem);
}

/* Rounds of three threads alive at once, each blocked once on a semaphore the main thread posts:
 * three handed-back chunks circulate and fill up together, so threads keep adopting chunks that are
 * nearly full. */
enum { TRIO_ROUNDS = 600 };
static sem_t trio_sem;
static atomic_int trio_tids[3];

static void *trio_waiter(void *arg)
{
    atomic_store(&trio_tids[(intptr_t)arg], (int)syscall(SYS_gettid));
    atomic_fetch_add(&ready, 1);
    sem_wait(&trio_sem);
    return NULL;
}

static void contend_trios(int rounds)
{
    sem_init(&trio_sem, 0, 0);
    for (int i = 0; i < rounds; i++) {
        pthread_t th[3];
        atomic_store(&ready, 0);
        for (int k = 0; k < 3; k++)
            pthread_create(&th[k], NULL, trio_waiter, (void *)(intptr_t)k);
        while (atomic_load(&ready) < 3)
            sleep_ms(0.05);
        /* Each must be asleep in sem_wait before the posts, or it takes its post without waiting (under
         * ASan in CI, 1,799 of 1,800). */
        for (int k = 0; k < 3; k++)
            wait_until_asleep(atomic_load(&trio_tids[k]));
        sleep_ms(0.2);
        for (int k = 0; k < 3; k++)
            sem_post(&trio_sem);
        for (int k = 0; k < 3; k++)
            pthread_join(th[k], NULL);
    }
    sem_destroy(&trio_sem);
}

/* The waiter blocked on the mutex the main thread holds is in its slot of the recording's table of
 * waits in flight while it waits (lock, kind, a start before now), and out of it once it got the lock:
 * the main thread reads its own recording through a second mapping, as `ftprof top` does. */
static const char *case_dir;

static const struct ftp_inflight_slot *inflight_slot_of(const uint8_t *map, uint32_t tid)
{
    const struct ftp_file_header *h = (const void *)map;
    if (h->version < 4 || !h->inflight_chunk)
        return NULL;
    const struct ftp_rec_inflight *r = (const void *)(map + h->header_size + (size_t)(h->inflight_chunk - 1) * h->chunk_size);
    if (r->h.type != FTP_REC_INFLIGHT || r->slot_size != sizeof(struct ftp_inflight_slot))
        return NULL;
    const struct ftp_inflight_slot *s = (const void *)(r + 1);
    for (uint32_t i = 0; i < r->slot_count; i++)
        if (atomic_load((const _Atomic uint32_t *)&s[i].tid) == tid)
            return &s[i];
    return NULL;
}

static int inflight_case(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/inflight-%d.ftp", case_dir, (int)getpid());
    pthread_t th;
    pthread_mutex_lock(&mutex);
    start_waiter(&th, mutex_waiter);
    wait_until_asleep(atomic_load(&waiter_tid));
    sleep_ms(50);
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return printf("cannot open %s\n", path), 3;
    uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return printf("cannot map %s\n", path), 3;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    const struct ftp_inflight_slot *s = inflight_slot_of(map, (uint32_t)atomic_load(&waiter_tid));
    int rc = 0;
    if (!s) {
        printf("the blocked waiter has no slot\n");
        rc = 4;
    } else {
        uint32_t seq = atomic_load((const _Atomic uint32_t *)&s->seq);
        uint64_t start = atomic_load((const _Atomic uint64_t *)&s->start_ns);
        if ((seq & 1) || start == 0 || s->lock_addr != (uint64_t)(uintptr_t)&mutex || s->kind != FTP_KIND_PTHREAD_MUTEX ||
            now < start + 40000000)
        {
            printf("slot: seq %u start %llu (now %llu) lock %#llx (mutex %p) kind %u\n", seq, (unsigned long long)start,
                   (unsigned long long)now, (unsigned long long)s->lock_addr, (void *)&mutex, s->kind);
            rc = 5;
        }
    }
    pthread_mutex_unlock(&mutex);
    pthread_join(th, NULL);
    /* It woke (and exited): no longer waiting, its slot given back. */
    if (s && atomic_load((const _Atomic uint32_t *)&s->tid) == (uint32_t)atomic_load(&waiter_tid) &&
        atomic_load((const _Atomic uint64_t *)&s->start_ns) != 0)
    {
        printf("the waiter still shows as waiting after it got the lock\n");
        rc = 6;
    }
    munmap(map, (size_t)st.st_size);
    return rc;
}

static int run_case(const char *name)
{
    if (!strcmp(name, "inflight"))
        return inflight_case();
    if (!strcmp(name, "mutex"))
        contend_mutex_rounds(ROUNDS);
    else if (!strcmp(name, "drops"))
        contend_mutex_rounds(DROP_ROUNDS);
    else if (!strcmp(name, "recycle"))
        contend_mutex_rounds(400); /* 400 short-lived threads */
    else if (!strcmp(name, "rwsem"))
        contend_rwlock_and_sem(ROUNDS / 2);
    else if (!strcmp(name, "trios"))
        contend_trios(TRIO_ROUNDS);
    else if (!strcmp(name, "fork")) {
        contend_mutex_rounds(5);
        pid_t pid = fork();
        if (pid == 0) {
            contend_mutex_rounds(7);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        contend_mutex_rounds(3);
        printf("child %d\n", (int)pid);
    } else if (!strcmp(name, "plain"))
        contend_mutex_rounds(3);
    else
        return 2;
    return 0;
}

/* ------------------------------------------------------------------ reading a recording back */

struct summary {
    uint32_t pid, flags, chunks_used;
    uint64_t dropped, dropped_wait_ns;
    int waits[FTP_KIND_COUNT];
    int threads, holders, holders_linked;
    uint64_t min_wait_ns;
    bool bad_record;
};

static bool read_recording(const char *path, struct summary *s)
{
    memset(s, 0, sizeof *s);
    s->min_wait_ns = UINT64_MAX;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    struct stat st;
    fstat(fd, &st);
    uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return false;
    const struct ftp_file_header *h = (const void *)map;
    bool ok = st.st_size >= FTP_HEADER_SIZE && !memcmp(h->magic, FTP_MAGIC, FTP_MAGIC_LEN);
    if (ok) {
        s->pid = h->pid;
        s->flags = h->flags;
        s->chunks_used = h->chunks_used;
        s->dropped = h->dropped_events;
        s->dropped_wait_ns = h->dropped_wait_ns;
        uint64_t ids[4096];
        int nids = 0;
        const struct ftp_rec_holder *holders[4096];
        for (uint32_t c = 0; c < h->chunks_used; c++) {
            size_t base = h->header_size + (size_t)c * h->chunk_size;
            if (base + h->chunk_size > (size_t)st.st_size)
                break;
            for (uint32_t off = 0; off + sizeof(struct ftp_record) <= h->chunk_size;) {
                const struct ftp_record *r = (const void *)(map + base + off);
                if (r->size == 0)
                    break;
                if (r->size % 8 || r->size < 8 || off + r->size > h->chunk_size) {
                    s->bad_record = true;
                    break;
                }
                if (r->type == FTP_REC_THREAD)
                    s->threads++;
                else if (r->type == FTP_REC_WAIT) {
                    const struct ftp_rec_wait *w = (const void *)r;
                    if (w->kind < FTP_KIND_COUNT)
                        s->waits[w->kind]++;
                    if (w->end_ns - w->start_ns < s->min_wait_ns)
                        s->min_wait_ns = w->end_ns - w->start_ns;
                    if (nids < 4096)
                        ids[nids++] = w->event_id;
                } else if (r->type == FTP_REC_HOLDER && s->holders < 4096) {
                    holders[s->holders++] = (const void *)r;
                }
                off += r->size;
            }
        }
        for (int i = 0; i < s->holders; i++)
            for (int j = 0; j < nids; j++)
                if (holders[i]->waiter_event_id == ids[j]) {
                    s->holders_linked++;
                    break;
                }
    }
    munmap(map, (size_t)st.st_size);
    return ok;
}

/* ------------------------------------------------------------------ the driver */

static const char *self_path, *lib_path;

/* Run one case under the preload; returns its exit status; output pattern in dir. */
static int spawn_case(const char *name, const char *dir, const char *output, const char *buffer, char *stdout_buf,
                      size_t cap)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        setenv("LD_PRELOAD", lib_path, 1);
        setenv("FTPROF_ALL", "1", 1);
        setenv("FTPROF_OUTPUT", output, 1);
        if (buffer)
            setenv("FTPROF_BUFFER", buffer, 1);
        else
            unsetenv("FTPROF_BUFFER");
        execl(self_path, self_path, lib_path, name, dir, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < cap && (got = read(pipefd[0], stdout_buf + n, cap - 1 - n)) > 0)
        n += (size_t)got;
    stdout_buf[n] = 0;
    close(pipefd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void path_for(char *out, size_t cap, const char *dir, const char *name, int pid)
{
    snprintf(out, cap, "%s/%s-%d.ftp", dir, name, pid);
}

static int find_one(const char *dir, const char *prefix, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s/%s-*.ftp 2>/dev/null", dir, prefix);
    FILE *p = popen(cmd, "r");
    int n = 0;
    char line[512];
    while (p && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        if (n++ == 0)
            snprintf(out, cap, "%s", line);
    }
    if (p)
        pclose(p);
    return n;
}

/* Runs case `name` (FTPROF_BUFFER `buffer`, NULL for the default size) with its recording at
 * DIR/NAME-PID.ftp, and reads back the one recording it must leave. */
static void record_case(const char *dir, const char *name, const char *buffer, struct summary *s)
{
    char out[256], buf[256], path[512] = "";
    snprintf(out, sizeof out, "%s/%s-%%p.ftp", dir, name);
    CHECK(spawn_case(name, dir, out, buffer, buf, sizeof buf) == 0, "case %s failed: the program was affected", name);
    CHECK(find_one(dir, name, path, sizeof path) == 1, "case %s: one recording expected", name);
    CHECK(read_recording(path, s), "unreadable %s", path);
}

static void test_mutex(const char *dir)
{
    struct summary s;
    record_case(dir, "mutex", NULL, &s);
    CHECK(!s.bad_record, "malformed record");
    CHECK(s.waits[FTP_KIND_PTHREAD_MUTEX] == ROUNDS, "%d mutex waits, expected %d", s.waits[FTP_KIND_PTHREAD_MUTEX], ROUNDS);
    CHECK(s.min_wait_ns >= 1000000, "shortest wait %llu ns, each waiter was held off ~2 ms",
          (unsigned long long)s.min_wait_ns);
    CHECK(s.holders_linked >= ROUNDS * 9 / 10, "%d of %d waits have their releaser linked", s.holders_linked, ROUNDS);
    CHECK(s.dropped == 0, "%llu dropped", (unsigned long long)s.dropped);
    CHECK(s.flags & FTP_FLAG_FINISHED, "exit() should mark the file finished");
    CHECK(!(s.flags & FTP_FLAG_PYTHON), "not a Python process");
}

static void test_drops(const char *dir)
{
    /* 16 KiB: three 4 KiB chunks after the header; every wait either lands or is counted. */
    struct summary s;
    record_case(dir, "drops", "16K", &s);
    int recorded = s.waits[FTP_KIND_PTHREAD_MUTEX];
    CHECK(s.dropped > 0, "a 16K buffer should overflow (recorded %d)", recorded);
    CHECK(recorded + (int)s.dropped == DROP_ROUNDS, "recorded %d + dropped %llu != %d", recorded,
          (unsigned long long)s.dropped, DROP_ROUNDS);
    /* Each dropped wait lasted at least the 2 ms the main thread held the mutex once the waiter slept:
     * their summed time is kept (as FTPROF_MIN_WAIT keeps the filtered waits'). */
    CHECK(s.dropped_wait_ns >= s.dropped * 1900000, "dropped waits' time %llu ns for %llu waits",
          (unsigned long long)s.dropped_wait_ns, (unsigned long long)s.dropped);
}

static void test_recycle(const char *dir)
{
    struct summary s;
    record_case(dir, "recycle", NULL, &s);
    CHECK(s.waits[FTP_KIND_PTHREAD_MUTEX] == 400, "%d waits of 400", s.waits[FTP_KIND_PTHREAD_MUTEX]);
    /* 400 threads, each one wait: chunks of exited threads are adopted instead of claiming new ones. */
    CHECK(s.chunks_used <= 4, "%u chunks for 400 sequential threads", s.chunks_used);
    CHECK(s.threads >= 400, "%d thread records", s.threads);
}

static void test_nearly_full_chunks(const char *dir)
{
    /* 1 MiB: fifteen 64 KiB chunks, of which 1,800 short waits need four. Adopted chunks that are too
     * full for a thread's first records must cost a fresh chunk, never a wait. */
    struct summary s;
    record_case(dir, "trios", "1M", &s);
    CHECK(!s.bad_record, "malformed record");
    int waits = 0;
    for (int k = 0; k < FTP_KIND_COUNT; k++)
        waits += s.waits[k];
    CHECK(s.dropped == 0, "%llu waits dropped with most of the buffer free (%d recorded, %u chunks used)",
          (unsigned long long)s.dropped, waits, s.chunks_used);
    CHECK(waits >= TRIO_ROUNDS * 3, "%d waits recorded, expected at least %d", waits, TRIO_ROUNDS * 3);
}

static void test_rwlock_and_sem(const char *dir)
{
    struct summary s;
    record_case(dir, "rwsem", NULL, &s);
    CHECK(s.waits[FTP_KIND_PTHREAD_RWLOCK] == ROUNDS / 2, "%d rwlock waits", s.waits[FTP_KIND_PTHREAD_RWLOCK]);
    CHECK(s.waits[FTP_KIND_PYTHREAD_LOCK] == ROUNDS / 2, "%d semaphore waits", s.waits[FTP_KIND_PYTHREAD_LOCK]);
    /* Uncontended sem_wait/sem_post pairs (one per round in the main thread) leave nothing. */
    CHECK(s.min_wait_ns >= 1000000, "an uncontended acquisition was recorded");
}

static void test_inflight(const char *dir)
{
    char out[256], buf[512];
    snprintf(out, sizeof out, "%s/inflight-%%p.ftp", dir);
    int rc = spawn_case("inflight", dir, out, NULL, buf, sizeof buf);
    CHECK(rc == 0, "case exited %d: %s", rc, buf);
}

static void test_fork(const char *dir)
{
    char out[256], buf[256], parent[512], child[512];
    snprintf(out, sizeof out, "%s/fork-%%p.ftp", dir);
    CHECK(spawn_case("fork", dir, out, NULL, buf, sizeof buf) == 0, "case failed");
    int child_pid = 0;
    sscanf(buf, "child %d", &child_pid);
    CHECK(find_one(dir, "fork", parent, sizeof parent) == 2, "parent and child each write a file");
    path_for(child, sizeof child, dir, "fork", child_pid);
    struct summary sp, sc;
    CHECK(read_recording(child, &sc), "child recording %s unreadable", child);
    /* The parent's file is the other one. */
    char other[512];
    snprintf(other, sizeof other, "%s", parent);
    if (!strcmp(other, child)) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "ls %s/fork-*.ftp | grep -v -- '-%d.ftp'", dir, child_pid);
        FILE *p = popen(cmd, "r");
        if (p && fgets(other, sizeof other, p))
            other[strcspn(other, "\n")] = 0;
        if (p)
            pclose(p);
    }
    CHECK(read_recording(other, &sp), "parent recording %s unreadable", other);
    CHECK(sp.waits[FTP_KIND_PTHREAD_MUTEX] == 8, "parent: %d waits, expected 5 + 3", sp.waits[FTP_KIND_PTHREAD_MUTEX]);
    CHECK(sc.waits[FTP_KIND_PTHREAD_MUTEX] == 7, "child: %d waits, expected 7", sc.waits[FTP_KIND_PTHREAD_MUTEX]);
    CHECK(sc.flags & FTP_FLAG_FORKED_CHILD, "child file not marked as a forked child");
    CHECK(sc.pid == (uint32_t)child_pid, "child file names pid %u", sc.pid);
}

static void test_refusals(const char *dir)
{
    char out[512], buf[256], target[512];
    /* A planted symlink at the output path: refused, the target untouched, the program unaffected. */
    snprintf(target, sizeof target, "%s/target", dir);
    int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, "keep", 4) == 4, "setup");
    close(fd);
    snprintf(out, sizeof out, "%s/link.ftp", dir);
    CHECK(symlink(target, out) == 0, "setup symlink");
    CHECK(spawn_case("plain", dir, out, NULL, buf, sizeof buf) == 0, "program affected by a refused symlink");
    struct stat st;
    CHECK(stat(target, &st) == 0 && st.st_size == 4, "symlink target was modified");
    /* An unwritable directory: refused with a warning, program unaffected. */
    snprintf(out, sizeof out, "%s/missing-dir/x-%%p.ftp", dir);
    CHECK(spawn_case("plain", dir, out, NULL, buf, sizeof buf) == 0, "program affected by an unwritable output");
    /* An existing file without %p: the recorder writes <name>.<pid> instead of overwriting. */
    snprintf(out, sizeof out, "%s/target", dir);
    CHECK(spawn_case("plain", dir, out, NULL, buf, sizeof buf) == 0, "case failed");
    CHECK(stat(target, &st) == 0 && st.st_size == 4, "an existing file was overwritten");
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s/target.*", dir);
    glob_t g;
    CHECK(glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc == 1, "expected one target.<pid> recording");
    globfree(&g);
}

int main(int argc, char **argv)
{
    if (argc == 4) {
        case_dir = argv[3];
        return run_case(argv[2]);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s LIBFTPROF.so\n", argv[0]);
        return 2;
    }
    static char self[4096], lib[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    self_path = self;
    if (!realpath(argv[1], lib)) {
        fprintf(stderr, "cannot find %s\n", argv[1]);
        return 2;
    }
    lib_path = lib;
    char dir[] = "/tmp/ftprof-unit-XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    struct {
        const char *name;
        void (*fn)(const char *);
    } cases[] = {{"mutex", test_mutex},     {"drops", test_drops}, {"recycle", test_recycle},
                 {"rwsem", test_rwlock_and_sem}, {"trios", test_nearly_full_chunks}, {"fork", test_fork},   {"refusals", test_refusals},
                 {"inflight", test_inflight}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int before = failures;
        cases[i].fn(dir);
        printf("%s %s\n", failures == before ? "ok  " : "FAIL", cases[i].name);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failures ? 1 : 0;
}
