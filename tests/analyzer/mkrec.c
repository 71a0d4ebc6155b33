/* Synthetic recordings for the analyzer's tests, fuzzer seeds and benchmark, written with the record
 * layouts of include/ftprof/format.h the way the recorder lays them out: one chunk per thread at a
 * time, a THREAD record at the head of every chunk, definitions (CODE, STACK, TYPE) in the chunk of
 * the first thread that uses them. Code objects and their line tables come from
 * fixtures/linetables.txt, made by a real CPython 3.13t, so line numbers are real.
 *
 *   mkrec [-f FIXTURE] [-s SRCDIR] SCENARIO OUT [N]
 *     bank      the fixture bank workload: a hot global lock, a dict critical section, condition and
 *               join waits, spins, a GIL re-enabled by an extension, a native wait without a stack
 *     dangling  bank, plus records pointing at stack, code and type ids that are never defined
 *     version0  bank, with a header that says format version 0
 *     diskfull  bank, ended early by a full disk (37 waits lost to it)
 *     exec      bank, ended by an exec of its process
 *     dropped   bank, with dropped events counted in the header
 *     bench     N wait events (default 5000000) over 8 threads, 64 locks and 32 stacks
 *     native    native stacks of this program's own functions, with a stand-in eval-loop function
 *     empty     a valid header and no chunks
 *     newer     bank, marked as needing a newer reader
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftprof/format.h"

#define MK_MAX_CODES 64
#define MK_MAX_STACKS 256
#define MK_MAX_THREADS 32

struct mk_code {
    char qualname[256], file[128];
    int firstlineno;
    uint8_t *table;
    size_t table_len;
    unsigned (*ranges)[3];
    size_t n_ranges;
    bool defined;
};

struct mk_frame {
    const char *qualname;
    int line;
    bool entry;
};

struct mk_stack {
    struct ftp_py_frame frames[16];
    int n;
    uint64_t native[16];
    int n_native;
    bool defined;
};

struct mk_thread {
    uint32_t tid;
    char name[16];
    int64_t chunk; /* -1: none yet */
    uint32_t off;
    uint64_t seq;
};

struct mk {
    uint8_t *data;
    size_t data_cap;
    uint32_t chunk_size, chunks_used;
    struct mk_code codes[MK_MAX_CODES];
    size_t n_codes;
    struct mk_stack stacks[MK_MAX_STACKS];
    size_t n_stacks;
    char types[16][64];
    bool type_defined[16];
    size_t n_types;
    struct mk_thread threads[MK_MAX_THREADS];
    size_t n_threads;
    const char *srcdir;
    uint64_t dropped;
    uint64_t disk_full_events;
    uint32_t set_flags, clear_flags; /* header flags beyond the usual ones */
    char notes[FTP_NOTES_MAX];       /* header.notes as the recorder would leave them (format 6) */
    uint32_t notes_len;
    uint64_t start_ns, end_ns;
    uint64_t events;
    uint32_t features;
};

static void mk_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mkrec: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void mk_load_fixture(struct mk *m, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        mk_die("%s: %s", path, strerror(errno));
    static char line[70000], hex[70000];
    struct mk_code *cur = NULL;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "code ", 5) == 0) {
            if (m->n_codes == MK_MAX_CODES)
                mk_die("fixture has too many code objects");
            cur = &m->codes[m->n_codes++];
            if (sscanf(line, "code %255s %127s %d %69999s", cur->qualname, cur->file, &cur->firstlineno, hex) != 4)
                mk_die("bad fixture line: %s", line);
            size_t n = strcmp(hex, "-") == 0 ? 0 : strlen(hex) / 2;
            cur->table = malloc(n ? n : 1);
            for (size_t i = 0; i < n; i++) {
                unsigned v;
                sscanf(hex + 2 * i, "%2x", &v);
                cur->table[i] = (uint8_t)v;
            }
            cur->table_len = n;
        } else if (cur && strncmp(line, "lines ", 6) == 0) {
            unsigned a, b, l;
            if (sscanf(line, "lines %u %u %u", &a, &b, &l) == 3) {
                cur->ranges = realloc(cur->ranges, (cur->n_ranges + 1) * sizeof(*cur->ranges));
                cur->ranges[cur->n_ranges][0] = a;
                cur->ranges[cur->n_ranges][1] = b;
                cur->ranges[cur->n_ranges++][2] = l;
            }
        }
    }
    fclose(f);
}

/* ------------------------------------------------------------ chunk writing */

static uint8_t *mk_chunk(struct mk *m, int64_t c) { return m->data + (size_t)c * m->chunk_size; }

static void *mk_raw(struct mk *m, struct mk_thread *t, uint32_t size);

static void mk_new_chunk(struct mk *m, struct mk_thread *t)
{
    size_t need = (size_t)(m->chunks_used + 1) * m->chunk_size;
    if (need > m->data_cap) {
        size_t cap = m->data_cap ? m->data_cap * 2 : (size_t)m->chunk_size * 16;
        while (cap < need)
            cap *= 2;
        m->data = realloc(m->data, cap);
        if (!m->data)
            mk_die("out of memory");
        memset(m->data + m->data_cap, 0, cap - m->data_cap);
        m->data_cap = cap;
    }
    t->chunk = m->chunks_used++;
    t->off = 0;
    struct ftp_rec_thread *r = mk_raw(m, t, sizeof(*r));
    r->tid = t->tid;
    r->first_seen_ns = m->start_ns;
    memcpy(r->name, t->name, strnlen(t->name, sizeof(r->name)));
    r->h.type = FTP_REC_THREAD;
    r->h.size = sizeof(*r);
}

/* Room for a record of `size` bytes in the thread's chunk; the caller fills it and stores h.size last. */
static void *mk_raw(struct mk *m, struct mk_thread *t, uint32_t size)
{
    if (size > m->chunk_size - sizeof(struct ftp_rec_thread))
        mk_die("record of %u bytes does not fit a chunk", size);
    if (t->chunk < 0 || t->off + size > m->chunk_size)
        mk_new_chunk(m, t);
    void *p = mk_chunk(m, t->chunk) + t->off;
    t->off += size;
    return p;
}

static struct mk_thread *mk_thread(struct mk *m, uint32_t tid, const char *name)
{
    struct mk_thread *t = &m->threads[m->n_threads++];
    t->tid = tid;
    t->chunk = -1;
    snprintf(t->name, sizeof(t->name), "%s", name);
    return t;
}

/* n threads with tids first_tid, first_tid + 1, ..., named PREFIX-first_number, PREFIX-(first_number + 1), ... */
static void mk_threads(struct mk *m, struct mk_thread **out, int n, uint32_t first_tid, const char *prefix,
                       int first_number)
{
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "%s-%d", prefix, first_number + i);
        out[i] = mk_thread(m, first_tid + (uint32_t)i, name);
    }
}

static uint32_t mk_code_id(struct mk *m, struct mk_thread *t, const char *qualname, const char *file)
{
    for (size_t i = 0; i < m->n_codes; i++) {
        struct mk_code *c = &m->codes[i];
        if (strcmp(c->qualname, qualname) != 0 || (file && strcmp(c->file, file) != 0))
            continue;
        if (!c->defined) {
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", m->srcdir, c->file);
            size_t fl = strlen(path), ql = strlen(c->qualname);
            uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_code) + fl + ql + c->table_len));
            struct ftp_rec_code *r = mk_raw(m, t, size);
            r->code_id = (uint32_t)i + 1;
            r->firstlineno = c->firstlineno;
            r->filename_len = (uint16_t)fl;
            r->qualname_len = (uint16_t)ql;
            r->linetable_len = (uint32_t)c->table_len;
            char *s = (char *)(r + 1);
            memcpy(s, path, fl);
            memcpy(s + fl, c->qualname, ql);
            memcpy(s + fl + ql, c->table, c->table_len);
            r->h.type = FTP_REC_CODE;
            r->h.size = size;
            c->defined = true;
        }
        return (uint32_t)i + 1;
    }
    mk_die("no code object %s in the fixture", qualname);
    return 0;
}

/* The first instruction offset CPython maps to `line` in that code object. */
static uint32_t mk_offset(struct mk *m, uint32_t code_id, int line)
{
    struct mk_code *c = &m->codes[code_id - 1];
    for (size_t i = 0; i < c->n_ranges; i++)
        if ((int)c->ranges[i][2] == line)
            return c->ranges[i][0];
    mk_die("%s has no instruction on line %d", c->qualname, line);
    return 0;
}

/* Interns a stack of Python frames and native return addresses (innermost first); written when first
 * used. */
static uint32_t mk_stack_native(struct mk *m, struct mk_thread *t, int n, const struct mk_frame *frames, int n_native,
                                const uint64_t *native)
{
    struct mk_stack s = {.n = n, .n_native = n_native};
    if (n_native)
        memcpy(s.native, native, (size_t)n_native * sizeof(*native));
    for (int i = 0; i < n; i++) {
        const char *file = strncmp(frames[i].qualname, "Condition", 9) == 0 || strncmp(frames[i].qualname, "Thread", 6) == 0
                               ? "threading.py"
                               : NULL;
        uint32_t id = mk_code_id(m, t, frames[i].qualname, file);
        s.frames[i].code_id = id;
        s.frames[i].instr_offset = mk_offset(m, id, frames[i].line) | (frames[i].entry ? FTP_PY_FRAME_ENTRY : 0);
    }
    for (size_t i = 0; i < m->n_stacks; i++)
        if (m->stacks[i].n == n && memcmp(m->stacks[i].frames, s.frames, (size_t)n * sizeof(s.frames[0])) == 0 &&
            m->stacks[i].n_native == n_native &&
            memcmp(m->stacks[i].native, s.native, (size_t)n_native * sizeof(s.native[0])) == 0)
            return (uint32_t)i + 1;
    m->stacks[m->n_stacks] = s;
    uint32_t id = (uint32_t)++m->n_stacks;
    uint32_t size = (uint32_t)(sizeof(struct ftp_rec_stack) + (size_t)n * sizeof(struct ftp_py_frame) +
                               (size_t)n_native * sizeof(uint64_t));
    struct ftp_rec_stack *r = mk_raw(m, t, size);
    r->stack_id = id;
    r->py_count = (uint16_t)n;
    r->native_count = (uint16_t)n_native;
    r->hash = id * 0x9e3779b97f4a7c15ull;
    memcpy(r + 1, s.frames, (size_t)n * sizeof(s.frames[0]));
    memcpy((char *)(r + 1) + (size_t)n * sizeof(s.frames[0]), s.native, (size_t)n_native * sizeof(s.native[0]));
    r->h.type = FTP_REC_STACK;
    r->h.size = size;
    return id;
}

static uint32_t mk_stack(struct mk *m, struct mk_thread *t, int n, const struct mk_frame *frames)
{
    return mk_stack_native(m, t, n, frames, 0, NULL);
}

static uint32_t mk_type(struct mk *m, struct mk_thread *t, const char *name)
{
    size_t i = 0;
    for (; i < m->n_types; i++)
        if (strcmp(m->types[i], name) == 0)
            break;
    if (i == m->n_types)
        snprintf(m->types[m->n_types++], sizeof(m->types[0]), "%s", name);
    if (!m->type_defined[i]) {
        size_t len = strlen(name);
        uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_type) + len));
        struct ftp_rec_type *r = mk_raw(m, t, size);
        r->type_id = (uint32_t)i + 1;
        r->name_len = (uint32_t)len;
        r->type_addr = 0x55000000 + i * 64;
        memcpy(r + 1, name, len);
        r->h.type = FTP_REC_TYPE;
        r->h.size = size;
        m->type_defined[i] = true;
    }
    return (uint32_t)i + 1;
}

struct mk_wait {
    uint8_t kind, region;
    uint64_t addr;
    uint32_t type_id, stack_id, region_offset;
    uint64_t start, park, end;
    uint16_t flags;
    uint64_t acq_seq; /* 0: a new acquisition */
};

/* Returns the record's event id. */
static uint64_t mk_wait(struct mk *m, struct mk_thread *t, const struct mk_wait *w)
{
    struct ftp_rec_wait *r = mk_raw(m, t, sizeof(*r));
    t->seq++;
    r->tid = t->tid;
    r->kind = w->kind;
    r->region = w->region;
    r->event_id = ((uint64_t)t->tid << 32) | t->seq;
    r->acq_seq = w->acq_seq ? w->acq_seq : t->seq;
    r->start_ns = w->start;
    r->park_ns = w->park;
    r->end_ns = w->end;
    r->lock_addr = w->addr;
    r->stack_id = w->stack_id;
    r->type_id = w->type_id;
    r->region_offset = w->region_offset;
    r->h.type = FTP_REC_WAIT;
    r->h.flags = w->flags;
    r->h.size = sizeof(*r);
    if (w->end > m->end_ns)
        m->end_ns = w->end;
    m->events++;
    return r->event_id;
}

/* One acquisition in one record: `spin` ns of spinning, then parked until `wait` ns had passed. */
static uint64_t mk_acquire(struct mk *m, struct mk_thread *t, uint8_t kind, uint64_t addr, uint32_t type_id,
                           uint32_t stack_id, uint64_t start, uint64_t wait, uint64_t spin, bool handoff)
{
    struct mk_wait w = {.kind = kind, .addr = addr, .type_id = type_id, .stack_id = stack_id, .start = start,
                        .park = spin < wait ? start + spin : 0, .end = start + wait,
                        .flags = handoff ? FTP_WAIT_HANDED_OFF : 0};
    return mk_wait(m, t, &w);
}

static void mk_holder(struct mk *m, struct mk_thread *t, uint32_t stack_id, uint64_t waiter_event, uint64_t time,
                      uint64_t addr)
{
    struct ftp_rec_holder *r = mk_raw(m, t, sizeof(*r));
    r->tid = t->tid;
    r->stack_id = stack_id;
    r->waiter_event_id = waiter_event;
    r->time_ns = time;
    r->lock_addr = addr;
    r->h.type = FTP_REC_HOLDER;
    r->h.size = sizeof(*r);
}

static void mk_gil_enabled(struct mk *m, struct mk_thread *t, uint64_t time, const char *path)
{
    size_t len = strlen(path);
    uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_gil_enabled) + len));
    struct ftp_rec_gil_enabled *r = mk_raw(m, t, size);
    r->time_ns = time;
    r->path_len = (uint32_t)len;
    r->tid = t->tid;
    memcpy(r + 1, path, len);
    r->h.type = FTP_REC_GIL_ENABLED;
    r->h.size = size;
}

static void mk_extension(struct mk *m, struct mk_thread *t, uint16_t flags, uint32_t stack_id, uint64_t time,
                         uint64_t base, uint8_t gil, uint8_t init, const char *name, const char *path)
{
    size_t nl = strlen(name), pl = strlen(path);
    uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_extension) + nl + pl));
    struct ftp_rec_extension *r = mk_raw(m, t, size);
    r->tid = t->tid;
    r->stack_id = stack_id;
    r->time_ns = time;
    r->base = base;
    r->gil = gil;
    r->init = init;
    r->name_len = (uint16_t)nl;
    r->path_len = (uint16_t)pl;
    memcpy(r + 1, name, nl);
    memcpy((char *)(r + 1) + nl, path, pl);
    r->h.type = FTP_REC_EXTENSION;
    r->h.flags = flags;
    r->h.size = size;
}

/* ------------------------------------------------------------ scenarios */

#define MS 1000000ull
#define US 1000ull

enum {
    ACCOUNTS = 0x7f00aa001000ull,
    CACHE_DICT = 0x7f00bb002000ull,
    COND_WAITER = 0x7f00cc003000ull,
    COND_LOCK = 0x7f00cc004000ull,
    TSTATE_LOCK = 0x7f00dd005000ull,
    PYEVENT = 0x7f00ee006000ull,
    GIL_MUTEX = 0x7f00ff007000ull,
    NATIVE_MUTEX = 0x7f0011008000ull,
};

static void mk_bank(struct mk *m)
{
    uint64_t t0 = m->start_ns;
    struct mk_thread *main_t = mk_thread(m, 1000, "python3.13t");
    struct mk_thread *w[4];
    mk_threads(m, w, 4, 1001, "Worker", 1);
    /* Workers 1..3 transfer under ACCOUNTS: 100 waits of 1 ms each, every other one handed off. Their
     * releasers were transfers (2 in 3) or audits (1 in 3) on other workers. */
    for (int k = 0; k < 100; k++) {
        for (int i = 0; i < 3; i++) {
            struct mk_thread *t = w[i];
            uint32_t lt = mk_type(m, t, "_thread.lock");
            uint32_t st = mk_stack(m, t, 2, (struct mk_frame[]){{"Bank.transfer", 12, false}, {"Worker.run", 40, true}});
            uint64_t start = t0 + 10 * MS + (uint64_t)k * 3 * MS + (uint64_t)i * 10 * US;
            uint64_t ev = mk_acquire(m, t, FTP_KIND_LOCK, ACCOUNTS, lt, st, start, 1 * MS, 2 * US, k % 2 == 0);
            struct mk_thread *h = w[(i + 1) % 4];
            uint32_t hs = (k % 3 == 2)
                              ? mk_stack(m, h, 2, (struct mk_frame[]){{"Bank.audit", 18, false}, {"Worker.run", 42, true}})
                              : mk_stack(m, h, 2, (struct mk_frame[]){{"Bank.transfer", 13, false}, {"Worker.run", 40, true}});
            mk_holder(m, h, hs, ev, start + 1 * MS, ACCOUNTS);
        }
    }
    /* Worker 4 audits: 50 waits of 2 ms; the first one parks twice (two records, one acquisition). */
    {
        struct mk_thread *t = w[3];
        uint32_t lt = mk_type(m, t, "_thread.lock");
        uint32_t st = mk_stack(m, t, 2, (struct mk_frame[]){{"Bank.audit", 17, false}, {"Worker.run", 42, true}});
        uint64_t start = t0 + 5 * MS;
        struct mk_wait a = {.kind = FTP_KIND_LOCK, .addr = ACCOUNTS, .type_id = lt, .stack_id = st, .start = start,
                            .park = start + 1 * US, .end = start + 500 * US, .flags = FTP_WAIT_CONTINUES,
                            .acq_seq = 777};
        mk_wait(m, t, &a);
        struct mk_wait b = a;
        b.start = start + 500 * US;
        b.park = start + 501 * US;
        b.end = start + 2 * MS;
        b.flags = FTP_WAIT_CONTINUATION;
        mk_wait(m, t, &b);
        for (int k = 1; k < 50; k++)
            mk_acquire(m, t, FTP_KIND_LOCK, ACCOUNTS, lt, st, t0 + 20 * MS + (uint64_t)k * 5 * MS, 2 * MS, 2 * US, false);
    }
    /* Spins that never parked: 100 on the transfer stack (attributed to ACCOUNTS), 20 on a stack that
     * never parks anywhere. */
    for (int k = 0; k < 100; k++) {
        uint32_t st = mk_stack(m, w[0], 2, (struct mk_frame[]){{"Bank.transfer", 12, false}, {"Worker.run", 40, true}});
        mk_acquire(m, w[0], FTP_KIND_SPIN, 0, 0, st, t0 + 400 * MS + (uint64_t)k * 20 * US, 10 * US, 10 * US, false);
    }
    /* 10 spins at the same line under a caller that never parked: matched by the innermost frame. */
    for (int k = 0; k < 10; k++) {
        uint32_t st = mk_stack(m, w[2], 2, (struct mk_frame[]){{"Bank.transfer", 12, false}, {"main", 47, true}});
        mk_acquire(m, w[2], FTP_KIND_SPIN, 0, 0, st, t0 + 405 * MS + (uint64_t)k * 20 * US, 10 * US, 10 * US, false);
    }
    for (int k = 0; k < 20; k++) {
        uint32_t st = mk_stack(m, w[1], 2, (struct mk_frame[]){{"Cache.__init__", 23, false}, {"main", 46, true}});
        mk_acquire(m, w[1], FTP_KIND_SPIN, 0, 0, st, t0 + 410 * MS + (uint64_t)k * 20 * US, 5 * US, 5 * US, false);
    }
    /* A dict's critical section: 4 workers × 50 waits of 50 µs. */
    for (int i = 0; i < 4; i++) {
        uint32_t dt = mk_type(m, w[i], "dict");
        uint32_t st = mk_stack(m, w[i], 2, (struct mk_frame[]){{"Cache.get", 26, false}, {"Worker.run", 40, true}});
        for (int k = 0; k < 50; k++)
            mk_acquire(m, w[i], FTP_KIND_CRITICAL_SECTION, CACHE_DICT, dt, st,
                       t0 + 420 * MS + (uint64_t)k * 100 * US + (uint64_t)i * US, 50 * US, 50 * US, false);
    }
    /* The main thread waits for work in Condition.wait (10 × 20 ms) and re-acquires the condition's
     * RLock afterwards (5 × 1 ms: lock contention, not waiting for work). */
    for (int k = 0; k < 10; k++) {
        uint32_t st = mk_stack(m, main_t, 2, (struct mk_frame[]){{"Condition.wait", 19, false}, {"consume", 32, true}});
        mk_acquire(m, main_t, FTP_KIND_LOCK, COND_WAITER + (uint64_t)k * 0x100, 0, st,
                   t0 + 20 * MS + (uint64_t)k * 25 * MS, 20 * MS, 1 * US, true);
    }
    for (int k = 0; k < 5; k++) {
        uint32_t st = mk_stack(m, main_t, 2, (struct mk_frame[]){{"Condition.wait", 22, false}, {"consume", 32, true}});
        mk_acquire(m, main_t, FTP_KIND_RLOCK, COND_LOCK, 0, st, t0 + 300 * MS + (uint64_t)k * 2 * MS, 1 * MS, 1 * US, false);
    }
    /* Joining the 4 workers: 100 ms each, on each worker's thread-state lock (a PyEvent). */
    for (int i = 0; i < 4; i++) {
        uint32_t st = mk_stack(m, main_t, 3, (struct mk_frame[]){{"Thread._wait_for_tstate_lock", 38, false},
                                                                  {"Thread.join", 34, false}, {"main", 50, true}});
        mk_acquire(m, main_t, FTP_KIND_EVENT, TSTATE_LOCK + (uint64_t)i * 0x1000, 0, st,
                   t0 + 500 * MS + (uint64_t)i * 100 * MS, 100 * MS, 1 * US, false);
    }
    /* A PyEvent outside Thread.join. */
    for (int k = 0; k < 3; k++) {
        uint32_t st = mk_stack(m, w[2], 1, (struct mk_frame[]){{"Worker.run", 38, true}});
        mk_acquire(m, w[2], FTP_KIND_EVENT, PYEVENT, 0, st, t0 + 450 * MS + (uint64_t)k * 2 * MS, 1 * MS, 1 * US, false);
    }
    /* An extension re-enables the GIL at +500 ms: 5 GIL waits before, 10 after, 100 µs each. */
    mk_gil_enabled(m, w[0], t0 + 500 * MS, "/opt/ext/_ext.cpython-313t-x86_64-linux-gnu.so");
    for (int k = 0; k < 15; k++) {
        struct mk_thread *t = w[k % 4];
        uint32_t st = mk_stack(m, t, 2, (struct mk_frame[]){{"Bank.transfer", 13, false}, {"Worker.run", 40, true}});
        uint64_t start = k < 5 ? t0 + 100 * MS + (uint64_t)k * MS : t0 + 600 * MS + (uint64_t)k * MS;
        mk_acquire(m, t, FTP_KIND_GIL, GIL_MUTEX, 0, st, start, 100 * US, 100 * US, false);
    }
    /* A native mutex wait of a thread with no Python frames (stack id 0) and no type. */
    {
        struct mk_wait a = {.kind = FTP_KIND_PTHREAD_MUTEX, .addr = NATIVE_MUTEX, .stack_id = 0,
                            .start = t0 + 700 * MS, .park = t0 + 700 * MS + 1 * US, .end = t0 + 700 * MS + 30 * US};
        mk_wait(m, w[3], &a);
    }
    /* A PyMutex inside the runtime state: named by its offset. */
    {
        uint32_t st = mk_stack(m, w[3], 1, (struct mk_frame[]){{"Worker.run", 39, true}});
        struct mk_wait a = {.kind = FTP_KIND_PYMUTEX, .region = FTP_REGION_RUNTIME, .region_offset = 0x1a8,
                            .addr = 0x7f0022009000ull, .stack_id = st, .start = t0 + 710 * MS,
                            .park = t0 + 710 * MS + 1 * US, .end = t0 + 710 * MS + 40 * US};
        mk_wait(m, w[3], &a);
    }
    m->end_ns = t0 + 1000 * MS;
}

/* Records that point at ids the file never defines, as a damaged or hostile file may: a native
 * mutex wait with an undefined stack and type, a Condition.wait whose stack names an undefined code
 * object under the real Condition.wait frame's caller, and a wake-up from an undefined stack. */
static void mk_dangling(struct mk *m)
{
    struct mk_thread *t = mk_thread(m, 5000, "dangling");
    uint64_t t0 = m->start_ns + 800 * MS;
    struct mk_wait a = {.kind = FTP_KIND_PTHREAD_MUTEX, .addr = NATIVE_MUTEX + 0x40, .type_id = 77, .stack_id = 999,
                        .start = t0, .park = t0 + 1 * US, .end = t0 + 30 * US};
    uint64_t ev = mk_wait(m, t, &a);
    mk_holder(m, t, 998, ev, t0 + 30 * US, NATIVE_MUTEX + 0x40);
    /* A stack whose only frame names code id 555: defined, but its code never is. */
    uint32_t id = (uint32_t)++m->n_stacks;
    struct ftp_rec_stack *r = mk_raw(m, t, sizeof(*r) + sizeof(struct ftp_py_frame));
    r->stack_id = id;
    r->py_count = 1;
    r->hash = 0x5555;
    struct ftp_py_frame f = {.code_id = 555, .instr_offset = 0};
    memcpy(r + 1, &f, sizeof(f));
    r->h.type = FTP_REC_STACK;
    r->h.size = sizeof(*r) + sizeof(f);
    mk_acquire(m, t, FTP_KIND_LOCK, COND_WAITER + 0x8000, 0, id, t0 + 100 * US, 5 * MS, 1 * US, true);
}

/* Native frames point into this very program, which the symbolizer can read: a leaf, a caller between
 * two eval-loop calls, and an outer function. The function named like CPython's eval loop stands in
 * for it, so the analyzer's splicing of Python frames can be checked without an interpreter. */
static volatile int mk_native_sink;
__attribute__((noinline)) void mk_native_leaf(void) { mk_native_sink = 1; }
__attribute__((noinline)) void _PyEval_EvalFrameDefault(void) { mk_native_sink = 2; }
__attribute__((noinline)) void mk_native_mid(void) { mk_native_sink = 3; }
__attribute__((noinline)) void mk_native_outer(void) { mk_native_sink = 4; }

struct mk_self {
    uint64_t bias, start, end;
    uint8_t build_id[64];
    size_t build_id_len;
};

static int mk_self_phdr(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct mk_self *self = data;
    if (info->dlpi_name && info->dlpi_name[0])
        return 0; /* the main program comes first, with an empty name */
    self->bias = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            self->start = info->dlpi_addr + ph->p_vaddr;
            self->end = self->start + ph->p_memsz;
        } else if (ph->p_type == PT_NOTE) {
            const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *e = p + ph->p_memsz;
            while (p + sizeof(ElfW(Nhdr)) <= e) {
                const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
                const char *name = p + sizeof(*nh);
                const char *desc = name + ((nh->n_namesz + 3) & ~3u);
                if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                    nh->n_descsz <= sizeof(self->build_id)) {
                    memcpy(self->build_id, desc, nh->n_descsz);
                    self->build_id_len = nh->n_descsz;
                }
                p = desc + ((nh->n_descsz + 3) & ~3u);
            }
        }
    }
    return 1;
}

static void mk_module(struct mk *m, struct mk_thread *t, uint64_t bias, uint64_t start, uint64_t end, const uint8_t *bid,
                      size_t bid_len, const char *path)
{
    size_t plen = strlen(path);
    uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_module) + bid_len + plen));
    struct ftp_rec_module *r = mk_raw(m, t, size);
    r->base = bias;
    r->start = start;
    r->end = end;
    r->build_id_len = (uint16_t)bid_len;
    r->path_len = (uint16_t)plen;
    if (bid_len)
        memcpy(r + 1, bid, bid_len);
    memcpy((char *)(r + 1) + bid_len, path, plen);
    r->h.type = FTP_REC_MODULE;
    r->h.size = size;
}

static void mk_native(struct mk *m)
{
    struct mk_self self = {0};
    dl_iterate_phdr(mk_self_phdr, &self);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0 || !self.start)
        mk_die("cannot find this program's own mapping");
    exe[n] = 0;
    m->features = FTP_FEATURE_NATIVE_STACKS;
    struct mk_thread *t = mk_thread(m, 3000, "native");
    /* The recorder's own library: its frames must not show. */
    const uint64_t rec_base = 0x7e0000000000ull;
    mk_module(m, t, rec_base, rec_base + 0x1000, rec_base + 0x9000, NULL, 0, "/opt/ftprof/lib/libftprof.so");
    mk_module(m, t, self.bias, self.start, self.end, self.build_id, self.build_id_len, exe);

    /* Return addresses point just past a call: any byte inside the caller will do. */
    uint64_t leaf = (uint64_t)(uintptr_t)&mk_native_leaf, eval = (uint64_t)(uintptr_t)&_PyEval_EvalFrameDefault + 2,
             mid = (uint64_t)(uintptr_t)&mk_native_mid + 2, outer = (uint64_t)(uintptr_t)&mk_native_outer + 2;
    const uint64_t spliced[] = {rec_base + 0x1100, rec_base + 0x1200, leaf + 2, eval, mid, eval, outer};
    uint32_t s1 = mk_stack_native(m, t, 3,
                                  (struct mk_frame[]){{"Bank.transfer", 12, true}, {"Worker.run", 40, false},
                                                      {"main", 50, true}},
                                  7, spliced);
    const uint64_t no_eval[] = {leaf, mid, outer};
    uint32_t s2 = mk_stack_native(m, t, 1, (struct mk_frame[]){{"Cache.get", 26, true}}, 3, no_eval);
    for (int k = 0; k < 5; k++)
        mk_acquire(m, t, FTP_KIND_PTHREAD_MUTEX, 0x7f0033001000ull, 0, s1, m->start_ns + (uint64_t)k * MS, 100 * US,
                   10 * US, false);
    for (int k = 0; k < 3; k++)
        mk_acquire(m, t, FTP_KIND_PTHREAD_MUTEX, 0x7f0033002000ull, 0, s2, m->start_ns + 10 * MS + (uint64_t)k * MS,
                   50 * US, 10 * US, false);
    m->end_ns = m->start_ns + 20 * MS;
}

static void mk_bench(struct mk *m, uint64_t n)
{
    struct mk_thread *t[8];
    mk_threads(m, t, 8, 2000, "bench", 0);
    static const struct mk_frame inner[] = {
        {"Bank.transfer", 12, false}, {"Bank.transfer", 13, false}, {"Bank.audit", 17, false},
        {"Bank.audit", 18, false},    {"Cache.get", 26, false},     {"consume", 31, false},
        {"consume", 32, false},       {"Cache.__init__", 23, false},
    };
    static const struct mk_frame outer[] = {{"Worker.run", 40, false}, {"Worker.run", 42, false},
                                            {"Worker.run", 38, false}, {"main", 46, false}};
    static const uint8_t kinds[] = {FTP_KIND_LOCK, FTP_KIND_CRITICAL_SECTION, FTP_KIND_RLOCK, FTP_KIND_PYMUTEX};
    uint32_t stacks[8][32];
    for (int i = 0; i < 8; i++)
        for (int s = 0; s < 32; s++) {
            struct mk_frame f[3] = {inner[s % 8], outer[s / 8], {"main", 50, true}};
            stacks[i][s] = mk_stack(m, t[i], 3, f);
        }
    uint32_t dict = mk_type(m, t[0], "dict");
    uint64_t x = 0x2545f4914f6cdd1dull, now = m->start_ns;
    for (uint64_t e = 0; e < n; e++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        struct mk_thread *th = t[e % 8];
        unsigned lock = (unsigned)(x % 64);
        uint64_t wait = 1000 + (x >> 20) % 2000000;
        uint64_t ev = mk_acquire(m, th, kinds[lock % 4], 0x7f0000100000ull + lock * 0x40,
                                 kinds[lock % 4] == FTP_KIND_CRITICAL_SECTION ? dict : 0,
                                 stacks[e % 8][(x >> 8) % 32], now, wait, wait / 4, (x & 1) != 0);
        if (e % 4 == 0)
            mk_holder(m, t[(e + 1) % 8], stacks[(e + 1) % 8][(x >> 14) % 32], ev, now + wait,
                      0x7f0000100000ull + lock * 0x40);
        now += 100;
    }
    m->end_ns = now + 1000;
}

static void mk_write(struct mk *m, const char *path, uint16_t min_reader, uint16_t version)
{
    struct ftp_file_header h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, FTP_MAGIC, FTP_MAGIC_LEN);
    h.version = version;
    h.min_reader_version = version ? min_reader : 0;
    h.header_size = FTP_HEADER_SIZE;
    h.flags = ((FTP_FLAG_PYTHON | FTP_FLAG_FREE_THREADED | FTP_FLAG_FINISHED) | m->set_flags) & ~m->clear_flags;
    memcpy(h.notes, m->notes, sizeof(h.notes));
    h.notes_len = m->notes_len;
    h.disk_full_events = m->disk_full_events;
    h.features = m->features;
    h.chunk_size = m->chunk_size;
    h.chunk_count = m->chunks_used ? m->chunks_used + 2 : 0; /* room the recorder never used */
    h.chunks_used = m->chunks_used;
    h.pid = 4242;
    h.ppid = 1;
    h.start_ns = m->start_ns;
    h.start_realtime_ns = 1764100000000000000ull;
    h.end_ns = m->end_ns;
    h.dropped_events = m->dropped;
    h.python_version = 0x030d05f0;
    static const char argv[] = "python3.13t\0bank.py";
    h.argc = 2;
    h.argv_len = sizeof(argv);
    memcpy(h.argv, argv, sizeof(argv));

    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        mk_die("%s: %s", path, strerror(errno));
    size_t body = (size_t)h.chunk_count * m->chunk_size;
    if (write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
        mk_die("%s: write failed", path);
    size_t have = (size_t)m->chunks_used * m->chunk_size, done = 0;
    while (done < have) {
        ssize_t n = write(fd, m->data + done, have - done);
        if (n <= 0)
            mk_die("%s: write failed", path);
        done += (size_t)n;
    }
    if (ftruncate(fd, (off_t)(sizeof(h) + body)) != 0 || close(fd) != 0)
        mk_die("%s: write failed", path);
}

/* Waits without a stack (a thread's start-up before its first frame; the GIL before it) next to spins
 * that never parked and have no stack either: 4 threads wait on ACCOUNTS (a threading.Lock), 2 on the
 * GIL's mutex, all without a stack; 6 threads spin without a stack. No spin may land on either lock. */
static void mk_stackless_spins(struct mk *m)
{
    uint64_t t0 = m->start_ns;
    struct mk_thread *t[6];
    mk_threads(m, t, 6, 2001, "Spinner", 1);
    for (int i = 0; i < 4; i++) {
        uint32_t lt = mk_type(m, t[i], "_thread.lock");
        for (int k = 0; k < 10; k++)
            mk_acquire(m, t[i], FTP_KIND_LOCK, ACCOUNTS, lt, 0, t0 + (uint64_t)(k * 4 + i) * MS, 1 * MS, 1 * US, false);
    }
    for (int i = 4; i < 6; i++)
        for (int k = 0; k < 5; k++)
            mk_acquire(m, t[i], FTP_KIND_GIL, GIL_MUTEX, 0, 0, t0 + 100 * MS + (uint64_t)(k * 2 + i) * MS, 1 * MS, 1 * US, false);
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 5; k++)
            mk_acquire(m, t[i], FTP_KIND_SPIN, 0, 0, 0, t0 + 200 * MS + (uint64_t)(k * 6 + i) * 100 * US, 50 * US, 50 * US, false);
    /* With native stacks: a stack of native frames only, no Python frame, is no ground to place a spin on
     * the PyMutex parked on from it (without FTPROF_NATIVE both would have had no stack at all). */
    const uint64_t nat[] = {0x400100, 0x400200};
    for (int k = 0; k < 4; k++)
        mk_acquire(m, t[0], FTP_KIND_PYMUTEX, 0x7f0099000000ull, 0, mk_stack_native(m, t[0], 0, NULL, 2, nat),
                   t0 + 260 * MS + (uint64_t)k * 2 * MS, 1 * MS, 1 * US, false);
    for (int k = 0; k < 5; k++)
        mk_acquire(m, t[1], FTP_KIND_SPIN, 0, 0, mk_stack_native(m, t[1], 0, NULL, 2, nat),
                   t0 + 270 * MS + (uint64_t)k * 100 * US, 50 * US, 50 * US, false);
    /* A native pool's worker waiting on its own condition variable (a BLAS thread pool, say). */
    for (int k = 0; k < 3; k++)
        mk_acquire(m, t[5], FTP_KIND_COND_WAIT, NATIVE_MUTEX + 0x40, 0, 0, t0 + 250 * MS + (uint64_t)k * 10 * MS,
                   5 * MS, 1 * US, false);
    m->end_ns = t0 + 300 * MS;
}

/* The recorder's notes (header.notes) as a run could leave them: one shown on stderr, one not, one still
 * being written (its bytes claimed, only a first part copied: zeros follow), one whose status byte is
 * damaged and holds a control character, and more claimed than the area holds (notes_len past it). */
/* Extension modules: one declaring support (multi-phase), one declaring it late (single-phase, created
 * then SetGIL), one declaring nothing that re-enabled the GIL, imported from a worker, one already
 * loaded at the start, and a DECLARED record for an object never loaded (ignored). The program's
 * modules are files of `dir` (a test lays out a site-packages there). */
static void mk_extensions(struct mk *m, const char *dir)
{
    char fast[512], single[512], legacy[512];
    snprintf(fast, sizeof fast, "%s/pkg/fast.cpython-314t-x86_64-linux-gnu.so", dir);
    snprintf(single, sizeof single, "%s/single.cpython-314t-x86_64-linux-gnu.so", dir);
    snprintf(legacy, sizeof legacy, "%s/legacy.cpython-314t-x86_64-linux-gnu.so", dir);
    uint64_t t0 = m->start_ns;
    struct mk_thread *main_t = mk_thread(m, 2000, "python3.14t"), *w = mk_thread(m, 2001, "Worker-1");
    uint32_t st = mk_stack(m, main_t, 1, (struct mk_frame[]){{"main", 46, true}});
    mk_extension(m, main_t, FTP_EXT_LOADED | FTP_EXT_BEFORE_START, 0, t0, 0x7f0000100000ull, 0, 0, "_json",
                 "/opt/py/lib/python3.14t/lib-dynload/_json.cpython-314t-x86_64-linux-gnu.so");
    mk_extension(m, main_t, FTP_EXT_LOADED, st, t0 + 10 * MS, 0x7f0000200000ull, 0, 0, "fast", fast);
    mk_extension(m, main_t, FTP_EXT_DECLARED, 0, t0 + 10 * MS, 0x7f0000200000ull, FTP_EXT_GIL_NOT_USED,
                 FTP_EXT_INIT_MULTI, "pkg.fast", "");
    mk_extension(m, main_t, FTP_EXT_LOADED, st, t0 + 20 * MS, 0x7f0000300000ull, 0, 0, "single", single);
    mk_extension(m, main_t, FTP_EXT_DECLARED, 0, t0 + 20 * MS, 0x7f0000300000ull, FTP_EXT_GIL_USED,
                 FTP_EXT_INIT_SINGLE, "single", "");
    mk_extension(m, main_t, FTP_EXT_DECLARED, 0, t0 + 20 * MS, 0x7f0000300000ull, FTP_EXT_GIL_NOT_USED, 0, "", "");
    uint32_t wst = mk_stack(m, w, 1, (struct mk_frame[]){{"Worker.run", 40, true}});
    mk_extension(m, w, FTP_EXT_LOADED, wst, t0 + 300 * MS, 0x7f0000400000ull, 0, 0, "legacy", legacy);
    mk_extension(m, w, FTP_EXT_DECLARED, 0, t0 + 300 * MS, 0x7f0000400000ull, FTP_EXT_GIL_USED, FTP_EXT_INIT_SINGLE,
                 "legacy", "");
    mk_gil_enabled(m, w, t0 + 301 * MS, legacy);
    mk_extension(m, w, FTP_EXT_DECLARED, 0, t0 + 400 * MS, 0x7f0000500000ull, FTP_EXT_GIL_USED, 0, "ghost", "");
}

static void mk_notes(struct mk *m)
{
    static const char shown[] = "+FTPROF_BUFFER=lots is not a size like 64M; using the default\n";
    static const char unshown[] = "-/data/rec.ftp: the disk is full (no space left on device)\n";
    static const char partial[] = "-recording st"; /* "-recording stopped: ...\n" claimed, half copied */
    static const char damaged[] = "#odd\x01note\n";
    size_t n = 0;
    memcpy(m->notes + n, shown, sizeof(shown) - 1), n += sizeof(shown) - 1;
    memcpy(m->notes + n, unshown, sizeof(unshown) - 1), n += sizeof(unshown) - 1;
    memcpy(m->notes + n, partial, sizeof(partial) - 1), n += 40; /* 27 bytes still 0 */
    memcpy(m->notes + n, damaged, sizeof(damaged) - 1), n += sizeof(damaged) - 1;
    m->notes_len = FTP_NOTES_MAX + 100;
}

int main(int argc, char **argv)
{
    const char *fixture = NULL, *srcdir = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "f:s:")) != -1) {
        if (opt == 'f')
            fixture = optarg;
        else if (opt == 's')
            srcdir = optarg;
        else
            return 2;
    }
    if (argc - optind < 2) {
        fprintf(stderr, "usage: mkrec [-f FIXTURE] [-s SRCDIR] bank|dropped|dangling|version0|diskfull|exec|notes|notes_v5|bench|native|stackless_spins|extensions|empty|newer OUT [N|DIR]\n");
        return 2;
    }
    const char *scenario = argv[optind], *out = argv[optind + 1];
    static struct mk m;
    m.srcdir = srcdir ? srcdir : FTPROF_FIXTURE_DIR;
    mk_load_fixture(&m, fixture ? fixture : FTPROF_FIXTURE_DIR "/linetables.txt");
    m.start_ns = 1000000000ull;
    m.chunk_size = 4096;
    uint16_t min_reader = FTP_MIN_READER_VERSION;
    if (strcmp(scenario, "bank") == 0 || strcmp(scenario, "dropped") == 0 || strcmp(scenario, "newer") == 0 ||
        strcmp(scenario, "dangling") == 0 || strcmp(scenario, "version0") == 0 || strcmp(scenario, "diskfull") == 0 ||
        strcmp(scenario, "exec") == 0 || strcmp(scenario, "notes") == 0 || strcmp(scenario, "notes_v5") == 0) {
        mk_bank(&m);
        if (strcmp(scenario, "diskfull") == 0) {
            m.set_flags = FTP_FLAG_DISK_FULL;
            m.disk_full_events = 37;
        }
        if (strcmp(scenario, "notes") == 0 || strcmp(scenario, "notes_v5") == 0)
            mk_notes(&m);
        if (strcmp(scenario, "exec") == 0) {
            m.set_flags = FTP_FLAG_ENDED_BY_EXEC;
            m.clear_flags = FTP_FLAG_FINISHED;
        }
        if (strcmp(scenario, "dangling") == 0)
            mk_dangling(&m);
        if (strcmp(scenario, "dropped") == 0)
            m.dropped = 1234;
        if (strcmp(scenario, "newer") == 0)
            min_reader = FTP_VERSION + 1;
    } else if (strcmp(scenario, "bench") == 0) {
        m.chunk_size = 1u << 20;
        mk_bench(&m, argc - optind > 2 ? strtoull(argv[optind + 2], NULL, 10) : 5000000);
    } else if (strcmp(scenario, "native") == 0) {
        mk_native(&m);
    } else if (strcmp(scenario, "stackless_spins") == 0) {
        mk_stackless_spins(&m);
    } else if (strcmp(scenario, "extensions") == 0) {
        mk_extensions(&m, argc - optind > 2 ? argv[optind + 2] : "/opt/app");
    } else if (strcmp(scenario, "empty") == 0) {
        m.end_ns = m.start_ns;
    } else {
        fprintf(stderr, "mkrec: unknown scenario %s\n", scenario);
        return 2;
    }
    mk_write(&m, out, min_reader, strcmp(scenario, "version0") == 0 ? 0 : strcmp(scenario, "notes_v5") == 0 ? 5 : FTP_VERSION);
    fprintf(stderr, "mkrec: %s: %llu wait events, %u chunks of %u bytes\n", out, (unsigned long long)m.events,
            m.chunks_used, m.chunk_size);
    return 0;
}
