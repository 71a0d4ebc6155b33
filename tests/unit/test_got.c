/* The recorder loaded late (ftprof attach) into a plain pthread program: dlopen() does nothing by
 * itself; ftprof_attach rewrites the program's GOT slots so its contended pthread_mutex_lock calls are
 * recorded, in a file flagged ATTACHED; ftprof_detach writes every slot back (read from memory, not
 * taken on trust), and 100 attach/detach cycles leave the slots and the number of mappings as they
 * were. A library dlopen()ed while attached is covered through the dlsym rescan.
 *
 * usage: test_got LIBFTPROF LIBGOT_LATE */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ftprof/format.h"
#include "check.h"

typedef int (*attach_fn)(const char *, unsigned long long, int, int, char *, size_t);
typedef int (*detach_fn)(void);
typedef size_t (*got_fn)(uint64_t *, size_t);


static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int stop;

static void *contend(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        pthread_mutex_lock(&mu);
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* WAIT records of `kind` (and, when `lock` is not 0, on that lock) in a finished recording; the
 * header into *h. */
static long count_waits_on(const char *path, int kind, uint64_t lock, struct ftp_file_header *h)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    fstat(fd, &st);
    uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -1;
    memcpy(h, m, sizeof *h);
    long n = 0;
    for (uint32_t c = 0; c < h->chunks_used; c++) {
        size_t off = FTP_HEADER_SIZE + (size_t)c * h->chunk_size;
        if (off + h->chunk_size > (size_t)st.st_size)
            break;
        for (size_t o = 0; o + sizeof(struct ftp_record) <= h->chunk_size;) {
            const struct ftp_record *r = (const void *)(m + off + o);
            if (r->size == 0 || r->size % 8 || o + r->size > h->chunk_size)
                break;
            const struct ftp_rec_wait *w = (const void *)r;
            if (r->type == FTP_REC_WAIT && w->kind == kind && (!lock || w->lock_addr == lock))
                n++;
            o += r->size;
        }
    }
    munmap(m, (size_t)st.st_size);
    return n;
}

static long count_waits(const char *path, int kind, struct ftp_file_header *h)
{
    return count_waits_on(path, kind, 0, h);
}

/* A thread that blocks in a hook during one recording and wakes during the next. */
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static atomic_int straggler_in;

static void *straggler(void *arg)
{
    (void)arg;
    atomic_store(&straggler_in, 1);
    pthread_mutex_lock(&held); /* blocks: main holds it across a detach and the next attach */
    pthread_mutex_unlock(&held);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_got LIBFTPROF LIBGOT_LATE\n");
        return 2;
    }
    char dir[] = "/tmp/ftprof-test-got-XXXXXX";
    if (!mkdtemp(dir))
        return perror("mkdtemp"), 1;
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, contend, NULL);

    int maps_before_load = count_maps();
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL); /* as ctypes does */
    CHECK(lib, "dlopen: %s", dlerror());
    if (!lib)
        return 1;
    attach_fn attach = (attach_fn)dlsym(lib, "ftprof_attach");
    detach_fn detach = (detach_fn)dlsym(lib, "ftprof_detach");
    got_fn got = (got_fn)dlsym(lib, "ftprof_attach_got");
    CHECK(attach && detach && got, "entry points missing");

    /* Loaded late, nothing records by itself: no file appears, FTPROF_* are not read. */
    char path[256], err[256];
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK(dlsym(RTLD_DEFAULT, "pthread_mutex_lock") != dlsym(lib, "pthread_mutex_lock"),
          "the late library must not interpose by symbol");

    /* A non-Python process is refused unless asked for (FTPROF_ATTACH_ANY = 2). */
    snprintf(path, sizeof path, "%s/refused.ftp", dir);
    int rc = attach(path, 1 << 20, 0, 0, err, sizeof err);
    CHECK(rc == -ENOENT, "attach to a non-Python process without ANY: %d (%s)", rc, err);

    snprintf(path, sizeof path, "%s/one.ftp", dir);
    rc = attach(path, 4 << 20, 2, 0, err, sizeof err);
    CHECK(rc == 0, "attach: %d (%s)", rc, err);
    uint64_t slots[3 * 256];
    size_t n = got(slots, 256);
    CHECK(n > 0, "no slot patched");
    void *exe_lock_slot = NULL;
    for (size_t i = 0; i < n; i++) {
        uintptr_t *slot = (uintptr_t *)slots[3 * i];
        CHECK(*slot == slots[3 * i + 2], "slot %p holds %#lx, not the hook", (void *)slot, (unsigned long)*slot);
        Dl_info di, me;
        if (slots[3 * i + 2] == (uint64_t)(uintptr_t)dlsym(lib, "pthread_mutex_lock") && dladdr(slot, &di) &&
            dladdr((void *)main, &me) && di.dli_fbase == me.dli_fbase)
            exe_lock_slot = slot;
    }
    CHECK(exe_lock_slot, "the program's own pthread_mutex_lock slot was not patched");

    /* A library loaded while attached: covered once it is looked into with dlsym. */
    void *late = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    CHECK(late, "dlopen late lib: %s", dlerror());
    int (*late_lock)(pthread_mutex_t *) = late ? (int (*)(pthread_mutex_t *))dlsym(late, "got_late_lock") : NULL;
    CHECK(late_lock, "got_late_lock missing");
    size_t n2 = got(slots, 256);
    bool late_covered = false;
    for (size_t i = 0; late_lock && i < n2; i++) {
        Dl_info a, b;
        if (dladdr((void *)(uintptr_t)slots[3 * i], &a) && dladdr((void *)late_lock, &b) && a.dli_fbase == b.dli_fbase)
            late_covered = true;
    }
    CHECK(late_covered, "the late library's GOT was not rewritten (%zu slots before, %zu after)", n, n2);
    if (late_lock)
        late_lock(&mu);

    nanosleep(&pause, NULL);
    nanosleep(&pause, NULL);
    /* Save every slot's expected old value, detach, and read them back. */
    n = got(slots, 256);
    uint64_t saved[3 * 256];
    memcpy(saved, slots, sizeof slots);
    rc = detach();
    CHECK(rc == 0, "detach: %d", rc);
    for (size_t i = 0; i < n; i++)
        CHECK(*(uintptr_t *)saved[3 * i] == saved[3 * i + 1], "slot %#lx not restored",
              (unsigned long)saved[3 * i]);
    CHECK(got(slots, 256) == 0, "slots still listed after detach");
    struct ftp_file_header h;
    long waits = count_waits(path, FTP_KIND_PTHREAD_MUTEX, &h);
    CHECK(waits > 10, "only %ld pthread_mutex waits recorded in the window", waits);
    CHECK((h.flags & FTP_FLAG_ATTACHED) && (h.flags & FTP_FLAG_FINISHED), "flags %#x", h.flags);
    CHECK(h.end_ns > h.start_ns && h.end_ns - h.start_ns < 2000000000ull, "window %llu..%llu",
          (unsigned long long)h.start_ns, (unsigned long long)h.end_ns);
    printf("one window: %ld pthread_mutex waits, %zu slots patched and restored\n", waits, n);

    /* Nothing more is recorded after detach. */
    nanosleep(&pause, NULL);
    struct ftp_file_header h2;
    CHECK(count_waits(path, FTP_KIND_PTHREAD_MUTEX, &h2) == waits, "waits written after detach");

    /* A wait that spans a detach and the next attach belongs to neither recording: the hook that comes
     * back (stale) writes nothing into the new one. */
    {
        pthread_mutex_lock(&held);
        snprintf(path, sizeof path, "%s/before.ftp", dir);
        rc = attach(path, 1 << 20, 2, 0, err, sizeof err);
        CHECK(rc == 0, "straggler attach: %d (%s)", rc, err);
        pthread_t st;
        pthread_create(&st, NULL, straggler, NULL);
        while (!atomic_load(&straggler_in))
            nanosleep(&pause, NULL);
        nanosleep(&pause, NULL); /* it is blocked inside the hook now */
        CHECK(detach() == 0, "straggler detach");
        char path2[256];
        snprintf(path2, sizeof path2, "%s/after.ftp", dir);
        rc = attach(path2, 1 << 20, 2, 0, err, sizeof err);
        CHECK(rc == 0, "straggler re-attach: %d (%s)", rc, err);
        pthread_mutex_unlock(&held);
        pthread_join(st, NULL);
        for (int i = 0; i < 3; i++)
            nanosleep(&pause, NULL);
        CHECK(detach() == 0, "straggler second detach");
        struct ftp_file_header h3;
        long in_before = count_waits_on(path, FTP_KIND_PTHREAD_MUTEX, (uintptr_t)&held, &h3);
        long in_after = count_waits_on(path2, FTP_KIND_PTHREAD_MUTEX, (uintptr_t)&held, &h3);
        long others = count_waits(path2, FTP_KIND_PTHREAD_MUTEX, &h3);
        CHECK(in_before == 0 && in_after == 0, "the wait across the detach was written: %ld before, %ld after",
              in_before, in_after);
        CHECK(others > 0, "the second recording recorded nothing (flags %#x, %u chunks, %ld in the first)", h3.flags,
              h3.chunks_used, count_waits(path, FTP_KIND_PTHREAD_MUTEX, &h3));
        printf("a wait across detach and re-attach: written in neither recording (%ld other waits in the second)\n",
               others);
        unlink(path);
        unlink(path2);
    }

    /* 100 cycles under contention: the slots come back, mappings do not pile up. */
    int maps_after_first = count_maps();
    for (int cyc = 0; cyc < 100; cyc++) {
        snprintf(path, sizeof path, "%s/cycle.ftp", dir);
        unlink(path);
        rc = attach(path, 1 << 20, 2, 0, err, sizeof err);
        if (rc != 0) {
            CHECK(0, "cycle %d attach: %d (%s)", cyc, rc, err);
            break;
        }
        n = got(slots, 256);
        memcpy(saved, slots, sizeof slots);
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
        rc = detach();
        CHECK(rc == 0, "cycle %d detach: %d", cyc, rc);
        for (size_t i = 0; i < n; i++)
            if (*(uintptr_t *)saved[3 * i] != saved[3 * i + 1]) {
                CHECK(0, "cycle %d: slot %#lx not restored", cyc, (unsigned long)saved[3 * i]);
                break;
            }
    }
    unlink(path);
    int maps_end = count_maps();
    CHECK(maps_end <= maps_after_first + 2, "mappings grew over 100 cycles: %d -> %d", maps_after_first, maps_end);
    printf("100 cycles: mappings %d before load, %d after the first detach, %d after 100 more\n", maps_before_load,
           maps_after_first, maps_end);

    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    snprintf(path, sizeof path, "%s/one.ftp", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/refused.ftp", dir);
    unlink(path);
    rmdir(dir);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("ok\n");
    return failures ? 1 : 0;
}
