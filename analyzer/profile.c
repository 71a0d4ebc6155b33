#include "profile.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linetable.h"
#include "profile_hist.h"
#include "profile_map.h"
#include "reader.h"
#include "symbolize.h"

#define PROF_UNKNOWN "[unknown]"
#define PROF_NO_FRAMES "[no stack]"
#define PROF_NO_STACK UINT32_MAX
#define PROF_PENDING_SLOTS (1u << 16) /* holder/waiter join table: 1.5 MiB */
#define PROF_SOURCE_MAX (16u << 20)
#define PROF_LOCK_TIDS 8

/* Map key tags, so one map can hold several kinds of keys without collisions. */
enum { TAG_LOCK_TID = 1, TAG_SPIN_TID = 2 };

enum {
    CLS_CONDITION = 1, /* waiting inside Condition.wait for a notify */
    CLS_JOIN = 2,      /* inside Thread.join */
};

struct pcode {
    const char *qualname, *filename;
    int32_t firstlineno;
    uint8_t *linetable;
    uint32_t linetable_len;
};

struct pstack {
    uint32_t file;
    uint16_t py_count, native_count;
    struct ftp_py_frame *py;
    uint64_t *native;
    int cls; /* -1 until computed */
    int dangling; /* -1 until computed; 1: a frame names a code id the recording never defined */
    const struct prof_stack *resolved;
};

struct pmodule {
    uint64_t base, start, end;
    const char *path;
    uint8_t *build_id;
    size_t build_id_len;
};

/* Names the fields of one interpreter binary's state from its debug information. Recordings of the
 * same binary (worker processes, forked children: another load address each) share it, so memory
 * grows with the number of distinct interpreters, not of recordings. */
struct pnamer {
    const struct pmodule *module; /* the first recording's description of the binary */
    struct symbolizer *sym;       /* NULL: no usable debug information */
};
#define PROF_NAMERS 8

struct pfiledefs {
    struct pmodule *mods;
    size_t n_mods, cap_mods;
    struct symbolizer *sym;
    bool sym_built;
    uint64_t max_end_ns;
    uint64_t python_runtime; /* &_PyRuntime in the recorded process, 0 if unknown */
};

struct pacq {
    uint32_t file, tid;
    bool open, handed_off;
    uint8_t raw_kind, region;
    uint32_t stack_id, type_id, region_offset;
    uint64_t acq_seq, start, park, end, addr;
};

struct plock {
    uint32_t file;
    enum prof_kind kind;
    uint8_t raw_kind, region;
    uint32_t type_id, region_offset;
    uint64_t addr;
    uint64_t contentions, wait, min, max, spin, handoffs, parked;
    uint32_t threads;
    struct phist *hist;
    uint32_t recent_tids[PROF_LOCK_TIDS]; /* threads already counted, checked before the map */
    bool merged;     /* one row for many short-lived objects: condition waiter locks, joined threads */
    uint32_t hgroup; /* for merged locks: 1 + their holder group */
};

struct psite {
    uint32_t owner; /* lock or holder group index */
    uint32_t stack_id;
    uint64_t wait, count;
};

struct pspin {
    uint32_t file, stack_id;
    uint64_t count, wait, spin, min, max;
    struct phist hist;
};

struct phgroup {
    uint32_t file;
    uint64_t addr;
    struct prof_site *sites;
    size_t n_sites;
};

struct psource {
    char *data;
    size_t len;
    size_t *starts;
    size_t n_lines;
};

#define PROF_LOCK_CACHE 1024
#define PROF_SITE_CACHE 4096

struct prof_pending {
    uint64_t event_id;
    uint64_t value; /* the woken wait, or for a holder the index of its site */
    uint32_t file;  /* 1 + file index; 0: empty */
    bool holder;
    uint8_t age;
};

struct prof_lock_cache {
    uint64_t addr, k2;
    uint32_t index;
    bool valid;
};

struct prof_internal {
    struct pstr_pool strs;
    struct pmap codes_map, stacks_map, types_map, threads_map, acqs_map, locks_map, sites_map, tids_map, spins_map,
        hgroups_map, hsites_map, lines, interned_stacks, sources_map, aliases;
    struct pcode *codes;
    size_t n_codes, cap_codes;
    struct pstack *stacks;
    size_t n_stacks, cap_stacks;
    struct pacq *acqs;
    size_t n_acqs, cap_acqs;
    struct plock *locks;
    size_t n_locks, cap_locks;
    struct psite *sites;
    size_t n_sites, cap_sites;
    struct pspin *spins;
    size_t n_spins, cap_spins;
    struct phgroup *hgroups;
    size_t n_hgroups, cap_hgroups;
    struct psite *hsites;
    size_t n_hsites, cap_hsites;
    struct pfiledefs *defs;
    size_t cap_threads, cap_gil;
    struct prof_stack **rstacks; /* resolved stacks, owned here */
    size_t n_rstacks, cap_rstacks;
    struct prof_site **site_lists;
    size_t n_site_lists, cap_site_lists;
    struct psource *sources;
    size_t n_sources, cap_sources;
    char stdlib_dir[PATH_MAX]; /* where "<frozen ...>" sources live; "" until looked for */
    struct pnamer namers[PROF_NAMERS]; /* one per interpreter binary, shared by its recordings */
    size_t n_namers;
    bool stdlib_looked;
    struct prof_pending *pending;
    struct prof_lock_cache lock_cache[PROF_LOCK_CACHE];
    uint32_t site_cache[PROF_SITE_CACHE]; /* 1 + index into sites */
    uint32_t cur_file;
    size_t last_acq; /* the acquisition touched last: consecutive records mostly share a thread */
    bool oom;
    struct profile *p;
};

static const char *const prof_kind_names[PROF_KIND_COUNT] = {
    [PROF_KIND_LOCK] = "lock",
    [PROF_KIND_RLOCK] = "rlock",
    [PROF_KIND_CRITICAL_SECTION] = "critical_section",
    [PROF_KIND_PYMUTEX] = "pymutex",
    [PROF_KIND_STOP_THE_WORLD] = "stop_the_world",
    [PROF_KIND_GIL] = "gil",
    [PROF_KIND_CONDITION] = "condition",
    [PROF_KIND_THREAD_JOIN] = "thread_join",
    [PROF_KIND_PTHREAD_MUTEX] = "pthread_mutex",
    [PROF_KIND_PTHREAD_RWLOCK] = "pthread_rwlock",
    [PROF_KIND_OTHER] = "other",
};

const char *prof_kind_name(enum prof_kind k)
{
    return (unsigned)k < PROF_KIND_COUNT ? prof_kind_names[k] : "other";
}

bool prof_kind_is_contention(enum prof_kind k)
{
    return k != PROF_KIND_CONDITION && k != PROF_KIND_THREAD_JOIN;
}

/* Grows *arr to hold one more element; returns the new element zeroed, or NULL (oom set). */
static void *prof_push(struct prof_internal *in, void **arr, size_t *n, size_t *cap, size_t elem)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        void *na = realloc(*arr, ncap * elem);
        if (!na) {
            in->oom = true;
            return NULL;
        }
        *arr = na;
        *cap = ncap;
    }
    void *e = (char *)*arr + (*n)++ * elem;
    memset(e, 0, elem);
    return e;
}
#define PUSH(in, field) ((__typeof__((in)->field))prof_push((in), (void **)&(in)->field, &(in)->n_##field, \
                                                           &(in)->cap_##field, sizeof(*(in)->field)))

static const char *prof_intern(struct prof_internal *in, const char *s, size_t len)
{
    const char *r = pstr_intern(&in->strs, s, len);
    if (!r)
        in->oom = true;
    return r;
}

static uint64_t *prof_put(struct prof_internal *in, struct pmap *m, uint64_t k1, uint64_t k2, bool *inserted)
{
    uint64_t *v = pmap_put(m, k1, k2, inserted);
    if (!v)
        in->oom = true;
    return v;
}

static bool prof_is_sync_module(const char *file)
{
    static const char *const mods[] = {"/threading.py", "/queue.py"};
    if (!file)
        return false;
    size_t n = strlen(file);
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
        size_t m = strlen(mods[i]);
        if (n >= m && strcmp(file + n - m, mods[i]) == 0)
            return true;
        if (strcmp(file, mods[i] + 1) == 0)
            return true;
    }
    return false;
}

const struct prof_frame *prof_site_frame(const struct prof_stack *st, enum prof_kind kind)
{
    if (!st || st->depth == 0)
        return NULL;
    bool skip_sync = kind == PROF_KIND_CONDITION || kind == PROF_KIND_THREAD_JOIN;
    const struct prof_frame *first_py = NULL;
    for (size_t i = 0; i < st->depth; i++) {
        const struct prof_frame *f = &st->frames[i];
        if (f->native)
            continue;
        if (!first_py)
            first_py = f;
        if (!skip_sync || !prof_is_sync_module(f->file))
            return f;
    }
    return first_py ? first_py : &st->frames[0];
}

/* ---------------------------------------------------------------- source lines */

static bool prof_ends_with(const char *s, const char *suffix)
{
    if (!s)
        return false;
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* "<frozen posixpath>" names a standard-library module frozen into the interpreter, as Python's own
 * tracebacks do; its source still sits in the standard library's directory, which is where the
 * recording's threading.py came from. Returns the path of that source, or NULL. */
static const char *prof_frozen_source(struct prof_internal *in, const char *file, char *out, size_t cap)
{
    static const char prefix[] = "<frozen ";
    size_t len = strlen(file);
    if (strncmp(file, prefix, sizeof(prefix) - 1) != 0 || len < sizeof(prefix) + 1 || file[len - 1] != '>')
        return NULL;
    if (!in->stdlib_looked) {
        in->stdlib_looked = true;
        for (size_t i = 0; i < in->n_codes && !in->stdlib_dir[0]; i++) {
            const char *f = in->codes[i].filename;
            size_t n = f ? strlen(f) : 0;
            if (f && f[0] == '/' && prof_ends_with(f, "/threading.py") && n - 13 < sizeof(in->stdlib_dir))
                snprintf(in->stdlib_dir, sizeof(in->stdlib_dir), "%.*s", (int)(n - 13), f);
        }
    }
    const char *module = file + sizeof(prefix) - 1;
    size_t mlen = len - (sizeof(prefix) - 1) - 1;
    if (!in->stdlib_dir[0] || mlen == 0 || mlen > 128)
        return NULL;
    char rel[160];
    for (size_t i = 0; i < mlen; i++) {
        char c = module[i];
        if (!(c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return NULL; /* a module name, nothing else (no '/', no '..' path) */
        rel[i] = c == '.' ? '/' : c;
    }
    rel[mlen] = 0;
    int n = snprintf(out, cap, "%s/%s.py", in->stdlib_dir, rel);
    return n > 0 && (size_t)n < cap ? out : NULL;
}

static struct psource *prof_source(struct prof_internal *in, const char *file)
{
    bool ins;
    uint64_t *slot = prof_put(in, &in->sources_map, (uint64_t)(uintptr_t)file, 0, &ins);
    if (!slot)
        return NULL;
    if (!ins)
        return *slot ? &in->sources[*slot - 1] : NULL;
    char frozen[PATH_MAX];
    const char *real = prof_frozen_source(in, file, frozen, sizeof(frozen));
    if (file[0] == '<' && !real)
        return NULL; /* "<string>", "<stdin>": no file to read */
    int fd = open(real ? real : file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= PROF_SOURCE_MAX) {
        data = malloc((size_t)st.st_size + 1);
        if (data) {
            while (len < (size_t)st.st_size) {
                ssize_t r = read(fd, data + len, (size_t)st.st_size - len);
                if (r <= 0)
                    break;
                len += (size_t)r;
            }
            data[len] = 0;
        }
    }
    close(fd);
    if (!data)
        return NULL;
    struct psource *src = PUSH(in, sources);
    if (!src) {
        free(data);
        return NULL;
    }
    src->data = data;
    src->len = len;
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += data[i] == '\n';
    src->starts = malloc(n * sizeof(*src->starts));
    if (!src->starts) {
        in->n_sources--;
        free(data);
        in->oom = true;
        return NULL;
    }
    src->starts[0] = 0;
    src->n_lines = 1;
    for (size_t i = 0; i < len; i++)
        if (data[i] == '\n')
            src->starts[src->n_lines++] = i + 1;
    *slot = in->n_sources;
    return src;
}

static const char *prof_source_text(struct prof_internal *in, const char *file, int line)
{
    if (!file || line <= 0)
        return NULL;
    struct psource *src = prof_source(in, file);
    if (!src || (size_t)line > src->n_lines)
        return NULL;
    const char *b = src->data + src->starts[line - 1];
    const char *e = memchr(b, '\n', (size_t)(src->data + src->len - b));
    if (!e)
        e = src->data + src->len;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    return prof_intern(in, b, (size_t)(e - b));
}

const char *prof_source_line(struct profile *p, const char *file, int line)
{
    return prof_source_text(p->in, file, line);
}

/* ---------------------------------------------------------------- definitions (pass 1) */

static struct pcode *prof_code(struct prof_internal *in, uint32_t file, uint32_t code_id)
{
    uint64_t *v = pmap_get(&in->codes_map, file, code_id);
    return v ? &in->codes[*v] : NULL;
}

static struct pstack *prof_stack_def(struct prof_internal *in, uint32_t file, uint32_t stack_id)
{
    uint64_t *v = pmap_get(&in->stacks_map, file, stack_id);
    return v ? &in->stacks[*v] : NULL;
}

static int prof_code_line(struct prof_internal *in, uint32_t file, uint32_t code_id, uint32_t offset)
{
    struct pcode *c = prof_code(in, file, code_id);
    if (!c || !c->linetable)
        return 0;
    bool ins;
    uint64_t *slot = prof_put(in, &in->lines, ((uint64_t)file << 32) | code_id, offset, &ins);
    if (!slot)
        return 0;
    if (ins)
        *slot = (uint64_t)linetable_line(c->linetable, c->linetable_len, c->firstlineno, offset);
    return (int)*slot;
}

static void prof_def_thread(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_thread))
        return;
    const struct ftp_rec_thread *t = (const void *)rec;
    struct profile *p = in->p;
    bool ins;
    uint64_t *slot = prof_put(in, &in->threads_map, in->cur_file, t->tid, &ins);
    if (!slot)
        return;
    if (ins) {
        struct prof_thread *th = prof_push(in, (void **)&p->threads, &p->n_threads, &in->cap_threads,
                                           sizeof(*th));
        if (!th)
            return;
        th->tid = t->tid;
        th->pid = p->files[in->cur_file].pid;
        *slot = p->n_threads - 1;
    }
    /* The Python name (threading.Thread.name) when the recorder read one, else the OS name. */
    if (t->py_name_len && t->py_name_len <= rec->size - sizeof(*t)) {
        p->threads[*slot].name = prof_intern(in, (const char *)(t + 1), t->py_name_len);
        return;
    }
    size_t nlen = strnlen(t->name, sizeof(t->name));
    /* The record is repeated in every chunk the thread writes; an OS name never replaces a name
     * already known (the Python one may have come first). */
    if (nlen && !p->threads[*slot].name)
        p->threads[*slot].name = prof_intern(in, t->name, nlen);
}

static void prof_def_code(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_code))
        return;
    const struct ftp_rec_code *c = (const void *)rec;
    uint64_t need = sizeof(*c) + (uint64_t)c->filename_len + c->qualname_len + c->linetable_len;
    if (need > rec->size)
        return;
    bool ins;
    uint64_t *slot = prof_put(in, &in->codes_map, in->cur_file, c->code_id, &ins);
    if (!slot || !ins)
        return;
    struct pcode *pc = PUSH(in, codes);
    if (!pc) {
        pmap_del(&in->codes_map, in->cur_file, c->code_id);
        return;
    }
    *slot = in->n_codes - 1;
    const char *s = (const char *)(c + 1);
    pc->filename = c->filename_len ? prof_intern(in, s, c->filename_len) : NULL;
    pc->qualname = c->qualname_len ? prof_intern(in, s + c->filename_len, c->qualname_len)
                                   : prof_intern(in, PROF_UNKNOWN, strlen(PROF_UNKNOWN));
    pc->firstlineno = c->firstlineno;
    if (c->linetable_len) {
        pc->linetable = malloc(c->linetable_len);
        if (pc->linetable) {
            memcpy(pc->linetable, s + c->filename_len + c->qualname_len, c->linetable_len);
            pc->linetable_len = c->linetable_len;
        }
    }
}

static void prof_def_stack(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_stack))
        return;
    const struct ftp_rec_stack *s = (const void *)rec;
    uint64_t need = sizeof(*s) + (uint64_t)s->py_count * sizeof(struct ftp_py_frame) +
                    (uint64_t)s->native_count * sizeof(uint64_t);
    if (need > rec->size)
        return;
    bool ins;
    uint64_t *slot = prof_put(in, &in->stacks_map, in->cur_file, s->stack_id, &ins);
    if (!slot || !ins)
        return;
    struct pstack *ps = PUSH(in, stacks);
    if (!ps) {
        pmap_del(&in->stacks_map, in->cur_file, s->stack_id);
        return;
    }
    *slot = in->n_stacks - 1;
    ps->file = in->cur_file;
    ps->cls = -1;
    ps->dangling = -1;
    size_t pyb = (size_t)s->py_count * sizeof(struct ftp_py_frame);
    size_t nb = (size_t)s->native_count * sizeof(uint64_t);
    ps->py = pyb ? malloc(pyb) : NULL;
    ps->native = nb ? malloc(nb) : NULL;
    if ((pyb && !ps->py) || (nb && !ps->native)) {
        in->oom = true;
        return;
    }
    if (pyb)
        memcpy(ps->py, s + 1, pyb);
    if (nb)
        memcpy(ps->native, (const char *)(s + 1) + pyb, nb);
    ps->py_count = s->py_count;
    ps->native_count = s->native_count;
}

static void prof_def_type(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_type))
        return;
    const struct ftp_rec_type *t = (const void *)rec;
    if (sizeof(*t) + (uint64_t)t->name_len > rec->size || t->name_len == 0)
        return;
    bool ins;
    uint64_t *slot = prof_put(in, &in->types_map, in->cur_file, t->type_id, &ins);
    if (slot && ins)
        *slot = (uint64_t)(uintptr_t)prof_intern(in, (const char *)(t + 1), t->name_len);
}

static void prof_def_module(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_module))
        return;
    const struct ftp_rec_module *m = (const void *)rec;
    if (sizeof(*m) + (uint64_t)m->build_id_len + m->path_len > rec->size || m->end <= m->start)
        return;
    struct pfiledefs *d = &in->defs[in->cur_file];
    struct pmodule *pm = prof_push(in, (void **)&d->mods, &d->n_mods, &d->cap_mods, sizeof(*pm));
    if (!pm)
        return;
    const char *b = (const char *)(m + 1);
    pm->base = m->base;
    pm->start = m->start;
    pm->end = m->end;
    pm->path = prof_intern(in, b + m->build_id_len, m->path_len);
    if (m->build_id_len) {
        pm->build_id = malloc(m->build_id_len);
        if (pm->build_id) {
            memcpy(pm->build_id, b, m->build_id_len);
            pm->build_id_len = m->build_id_len;
        }
    }
}

static void prof_def_gil(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_gil_enabled))
        return;
    const struct ftp_rec_gil_enabled *g = (const void *)rec;
    if (sizeof(*g) + (uint64_t)g->path_len > rec->size)
        return;
    struct profile *p = in->p;
    struct prof_gil_event *ev = prof_push(in, (void **)&p->gil_events, &p->n_gil_events, &in->cap_gil,
                                          sizeof(*ev));
    if (!ev)
        return;
    const char *path = (const char *)(g + 1);
    size_t plen = strnlen(path, g->path_len);
    const char *base = path;
    for (size_t i = 0; i < plen; i++)
        if (path[i] == '/')
            base = path + i + 1;
    size_t blen = plen - (size_t)(base - path);
    const char *dot = memchr(base, '.', blen);
    ev->path = prof_intern(in, path, plen);
    ev->module = prof_intern(in, base, dot ? (size_t)(dot - base) : blen);
    ev->time_ns = g->time_ns;
    ev->file = in->cur_file;
}

static bool prof_visit_defs(void *ctx, uint32_t chunk, const struct ftp_record *rec)
{
    (void)chunk;
    struct prof_internal *in = ctx;
    switch (rec->type) {
    case FTP_REC_THREAD: prof_def_thread(in, rec); break;
    case FTP_REC_CODE: prof_def_code(in, rec); break;
    case FTP_REC_STACK: prof_def_stack(in, rec); break;
    case FTP_REC_TYPE: prof_def_type(in, rec); break;
    case FTP_REC_MODULE: prof_def_module(in, rec); break;
    case FTP_REC_GIL_ENABLED: prof_def_gil(in, rec); break;
    default: break;
    }
    return !in->oom;
}

/* ---------------------------------------------------------------- events (pass 2) */


static bool prof_is_threading(const char *file)
{
    return prof_ends_with(file, "/threading.py") || (file && strcmp(file, "threading.py") == 0);
}

static int prof_stack_class(struct prof_internal *in, uint32_t file, uint32_t stack_id)
{
    struct pstack *s = prof_stack_def(in, file, stack_id);
    if (!s)
        return 0;
    if (s->cls >= 0)
        return s->cls;
    int cls = 0;
    for (uint16_t i = 0; i < s->py_count; i++) {
        struct pcode *c = prof_code(in, file, s->py[i].code_id);
        if (!c || !prof_is_threading(c->filename))
            continue;
        const char *q = c->qualname;
        if (strcmp(q, "Thread.join") == 0 || prof_ends_with(q, "_wait_for_tstate_lock") ||
            strcmp(q, "_shutdown") == 0)
            cls |= CLS_JOIN;
        if (i == 0 && (strcmp(q, "Condition.wait") == 0 || strcmp(q, "Condition.wait_for") == 0)) {
            int line = prof_code_line(in, file, s->py[0].code_id, s->py[0].instr_offset & ~FTP_PY_FRAME_ENTRY);
            const char *text = prof_source_text(in, c->filename, line);
            /* Without the source, Condition.wait itself is the best evidence of waiting for a notify. */
            if (!text || strstr(text, "waiter.acquire"))
                cls |= CLS_CONDITION;
        }
    }
    s->cls = cls;
    return cls;
}

static enum prof_kind prof_refine(uint8_t raw, int cls)
{
    switch (raw) {
    case FTP_KIND_EVENT: return (cls & CLS_JOIN) ? PROF_KIND_THREAD_JOIN : PROF_KIND_OTHER;
    case FTP_KIND_LOCK: return (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_LOCK;
    case FTP_KIND_RLOCK: return (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_RLOCK;
    case FTP_KIND_PYTHREAD_LOCK: return (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_OTHER;
    case FTP_KIND_PYMUTEX: return (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_PYMUTEX;
    case FTP_KIND_COND_WAIT: return PROF_KIND_CONDITION;
    case FTP_KIND_CRITICAL_SECTION: return PROF_KIND_CRITICAL_SECTION;
    case FTP_KIND_STOP_THE_WORLD: return PROF_KIND_STOP_THE_WORLD;
    case FTP_KIND_GIL: return PROF_KIND_GIL;
    case FTP_KIND_CONDITION: return PROF_KIND_CONDITION;
    case FTP_KIND_THREAD_JOIN: return PROF_KIND_THREAD_JOIN;
    case FTP_KIND_PTHREAD_MUTEX: return PROF_KIND_PTHREAD_MUTEX;
    case FTP_KIND_PTHREAD_RWLOCK: return PROF_KIND_PTHREAD_RWLOCK;
    default: return PROF_KIND_OTHER;
    }
}

static bool prof_lock_knows_tid(struct plock *l, uint32_t tid)
{
    for (unsigned i = 0; i < PROF_LOCK_TIDS; i++)
        if (l->recent_tids[i] == tid + 1)
            return true;
    l->recent_tids[tid % PROF_LOCK_TIDS] = tid + 1;
    return false;
}

static bool prof_merged_kind(enum prof_kind kind, uint8_t raw)
{
    /* Every thread parks on its own thread state during a pause: one row for all the pauses. */
    if (kind == PROF_KIND_STOP_THE_WORLD)
        return true;
    if (kind == PROF_KIND_THREAD_JOIN)
        return raw == FTP_KIND_EVENT;
    return kind == PROF_KIND_CONDITION && (raw == FTP_KIND_LOCK || raw == FTP_KIND_RLOCK ||
                                           raw == FTP_KIND_PYTHREAD_LOCK || raw == FTP_KIND_PYMUTEX);
}

static struct plock *prof_lock_get(struct prof_internal *in, uint32_t file, uint64_t addr, enum prof_kind kind,
                                   uint32_t type_id, uint8_t raw, uint8_t region, uint32_t region_offset,
                                   uint32_t *index)
{
    /* Waits of kind `other` come from different recorder kinds that must not merge. */
    uint8_t variant = (kind == PROF_KIND_OTHER || raw == FTP_KIND_SPIN) ? raw : 0;
    if (prof_merged_kind(kind, raw))
        variant = 0xff;
    uint64_t k2 = ((uint64_t)file << 48) | ((uint64_t)kind << 40) | ((uint64_t)variant << 32) | type_id;
    /* Most acquisitions hit a lock seen moments ago: a direct-mapped cache saves the map probe. */
    struct prof_lock_cache *c = &in->lock_cache[(addr ^ (addr >> 12) ^ k2 ^ (k2 >> 29)) % PROF_LOCK_CACHE];
    if (c->valid && c->addr == addr && c->k2 == k2) {
        *index = c->index;
        return &in->locks[c->index];
    }
    bool ins;
    uint64_t *slot = prof_put(in, &in->locks_map, addr, k2, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct plock *l = PUSH(in, locks);
        if (!l) {
            pmap_del(&in->locks_map, addr, k2);
            return NULL;
        }
        l->hist = calloc(1, sizeof(*l->hist));
        if (!l->hist) {
            in->oom = true;
            in->n_locks--;
            pmap_del(&in->locks_map, addr, k2);
            return NULL;
        }
        l->file = file;
        l->addr = addr;
        l->kind = kind;
        l->type_id = type_id;
        l->raw_kind = raw;
        l->region = region;
        l->region_offset = region_offset;
        *slot = in->n_locks - 1;
    }
    *index = (uint32_t)*slot;
    *c = (struct prof_lock_cache){.addr = addr, .k2 = k2, .index = (uint32_t)*slot, .valid = true};
    return &in->locks[*slot];
}

static struct psite *prof_site_get(struct prof_internal *in, struct pmap *map, struct psite **arr, size_t *n,
                                   size_t *cap, uint32_t owner, uint32_t stack_id)
{
    bool ins;
    uint64_t *slot = prof_put(in, map, owner, stack_id, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct psite *s = prof_push(in, (void **)arr, n, cap, sizeof(**arr));
        if (!s) {
            pmap_del(map, owner, stack_id);
            return NULL;
        }
        s->owner = owner;
        s->stack_id = stack_id;
        *slot = *n - 1;
    }
    return &(*arr)[*slot];
}

static void prof_close_acq(struct prof_internal *in, struct pacq *a)
{
    a->open = false;
    uint64_t wait = a->end > a->start ? a->end - a->start : 0;
    uint64_t spin = a->park ? (a->park > a->start ? a->park - a->start : 0) : wait;
    if (spin > wait)
        spin = wait;

    if (a->raw_kind == FTP_KIND_SPIN) {
        /* Which lock a spin belongs to is known only once all parks were seen: park it by stack. */
        bool ins;
        uint64_t *slot = prof_put(in, &in->spins_map, a->file, a->stack_id, &ins);
        if (!slot)
            return;
        if (ins) {
            struct pspin *sp = PUSH(in, spins);
            if (!sp) {
                pmap_del(&in->spins_map, a->file, a->stack_id);
                return;
            }
            sp->file = a->file;
            sp->stack_id = a->stack_id;
            *slot = in->n_spins - 1;
        }
        struct pspin *sp = &in->spins[*slot];
        sp->count++;
        sp->wait += wait;
        sp->spin += spin;
        if (wait > sp->max)
            sp->max = wait;
        if (sp->count == 1 || wait < sp->min)
            sp->min = wait;
        phist_add(&sp->hist, wait);
        prof_put(in, &in->tids_map, ((uint64_t)TAG_SPIN_TID << 32) | *slot, a->tid, NULL);
        return;
    }

    enum prof_kind kind = prof_refine(a->raw_kind, prof_stack_class(in, a->file, a->stack_id));
    /* Condition.wait parks on a fresh waiter lock each time and every thread has its own join lock:
     * grouping those by address would give one row per wait, so they share one row per file and
     * remember the addresses to find their holders (notify, thread exit) later. */
    bool merge = prof_merged_kind(kind, a->raw_kind);
    uint32_t li;
    struct plock *l = prof_lock_get(in, a->file, merge ? 0 : a->addr, kind, merge ? 0 : a->type_id, a->raw_kind,
                                    merge ? 0 : a->region, merge ? 0 : a->region_offset, &li);
    if (!l)
        return;
    if (merge) {
        l->merged = true;
        uint64_t *alias = prof_put(in, &in->aliases, a->file, a->addr, NULL);
        if (alias)
            *alias = (uint64_t)li + 1;
    }
    l->contentions++;
    l->wait += wait;
    l->spin += spin;
    if (wait > l->max)
        l->max = wait;
    if (l->contentions == 1 || wait < l->min)
        l->min = wait;
    l->handoffs += a->handed_off;
    l->parked += a->park != 0;
    phist_add(l->hist, wait);
    if (!prof_lock_knows_tid(l, a->tid)) {
        bool ins = false;
        if (prof_put(in, &in->tids_map, ((uint64_t)TAG_LOCK_TID << 32) | li, a->tid, &ins) && ins)
            l->threads++;
    }
    uint32_t *sc = &in->site_cache[(li * 2654435761u ^ a->stack_id * 40503u) % PROF_SITE_CACHE];
    struct psite *s = NULL;
    if (*sc && in->sites[*sc - 1].owner == li && in->sites[*sc - 1].stack_id == a->stack_id)
        s = &in->sites[*sc - 1];
    else if ((s = prof_site_get(in, &in->sites_map, &in->sites, &in->n_sites, &in->cap_sites, li, a->stack_id)))
        *sc = (uint32_t)(s - in->sites) + 1;
    if (s) {
        s->wait += wait;
        s->count++;
    }
    if (kind == PROF_KIND_GIL) {
        struct profile *p = in->p;
        for (size_t i = 0; i < p->n_gil_events; i++)
            if (p->gil_events[i].file == a->file && a->start > p->gil_events[i].time_ns)
                p->gil_events[i].gil_wait_after_ns += wait;
    }
}

static struct pacq *prof_acq_for(struct prof_internal *in, uint32_t tid)
{
    if (in->last_acq < in->n_acqs) {
        struct pacq *a = &in->acqs[in->last_acq];
        if (a->tid == tid && a->file == in->cur_file)
            return a;
    }
    bool ins;
    uint64_t *slot = prof_put(in, &in->acqs_map, in->cur_file, tid, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct pacq *a = PUSH(in, acqs);
        if (!a) {
            pmap_del(&in->acqs_map, in->cur_file, tid);
            return NULL;
        }
        a->file = in->cur_file;
        a->tid = tid;
        *slot = in->n_acqs - 1;
    }
    in->last_acq = *slot;
    return &in->acqs[*slot];
}

/* Holders and waiters are joined through the waiter's event id; whichever comes first waits in a
 * fixed two-way table, where a newcomer may push out an older entry: memory and time per record stay
 * constant, at the price of an occasional holder whose woken wait is not known. */
static struct prof_pending *prof_pending_find(struct prof_internal *in, uint64_t event_id, bool *found)
{
    if (!in->pending) {
        in->pending = calloc(PROF_PENDING_SLOTS, sizeof(*in->pending));
        if (!in->pending) {
            in->oom = true;
            *found = false;
            return NULL;
        }
    }
    uint64_t h = (event_id ^ ((uint64_t)in->cur_file << 56)) * 0x9e3779b97f4a7c15ull;
    struct prof_pending *a = &in->pending[(h >> 40) & (PROF_PENDING_SLOTS - 2)], *b = a + 1;
    uint32_t file = in->cur_file + 1;
    if (a->file == file && a->event_id == event_id)
        return *found = true, a;
    if (b->file == file && b->event_id == event_id)
        return *found = true, b;
    *found = false;
    /* Replace an empty slot, else the entry that was not replaced last time. */
    struct prof_pending *victim = !a->file ? a : !b->file ? b : (a->age ? a : b);
    a->age ^= 1;
    b->age = !a->age;
    return victim;
}

static void prof_event_wait(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_wait))
        return;
    const struct ftp_rec_wait *w = (const void *)rec;
    struct profile *p = in->p;
    p->events++;
    struct pfiledefs *d = &in->defs[in->cur_file];
    if (w->end_ns > d->max_end_ns)
        d->max_end_ns = w->end_ns;
    if (rec->flags & FTP_WAIT_FAILED)
        return; /* a lock call that failed at once (EDEADLK): nobody waited, nothing was acquired */

    struct pacq *a = prof_acq_for(in, w->tid);
    if (!a)
        return;
    if (a->open && a->acq_seq == w->acq_seq) {
        if (!a->park && w->park_ns)
            a->park = w->park_ns;
        a->end = w->end_ns;
        a->handed_off = (rec->flags & FTP_WAIT_HANDED_OFF) != 0;
        if (a->raw_kind == FTP_KIND_SPIN && w->kind != FTP_KIND_SPIN) {
            /* A spin that went on to park: the parked record names the lock. */
            a->raw_kind = w->kind;
            a->addr = w->lock_addr;
            a->type_id = w->type_id;
            a->stack_id = w->stack_id;
            a->region = w->region;
            a->region_offset = w->region_offset;
        }
    } else {
        if (a->open)
            prof_close_acq(in, a);
        a->open = true;
        a->acq_seq = w->acq_seq;
        a->start = w->start_ns;
        a->park = w->park_ns;
        a->end = w->end_ns;
        a->addr = w->lock_addr;
        a->raw_kind = w->kind;
        a->region = w->region;
        a->region_offset = w->region_offset;
        a->type_id = w->type_id;
        a->stack_id = w->stack_id;
        a->handed_off = (rec->flags & FTP_WAIT_HANDED_OFF) != 0;
    }

    if (w->park_ns) {
        uint64_t wait = w->end_ns > w->start_ns ? w->end_ns - w->start_ns : 0;
        bool found;
        struct prof_pending *pe = prof_pending_find(in, w->event_id, &found);
        if (found && pe->holder) {
            in->hsites[pe->value].wait += wait;
            pe->file = 0;
        } else if (pe && !found) {
            *pe = (struct prof_pending){.event_id = w->event_id, .value = wait, .file = in->cur_file + 1,
                                        .age = pe->age};
        }
    }
}

static void prof_event_holder(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_holder))
        return;
    const struct ftp_rec_holder *h = (const void *)rec;
    bool ins;
    uint64_t *slot = prof_put(in, &in->hgroups_map, h->lock_addr, in->cur_file, &ins);
    if (!slot)
        return;
    if (ins) {
        struct phgroup *g = PUSH(in, hgroups);
        if (!g) {
            pmap_del(&in->hgroups_map, h->lock_addr, in->cur_file);
            return;
        }
        g->file = in->cur_file;
        g->addr = h->lock_addr;
        *slot = in->n_hgroups - 1;
    }
    struct psite *s = prof_site_get(in, &in->hsites_map, &in->hsites, &in->n_hsites, &in->cap_hsites,
                                    (uint32_t)*slot, h->stack_id);
    if (!s)
        return;
    s->count++;
    bool found;
    struct prof_pending *pe = prof_pending_find(in, h->waiter_event_id, &found);
    if (found && !pe->holder) {
        s->wait += pe->value;
        pe->file = 0;
    } else if (pe && !found) {
        *pe = (struct prof_pending){.event_id = h->waiter_event_id, .value = (uint64_t)(s - in->hsites),
                                    .file = in->cur_file + 1, .holder = true, .age = pe->age};
    }
}

static bool prof_visit_events(void *ctx, uint32_t chunk, const struct ftp_record *rec)
{
    (void)chunk;
    struct prof_internal *in = ctx;
    if (rec->type == FTP_REC_WAIT)
        prof_event_wait(in, rec);
    else if (rec->type == FTP_REC_HOLDER)
        prof_event_holder(in, rec);
    return !in->oom;
}

/* ---------------------------------------------------------------- resolving stacks */

struct prof_fbuf {
    struct prof_frame *v;
    size_t n, cap;
};

static void prof_fbuf_add(struct prof_internal *in, struct prof_fbuf *b, const char *function, const char *file,
                          int line, bool native)
{
    struct prof_frame *f = prof_push(in, (void **)&b->v, &b->n, &b->cap, sizeof(*f));
    if (!f)
        return;
    f->function = function;
    f->file = file;
    f->line = line;
    f->native = native;
}

static void prof_add_py(struct prof_internal *in, struct prof_fbuf *b, uint32_t file, const struct ftp_py_frame *f)
{
    struct pcode *c = f->code_id ? prof_code(in, file, f->code_id) : NULL;
    if (!c) {
        prof_fbuf_add(in, b, prof_intern(in, PROF_UNKNOWN, strlen(PROF_UNKNOWN)), NULL, 0, false);
        return;
    }
    int line = prof_code_line(in, file, f->code_id, f->instr_offset & ~FTP_PY_FRAME_ENTRY);
    prof_fbuf_add(in, b, c->qualname, c->filename, line, false);
}

enum { MOD_OTHER, MOD_RECORDER, MOD_LIBC, MOD_INTERPRETER };

static const struct pmodule *prof_module_of(struct pfiledefs *d, uint64_t pc)
{
    for (size_t i = 0; i < d->n_mods; i++)
        if (pc >= d->mods[i].start && pc < d->mods[i].end)
            return &d->mods[i];
    return NULL;
}

static int prof_module_class(const struct pmodule *m)
{
    if (!m || !m->path)
        return MOD_OTHER;
    const char *base = strrchr(m->path, '/');
    base = base ? base + 1 : m->path;
    if (strstr(base, "libftprof"))
        return MOD_RECORDER;
    if (strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0 || strncmp(base, "ld-linux", 8) == 0 ||
        strncmp(base, "libpthread", 10) == 0)
        return MOD_LIBC;
    if (strncmp(base, "python", 6) == 0 || strncmp(base, "libpython", 9) == 0)
        return MOD_INTERPRETER;
    return MOD_OTHER;
}

static struct symbolizer *prof_symbolizer(struct prof_internal *in, uint32_t file)
{
    struct pfiledefs *d = &in->defs[file];
    if (d->sym_built)
        return d->sym;
    d->sym_built = true;
    struct sym_module *mods = calloc(d->n_mods ? d->n_mods : 1, sizeof(*mods));
    if (!mods) {
        in->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < d->n_mods; i++) {
        mods[i].base = d->mods[i].base;
        mods[i].start = d->mods[i].start;
        mods[i].end = d->mods[i].end;
        mods[i].path = d->mods[i].path;
        mods[i].build_id = d->mods[i].build_id;
        mods[i].build_id_len = d->mods[i].build_id_len;
    }
    d->sym = symbolizer_new(mods, d->n_mods);
    free(mods);
    return d->sym;
}

#define PROF_MAX_INLINE 8

static size_t prof_symbolize(struct prof_internal *in, uint32_t file, const struct pstack *s, uint16_t i,
                             struct sym_frame *out)
{
    struct symbolizer *sym = prof_symbolizer(in, file);
    uint64_t pc = s->native[i];
    /* Outer frames hold return addresses: the call is the instruction before. */
    uint64_t lookup = (i > 0 && pc > 0) ? pc - 1 : pc;
    if (sym)
        return symbolizer_lookup(sym, lookup, out, PROF_MAX_INLINE);
    return 0;
}

static void prof_add_native(struct prof_internal *in, struct prof_fbuf *b, const struct pstack *s, uint16_t i,
                            const struct sym_frame *sf, size_t n)
{
    if (n == 0) {
        char name[32];
        snprintf(name, sizeof(name), "0x%llx", (unsigned long long)s->native[i]);
        prof_fbuf_add(in, b, prof_intern(in, name, strlen(name)), NULL, 0, true);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        const char *fn = sf[k].function ? sf[k].function : PROF_UNKNOWN;
        prof_fbuf_add(in, b, prof_intern(in, fn, strlen(fn)),
                      sf[k].file ? prof_intern(in, sf[k].file, strlen(sf[k].file)) : NULL, sf[k].line, true);
    }
}

static void prof_merge_native(struct prof_internal *in, struct prof_fbuf *b, uint32_t file, const struct pstack *s)
{
    struct pfiledefs *d = &in->defs[file];
    uint16_t start = 0;
    /* Our own frames, and the libc wait internals inside them, are not the program's. */
    for (uint16_t i = 0; i < s->native_count; i++) {
        int cls = prof_module_class(prof_module_of(d, s->native[i]));
        if (cls == MOD_RECORDER)
            start = (uint16_t)(i + 1);
        else if (cls != MOD_LIBC)
            break;
    }
    uint16_t nn = s->native_count - start;
    struct sym_frame (*syms)[PROF_MAX_INLINE] = calloc(nn ? nn : 1, sizeof(*syms));
    size_t *counts = calloc(nn ? nn : 1, sizeof(*counts));
    if (!syms || !counts) {
        free(syms);
        free(counts);
        in->oom = true;
        return;
    }
    bool has_eval = false;
    for (uint16_t k = 0; k < nn; k++) {
        counts[k] = prof_symbolize(in, file, s, (uint16_t)(start + k), syms[k]);
        for (size_t j = 0; j < counts[k]; j++)
            if (syms[k][j].function && strcmp(syms[k][j].function, "_PyEval_EvalFrameDefault") == 0)
                has_eval = true;
    }

    uint16_t py = 0;
    if (has_eval) {
        for (uint16_t k = 0; k < nn; k++) {
            for (size_t j = 0; j < counts[k]; j++) {
                const struct sym_frame *sf = &syms[k][j];
                if (sf->function && strcmp(sf->function, "_PyEval_EvalFrameDefault") == 0) {
                    /* One eval-loop call runs Python frames up to the one flagged as its entry. */
                    while (py < s->py_count) {
                        bool entry = (s->py[py].instr_offset & FTP_PY_FRAME_ENTRY) != 0;
                        prof_add_py(in, b, file, &s->py[py++]);
                        if (entry)
                            break;
                    }
                } else {
                    prof_add_native(in, b, s, (uint16_t)(start + k), sf, 1);
                }
            }
            if (counts[k] == 0)
                prof_add_native(in, b, s, (uint16_t)(start + k), NULL, 0);
        }
        while (py < s->py_count)
            prof_add_py(in, b, file, &s->py[py++]);
    } else {
        /* No eval-loop symbol (a stripped interpreter): Python frames go where the interpreter starts. */
        uint16_t k0 = nn;
        for (uint16_t k = 0; k < nn; k++)
            if (prof_module_class(prof_module_of(d, s->native[start + k])) == MOD_INTERPRETER) {
                k0 = k;
                break;
            }
        for (uint16_t k = 0; k < k0; k++)
            prof_add_native(in, b, s, (uint16_t)(start + k), syms[k], counts[k]);
        while (py < s->py_count)
            prof_add_py(in, b, file, &s->py[py++]);
        for (uint16_t k = k0; k < nn; k++)
            prof_add_native(in, b, s, (uint16_t)(start + k), syms[k], counts[k]);
    }
    free(syms);
    free(counts);
}

static uint64_t prof_stack_hash(const struct prof_frame *f, size_t n)
{
    uint64_t h = 0x84222325cbf29ce4ull ^ n;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint64_t)(uintptr_t)f[i].function) * 0x100000001b3ull;
        h = (h ^ (uint64_t)(uintptr_t)f[i].file) * 0x100000001b3ull;
        h = (h ^ ((uint64_t)(uint32_t)f[i].line << 1 | f[i].native)) * 0x100000001b3ull;
    }
    return h;
}

/* One prof_stack per distinct text, so sites from different ids or files merge by pointer. */
static const struct prof_stack *prof_intern_stack(struct prof_internal *in, struct prof_frame *frames, size_t n)
{
    uint64_t h = prof_stack_hash(frames, n);
    for (uint64_t probe = 0;; probe++) {
        uint64_t *v = pmap_get(&in->interned_stacks, h, probe);
        if (!v)
            break;
        const struct prof_stack *s = in->rstacks[*v];
        if (s->depth == n && memcmp(s->frames, frames, n * sizeof(*frames)) == 0) {
            free(frames);
            return s;
        }
    }
    struct prof_stack *s = malloc(sizeof(*s));
    struct prof_stack **slot = s ? PUSH(in, rstacks) : NULL;
    if (!slot) {
        free(s);
        free(frames);
        in->oom = true;
        return NULL;
    }
    s->frames = frames;
    s->depth = n;
    *slot = s;
    for (uint64_t probe = 0;; probe++) {
        bool ins;
        uint64_t *v = prof_put(in, &in->interned_stacks, h, probe, &ins);
        if (!v)
            return s;
        if (ins) {
            *v = in->n_rstacks - 1;
            return s;
        }
    }
}

static const struct prof_stack *prof_resolve(struct prof_internal *in, uint32_t file, uint32_t stack_id)
{
    struct pstack *s = prof_stack_def(in, file, stack_id);
    if (s && s->resolved)
        return s->resolved;
    struct prof_fbuf b = {0};
    if (!s && stack_id == 0) {
        /* The recorder's id for "no frames to capture", e.g. a thread past its Python code. */
        prof_fbuf_add(in, &b, prof_intern(in, PROF_NO_FRAMES, strlen(PROF_NO_FRAMES)), NULL, 0, false);
    } else if (!s) {
        prof_fbuf_add(in, &b, prof_intern(in, PROF_UNKNOWN, strlen(PROF_UNKNOWN)), NULL, 0, false);
    } else if (s->native_count == 0) {
        for (uint16_t i = 0; i < s->py_count; i++)
            prof_add_py(in, &b, file, &s->py[i]);
    } else {
        prof_merge_native(in, &b, file, s);
    }
    if (b.n == 0)
        prof_fbuf_add(in, &b, prof_intern(in, PROF_UNKNOWN, strlen(PROF_UNKNOWN)), NULL, 0, false);
    if (in->oom) {
        free(b.v);
        return NULL;
    }
    const struct prof_stack *r = prof_intern_stack(in, b.v, b.n);
    if (s)
        s->resolved = r;
    return r;
}

/* ---------------------------------------------------------------- finishing */

static int prof_site_cmp(const void *a, const void *b)
{
    const struct prof_site *x = a, *y = b;
    if (x->wait_ns != y->wait_ns)
        return x->wait_ns < y->wait_ns ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return 0;
}

static int prof_site_ptr_cmp(const void *a, const void *b)
{
    const struct prof_site *x = a, *y = b;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* Counts `count` waits or wake-ups of a site against its file if its stack id, or a code id in that
 * stack, was never defined. */
static void prof_count_dangling(struct prof_internal *in, uint32_t file, uint32_t stack_id, uint64_t count)
{
    struct prof_file *f = &in->p->files[file];
    struct pstack *s = prof_stack_def(in, file, stack_id);
    if (!s) {
        if (stack_id) /* 0 is the recorder's "no frames", not a reference */
            f->dangling_stacks += count;
        return;
    }
    if (s->dangling < 0) {
        s->dangling = 0;
        for (uint16_t i = 0; i < s->py_count && !s->dangling; i++)
            s->dangling = s->py[i].code_id && !prof_code(in, file, s->py[i].code_id);
    }
    if (s->dangling)
        f->dangling_codes += count;
}

/* Turns the psites of each owner into a sorted prof_site list, merging equal stack texts. */
static void prof_build_sites(struct prof_internal *in, const struct psite *ps, size_t n, size_t n_owners,
                             uint32_t (*file_of)(struct prof_internal *, uint32_t), struct prof_site **lists,
                             size_t *lens)
{
    size_t *fill = calloc(n_owners ? n_owners : 1, sizeof(*fill));
    if (!fill) {
        in->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        lens[ps[i].owner]++;
    for (size_t o = 0; o < n_owners; o++) {
        if (!lens[o])
            continue;
        lists[o] = calloc(lens[o], sizeof(**lists));
        struct prof_site **slot = lists[o] ? PUSH(in, site_lists) : NULL;
        if (!slot) {
            free(lists[o]);
            lists[o] = NULL;
            lens[o] = 0;
            in->oom = true;
            continue;
        }
        *slot = lists[o];
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t o = ps[i].owner;
        if (!lists[o])
            continue;
        struct prof_site *s = &lists[o][fill[o]++];
        s->stack = prof_resolve(in, file_of(in, o), ps[i].stack_id);
        prof_count_dangling(in, file_of(in, o), ps[i].stack_id, ps[i].count);
        s->wait_ns = ps[i].wait;
        s->count = ps[i].count;
    }
    for (size_t o = 0; o < n_owners; o++) {
        if (!lists[o])
            continue;
        size_t len = fill[o], out = 0;
        qsort(lists[o], len, sizeof(**lists), prof_site_ptr_cmp);
        for (size_t i = 0; i < len; i++) {
            if (out > 0 && lists[o][out - 1].stack == lists[o][i].stack) {
                lists[o][out - 1].wait_ns += lists[o][i].wait_ns;
                lists[o][out - 1].count += lists[o][i].count;
            } else {
                lists[o][out++] = lists[o][i];
            }
        }
        qsort(lists[o], out, sizeof(**lists), prof_site_cmp);
        lens[o] = out;
    }
    free(fill);
}

static uint32_t prof_lock_file(struct prof_internal *in, uint32_t o) { return in->locks[o].file; }
static uint32_t prof_hgroup_file(struct prof_internal *in, uint32_t o) { return in->hgroups[o].file; }

/* code_id << 32 | instruction offset of a stack's innermost Python frame, 0 if it has none. */
static uint64_t prof_innermost_py(struct prof_internal *in, uint32_t file, uint32_t stack_id)
{
    struct pstack *s = prof_stack_def(in, file, stack_id);
    if (!s || s->py_count == 0 || s->py[0].code_id == 0)
        return 0;
    return ((uint64_t)s->py[0].code_id << 32) | (s->py[0].instr_offset & ~FTP_PY_FRAME_ENTRY);
}

/* Kinds the recorder gives to a wait on a PyMutex (threading.Lock, 3.14's RLock, critical sections,
 * the interpreter's own mutexes): what a spin can have been waiting for. */
static bool prof_raw_kind_is_pymutex(uint8_t raw)
{
    return raw == FTP_KIND_LOCK || raw == FTP_KIND_RLOCK || raw == FTP_KIND_CRITICAL_SECTION || raw == FTP_KIND_PYMUTEX;
}

static void prof_attribute_spins(struct prof_internal *in)
{
    if (in->n_spins == 0)
        return;
    /* For each (file, stack) the lock it parked on most often; failing that, the lock most often
     * parked on from the same innermost Python instruction under any caller. */
    struct pmap best = {0}, best_frame = {0};
    for (size_t i = 0; i < in->n_sites && !in->oom; i++) {
        const struct psite *s = &in->sites[i];
        const struct plock *l = &in->locks[s->owner];
        /* A spin is a PyMutex's: only a lock that parks on a PyMutex can be its lock, and only through a
         * stack it was seen with (without one, the waits of every kind that have no stack would share
         * it: a GIL wait or a thread's start-up). */
        if (s->stack_id == 0 || !prof_raw_kind_is_pymutex(l->raw_kind))
            continue;
        bool ins;
        uint64_t *v = prof_put(in, &best, l->file, s->stack_id, &ins);
        if (v && (ins || in->sites[*v].count < s->count))
            *v = i;
        uint64_t key = prof_innermost_py(in, l->file, s->stack_id);
        if (key && (v = prof_put(in, &best_frame, ((uint64_t)l->file << 32) | (key >> 32), (uint32_t)key, &ins)) &&
            (ins || in->sites[*v].count < s->count))
            *v = i;
    }
    uint32_t *lock_of = calloc(in->n_spins, sizeof(*lock_of));
    if (!lock_of) {
        in->oom = true;
        pmap_free(&best);
        return;
    }
    for (size_t i = 0; i < in->n_spins && !in->oom; i++) {
        struct pspin *sp = &in->spins[i];
        uint64_t *v = sp->stack_id ? pmap_get(&best, sp->file, sp->stack_id) : NULL;
        uint64_t key = v || !sp->stack_id ? 0 : prof_innermost_py(in, sp->file, sp->stack_id);
        if (key)
            v = pmap_get(&best_frame, ((uint64_t)sp->file << 32) | (key >> 32), (uint32_t)key);
        uint32_t li;
        struct plock *l;
        if (v) {
            li = in->sites[*v].owner;
            l = &in->locks[li];
        } else {
            /* A spin in Condition.wait that never parked still waited for a notify, not for a lock. */
            int cls = prof_stack_class(in, sp->file, sp->stack_id);
            l = prof_lock_get(in, sp->file, 0, (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_OTHER, 0,
                              FTP_KIND_SPIN, 0, 0, &li);
            if (!l)
                break;
        }
        lock_of[i] = li;
        if (l->contentions == 0 || sp->min < l->min)
            l->min = sp->min;
        l->contentions += sp->count;
        l->wait += sp->wait;
        l->spin += sp->spin;
        if (sp->max > l->max)
            l->max = sp->max;
        phist_merge(l->hist, &sp->hist);
        struct psite *s = prof_site_get(in, &in->sites_map, &in->sites, &in->n_sites, &in->cap_sites, li,
                                        sp->stack_id);
        if (s) {
            s->wait += sp->wait;
            s->count += sp->count;
        }
    }
    /* Waiting threads of spins join those of their lock; collected first because inserting into the
     * map being swept could move its slots. */
    size_t n_pairs = 0;
    uint64_t(*pairs)[2] = malloc((in->tids_map.len ? in->tids_map.len : 1) * sizeof(*pairs));
    if (!pairs)
        in->oom = true;
    for (size_t j = 0; pairs && j < in->tids_map.cap; j++) {
        const struct pmap_slot *t = &in->tids_map.slots[j];
        if (t->used && (t->k1 >> 32) == TAG_SPIN_TID) {
            pairs[n_pairs][0] = lock_of[(uint32_t)t->k1];
            pairs[n_pairs++][1] = t->k2;
        }
    }
    for (size_t i = 0; i < n_pairs && !in->oom; i++) {
        bool ins = false;
        if (prof_put(in, &in->tids_map, ((uint64_t)TAG_LOCK_TID << 32) | pairs[i][0], pairs[i][1], &ins) && ins)
            in->locks[pairs[i][0]].threads++;
    }
    free(pairs);
    free(lock_of);
    pmap_free(&best);
    pmap_free(&best_frame);
}

/* Holder records name the address the waiter parked on; the holders of a merged row are those of
 * all its addresses, gathered into one new group. */
static void prof_merge_holder_groups(struct prof_internal *in)
{
    if (in->aliases.len == 0)
        return;
    size_t n = in->n_hgroups;
    uint32_t *target = calloc(n ? n : 1, sizeof(*target));
    if (!target) {
        in->oom = true;
        return;
    }
    for (size_t g = 0; g < n && !in->oom; g++) {
        uint64_t *alias = pmap_get(&in->aliases, in->hgroups[g].file, in->hgroups[g].addr);
        if (!alias)
            continue;
        struct plock *l = &in->locks[*alias - 1];
        if (!l->hgroup) {
            struct phgroup *ng = PUSH(in, hgroups);
            if (!ng)
                break;
            ng->file = l->file;
            ng->addr = 0;
            l = &in->locks[*alias - 1];
            l->hgroup = (uint32_t)in->n_hgroups;
        }
        target[g] = l->hgroup;
    }
    for (size_t i = 0; i < in->n_hsites; i++)
        if (in->hsites[i].owner < n && target[in->hsites[i].owner])
            in->hsites[i].owner = target[in->hsites[i].owner] - 1;
    free(target);
}

static const char *prof_lock_label(const struct plock *l, const char *type)
{
    /* threading.Lock() and RLock() objects are known by these names, not by their C types'. */
    if (type && strcmp(type, "_thread.lock") == 0)
        type = "Lock";
    else if (type && strcmp(type, "_thread.RLock") == 0)
        type = "RLock";
    if (l->raw_kind == FTP_KIND_SPIN)
        return "spin (unattributed)";
    if (l->merged)
        return l->kind == PROF_KIND_THREAD_JOIN ? "Thread.join"
               : l->kind == PROF_KIND_STOP_THE_WORLD ? "stop-the-world"
                                                     : "Condition";
    switch (l->kind) {
    case PROF_KIND_LOCK: return type ? type : "Lock";
    case PROF_KIND_RLOCK: return type ? type : "RLock";
    case PROF_KIND_CRITICAL_SECTION: return type ? type : "object";
    case PROF_KIND_PYMUTEX: return "PyMutex";
    case PROF_KIND_STOP_THE_WORLD: return "stop-the-world";
    case PROF_KIND_GIL: return "GIL";
    case PROF_KIND_CONDITION: return type ? type : "Condition";
    case PROF_KIND_THREAD_JOIN: return "Thread.join";
    case PROF_KIND_PTHREAD_MUTEX: return "pthread_mutex";
    case PROF_KIND_PTHREAD_RWLOCK: return "pthread_rwlock";
    default: break;
    }
    switch (l->raw_kind) {
    case FTP_KIND_EVENT: return "PyEvent";
    case FTP_KIND_PYTHREAD_LOCK: return "PyThread lock";
    default: return type ? type : "wait";
    }
}

/* The field of the runtime, interpreter or thread state a lock lives in, from the interpreter's
 * debug information: "interp->types.mutex". False (and the caller shows the offset) without it. */
/* The loaded object that holds `addr`: recorded module ranges cover only code, but an object's data
 * (where _PyRuntime lives) follows its code, so it is the one with the highest load bias below. */
static const struct pmodule *prof_module_holding(const struct pfiledefs *d, uint64_t addr)
{
    const struct pmodule *best = NULL;
    for (size_t i = 0; i < d->n_mods; i++)
        if (d->mods[i].base && d->mods[i].base <= addr && d->mods[i].path && d->mods[i].path[0] == '/' &&
            (!best || d->mods[i].base > best->base))
            best = &d->mods[i];
    return best;
}

static struct pnamer *prof_namer(struct prof_internal *in, const struct pmodule *m)
{
    for (size_t i = 0; i < in->n_namers; i++) {
        const struct pmodule *o = in->namers[i].module;
        if (strcmp(o->path, m->path) == 0 && o->build_id_len == m->build_id_len &&
            (m->build_id_len == 0 || memcmp(o->build_id, m->build_id, m->build_id_len) == 0))
            return &in->namers[i];
    }
    if (in->n_namers == PROF_NAMERS)
        return NULL;
    struct sym_module one = {.base = m->base, .start = m->start, .end = m->end, .path = m->path,
                             .build_id = m->build_id, .build_id_len = m->build_id_len};
    struct pnamer *n = &in->namers[in->n_namers++];
    n->module = m;
    n->sym = symbolizer_new(&one, 1);
    return n;
}

/* The field of the runtime, interpreter or thread state a lock lives in, from the interpreter's
 * debug information: "interp->types.mutex". False (and the caller shows the offset) without it. */
static bool prof_region_field(struct prof_internal *in, const struct plock *l, char *out, size_t cap)
{
    static const char *const types[] = {[FTP_REGION_RUNTIME] = "_PyRuntimeState",
                                        [FTP_REGION_INTERP] = "PyInterpreterState",
                                        [FTP_REGION_TSTATE] = "_PyThreadStateImpl"};
    const struct pfiledefs *d = &in->defs[l->file];
    const struct pmodule *m = d->python_runtime ? prof_module_holding(d, d->python_runtime) : NULL;
    struct pnamer *namer = m ? prof_namer(in, m) : NULL;
    if (!namer || !namer->sym)
        return false;
    /* The same binary at this recording's load address, moved to where the namer has it. */
    uint64_t anchor = d->python_runtime - m->base + namer->module->base;
    char path[128];
    if (!symbolizer_field(namer->sym, anchor, types[l->region], l->region_offset, path, sizeof(path)))
        return false;
    static const char main_interp[] = "._main_interpreter.";
    if (l->region == FTP_REGION_RUNTIME && strncmp(path, main_interp, sizeof(main_interp) - 1) == 0)
        snprintf(out, cap, "interp->%s", path + sizeof(main_interp) - 1);
    else if (l->region == FTP_REGION_RUNTIME)
        snprintf(out, cap, "_PyRuntime%s", path);
    else
        snprintf(out, cap, "%s->%s", l->region == FTP_REGION_INTERP ? "interp" : "tstate", path + 1);
    return true;
}

static const char *prof_lock_name(struct prof_internal *in, const struct plock *l, const char *type)
{
    char buf[192], field[160];
    const char *label = prof_lock_label(l, type);
    static const char *const regions[] = {[FTP_REGION_RUNTIME] = "_PyRuntime", [FTP_REGION_INTERP] = "interp",
                                          [FTP_REGION_TSTATE] = "tstate"};
    if (l->region >= FTP_REGION_RUNTIME && l->region <= FTP_REGION_TSTATE && prof_region_field(in, l, field, sizeof(field)))
        snprintf(buf, sizeof(buf), "%s %s", label, field);
    else if (l->region >= FTP_REGION_RUNTIME && l->region <= FTP_REGION_TSTATE)
        snprintf(buf, sizeof(buf), "%s %s+0x%x", label, regions[l->region], l->region_offset);
    else if (l->addr)
        snprintf(buf, sizeof(buf), "%s @\u2026%08llx", label, (unsigned long long)(l->addr & 0xffffffffu));
    else
        snprintf(buf, sizeof(buf), "%s", label);
    return prof_intern(in, buf, strlen(buf));
}

static int prof_lock_cmp(const void *a, const void *b)
{
    const struct prof_lock *x = a, *y = b;
    if (x->wait_ns != y->wait_ns)
        return x->wait_ns < y->wait_ns ? 1 : -1;
    if (x->contentions != y->contentions)
        return x->contentions < y->contentions ? 1 : -1;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return x->address < y->address ? -1 : x->address > y->address;
}

static void prof_finish(struct prof_internal *in)
{
    struct profile *p = in->p;
    prof_attribute_spins(in);
    if (in->oom)
        return;

    struct prof_site **wl = calloc(in->n_locks ? in->n_locks : 1, sizeof(*wl));
    size_t *wn = calloc(in->n_locks ? in->n_locks : 1, sizeof(*wn));
    struct prof_site **hl = calloc(in->n_hgroups ? in->n_hgroups : 1, sizeof(*hl));
    size_t *hn = calloc(in->n_hgroups ? in->n_hgroups : 1, sizeof(*hn));
    p->locks = calloc(in->n_locks ? in->n_locks : 1, sizeof(*p->locks));
    if (!wl || !wn || !hl || !hn || !p->locks) {
        in->oom = true;
        goto out;
    }
    prof_merge_holder_groups(in);
    if (in->oom)
        goto out;
    free(hl);
    free(hn);
    hl = calloc(in->n_hgroups ? in->n_hgroups : 1, sizeof(*hl));
    hn = calloc(in->n_hgroups ? in->n_hgroups : 1, sizeof(*hn));
    if (!hl || !hn) {
        in->oom = true;
        goto out;
    }
    prof_build_sites(in, in->sites, in->n_sites, in->n_locks, prof_lock_file, wl, wn);
    prof_build_sites(in, in->hsites, in->n_hsites, in->n_hgroups, prof_hgroup_file, hl, hn);
    if (in->oom)
        goto out;

    for (size_t i = 0; i < in->n_locks; i++) {
        struct plock *l = &in->locks[i];
        struct prof_lock *o = &p->locks[p->n_locks++];
        o->kind = l->kind;
        o->file = l->file;
        o->address = l->addr;
        if (l->type_id) {
            uint64_t *t = pmap_get(&in->types_map, l->file, l->type_id);
            o->type = t ? (const char *)(uintptr_t)*t : prof_intern(in, PROF_UNKNOWN, strlen(PROF_UNKNOWN));
            if (!t)
                p->files[l->file].dangling_types += l->contentions;
        }
        o->name = prof_lock_name(in, l, o->type);
        o->contentions = l->contentions;
        o->wait_ns = l->wait;
        o->max_wait_ns = l->max;
        o->p50_wait_ns = phist_quantile(l->hist, 0.50);
        o->p99_wait_ns = phist_quantile(l->hist, 0.99);
        /* A bucket midpoint can lie outside the values seen: keep percentiles within them. */
        o->p50_wait_ns = o->p50_wait_ns < l->min ? l->min : o->p50_wait_ns > l->max ? l->max : o->p50_wait_ns;
        o->p99_wait_ns = o->p99_wait_ns < l->min ? l->min : o->p99_wait_ns > l->max ? l->max : o->p99_wait_ns;
        o->spin_ns = l->spin;
        o->handoffs = l->handoffs;
        o->parked = l->parked;
        o->threads = l->threads;
        o->waiters = wl[i];
        o->n_waiters = wn[i];
        uint64_t *g = pmap_get(&in->hgroups_map, l->addr, l->file);
        if (l->hgroup) {
            o->holders = hl[l->hgroup - 1];
            o->n_holders = hn[l->hgroup - 1];
        } else if (g && l->addr && !l->merged) {
            o->holders = hl[*g];
            o->n_holders = hn[*g];
        }
        if (o->n_waiters) {
            const struct prof_frame *f = prof_site_frame(o->waiters[0].stack, o->kind);
            if (f && !f->native)
                o->source = prof_source_text(in, f->file, f->line);
        }
        if (prof_kind_is_contention(o->kind))
            p->contention_wait_ns += o->wait_ns;
    }
    qsort(p->locks, p->n_locks, sizeof(*p->locks), prof_lock_cmp);

out:
    free(wl);
    free(wn);
    free(hl);
    free(hn);
}

static void prof_file_info(struct prof_internal *in, struct prof_file *f, const struct rd_file *rd)
{
    const struct ftp_file_header *h = &rd->hdr;
    f->pid = h->pid;
    f->ppid = h->ppid;
    f->flags = h->flags;
    f->features = h->features;
    f->dropped_events = h->dropped_events;
    f->disk_full_events = h->version >= 2 ? h->disk_full_events : 0;
    f->start_ns = h->start_ns;
    f->end_ns = h->end_ns;
    f->start_realtime_ns = h->start_realtime_ns;
    f->python_version = h->python_version;
    f->truncated = rd->truncated;
    char argv[FTP_ARGV_MAX];
    size_t len = h->argv_len < FTP_ARGV_MAX ? h->argv_len : FTP_ARGV_MAX;
    memcpy(argv, h->argv, len);
    while (len > 0 && argv[len - 1] == 0)
        len--;
    for (size_t i = 0; i < len; i++)
        if (argv[i] == 0)
            argv[i] = ' ';
    f->argv = prof_intern(in, argv, len);
}

static void prof_warn(bool quiet, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void prof_warn(bool quiet, const char *path, const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ftprof: %s: warning: ", path);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int prof_load(struct profile *p, char *const *paths, size_t n, bool quiet, size_t *failed, char *err,
              size_t errlen)
{
    memset(p, 0, sizeof(*p));
    struct prof_internal *in = calloc(1, sizeof(*in));
    p->files = calloc(n ? n : 1, sizeof(*p->files));
    if (in)
        in->defs = calloc(n ? n : 1, sizeof(*in->defs));
    if (!in || !p->files || !in->defs) {
        if (in)
            free(in->defs);
        free(in);
        free(p->files);
        p->files = NULL;
        snprintf(err, errlen, "%s", strerror(ENOMEM));
        *failed = 0;
        return -ENOMEM;
    }
    p->in = in;
    in->p = p;
    uint64_t(*ids)[2] = calloc(n ? n : 1, sizeof(*ids)); /* device and inode of each file read */
    if (!ids) {
        snprintf(err, errlen, "%s", strerror(ENOMEM));
        *failed = 0;
        return -ENOMEM;
    }

    uint64_t min_start = UINT64_MAX, max_end = 0;
    for (size_t i = 0; i < n; i++) {
        struct rd_file rd;
        int rc = rd_open(&rd, paths[i], err, errlen);
        if (rc < 0) {
            *failed = i;
            free(ids);
            return rc;
        }
        /* The same file twice (named twice, a link, ftprof-*.ftp plus one of them): counting its waits
         * twice would double every lock in it. */
        size_t dup = 0;
        while (dup < p->n_files && !(ids[dup][0] == rd.dev && ids[dup][1] == rd.ino))
            dup++;
        if (dup < p->n_files) {
            prof_warn(quiet, paths[i], "the same file as %s; read once", p->files[dup].path);
            rd_close(&rd);
            continue;
        }
        size_t k = p->n_files++;
        ids[k][0] = rd.dev;
        ids[k][1] = rd.ino;
        in->cur_file = (uint32_t)k;
        in->last_acq = SIZE_MAX;
        p->files[k].path = prof_intern(in, paths[i], strlen(paths[i]));
        prof_file_info(in, &p->files[k], &rd);
        in->defs[k].python_runtime = rd.hdr.python_runtime;
        rc = rd_walk(&rd, prof_visit_defs, in);
        if (rc == 0 && !in->oom)
            rc = rd_walk(&rd, prof_visit_events, in);
        if (rc == 0 && in->oom)
            rc = -ENOMEM;
        p->files[k].damaged_chunks = rd.damaged_chunks;
        rd_close(&rd);
        if (rc < 0) {
            snprintf(err, errlen, "%s", strerror(-rc));
            *failed = i;
            free(ids);
            return rc;
        }
        for (size_t a = 0; a < in->n_acqs; a++)
            if (in->acqs[a].open && in->acqs[a].file == k)
                prof_close_acq(in, &in->acqs[a]);

        struct prof_file *f = &p->files[k];
        uint64_t end = f->end_ns ? f->end_ns : in->defs[k].max_end_ns;
        if (f->start_ns && f->start_ns < min_start) {
            min_start = f->start_ns;
            p->start_realtime_ns = f->start_realtime_ns;
        }
        if (end > max_end)
            max_end = end;
        p->dropped_events += f->dropped_events;
        p->disk_full_events += f->disk_full_events;
        if (f->truncated)
            prof_warn(quiet, paths[i], "file is truncated; the report covers only what it holds");
        if (f->damaged_chunks)
            prof_warn(quiet, paths[i], "%u damaged chunk(s); their remaining records were skipped",
                      f->damaged_chunks);
        if (f->flags & FTP_FLAG_STOPPED)
            prof_warn(quiet, paths[i], "the recorder stopped itself early (it met an interpreter state it does "
                      "not know); the recording is partial");
        if (f->flags & FTP_FLAG_DISK_FULL)
            prof_warn(quiet, paths[i], "the recording ends early because the disk was full; %llu later "
                      "wait%s not stored", (unsigned long long)f->disk_full_events,
                      f->disk_full_events == 1 ? " was" : "s were");
        if (f->dropped_events)
            prof_warn(quiet, paths[i], "%llu event%s dropped because the recording buffer was full "
                      "(raise FTPROF_BUFFER)", (unsigned long long)f->dropped_events,
                      f->dropped_events == 1 ? " was" : "s were");
    }
    free(ids);
    if (max_end > min_start && min_start != UINT64_MAX)
        p->duration_ns = max_end - min_start;

    prof_finish(in);
    for (size_t k = 0; k < p->n_files && !in->oom; k++) {
        const struct prof_file *f = &p->files[k];
        if (f->dangling_stacks || f->dangling_codes || f->dangling_types)
            prof_warn(quiet, f->path, "records refer to ids the recording never defined (%llu to stacks, %llu to "
                      "code objects, %llu to types): shown as [unknown], their kind may be wrong",
                      (unsigned long long)f->dangling_stacks, (unsigned long long)f->dangling_codes,
                      (unsigned long long)f->dangling_types);
    }
    if (in->oom) {
        snprintf(err, errlen, "%s", strerror(ENOMEM));
        *failed = 0;
        return -ENOMEM;
    }
    return 0;
}

void prof_free(struct profile *p)
{
    struct prof_internal *in = p->in;
    if (in) {
        for (size_t i = 0; i < in->n_codes; i++)
            free(in->codes[i].linetable);
        for (size_t i = 0; i < in->n_stacks; i++) {
            free(in->stacks[i].py);
            free(in->stacks[i].native);
        }
        for (size_t i = 0; i < in->n_locks; i++)
            free(in->locks[i].hist);
        for (size_t i = 0; i < in->n_rstacks; i++) {
            free((void *)in->rstacks[i]->frames);
            free(in->rstacks[i]);
        }
        for (size_t i = 0; i < in->n_site_lists; i++)
            free(in->site_lists[i]);
        for (size_t i = 0; i < in->n_sources; i++) {
            free(in->sources[i].data);
            free(in->sources[i].starts);
        }
        for (size_t i = 0; i < p->n_files && in->defs; i++) {
            for (size_t m = 0; m < in->defs[i].n_mods; m++)
                free(in->defs[i].mods[m].build_id);
            free(in->defs[i].mods);
            if (in->defs[i].sym)
                symbolizer_free(in->defs[i].sym);
        }
        for (size_t i = 0; i < in->n_namers; i++)
            if (in->namers[i].sym)
                symbolizer_free(in->namers[i].sym);
        struct pmap *maps[] = {&in->codes_map, &in->stacks_map, &in->types_map, &in->threads_map, &in->acqs_map,
                               &in->locks_map, &in->sites_map, &in->tids_map, &in->spins_map, &in->hgroups_map,
                               &in->hsites_map, &in->lines, &in->interned_stacks,
                               &in->sources_map, &in->aliases};
        for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
            pmap_free(maps[i]);
        free(in->codes);
        free(in->stacks);
        free(in->acqs);
        free(in->locks);
        free(in->sites);
        free(in->spins);
        free(in->hgroups);
        free(in->hsites);
        free(in->defs);
        free(in->rstacks);
        free(in->site_lists);
        free(in->sources);
        free(in->pending);
        pstr_free(&in->strs);
        free(in);
    }
    free(p->locks);
    free(p->gil_events);
    free(p->threads);
    free(p->files);
    memset(p, 0, sizeof(*p));
}
