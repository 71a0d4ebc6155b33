/* Resolving stacks: Python frames through their code objects and line tables, native frames through
 * the symbolizer, spliced where the eval loop ran them; one prof_stack per distinct text, so sites of
 * different ids or files merge by pointer. */
#include "profile_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize.h"

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

const struct prof_stack *prof_resolve(struct prof_internal *in, uint32_t file, uint32_t stack_id)
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
/* Percentiles of a hold histogram, kept within the values seen (a bucket midpoint can lie above). */
static void prof_hold_stats(const struct phist *h, uint64_t max, struct prof_site *out)
{
    out->holds = h->total; /* holds_from_acquisition: the caller's */
    out->hold_max_ns = max;
    uint64_t p50 = phist_quantile(h, 0.50), p99 = phist_quantile(h, 0.99);
    out->hold_p50_ns = p50 > max ? max : p50;
    out->hold_p99_ns = p99 > max ? max : p99;
}

void prof_build_sites(struct prof_internal *in, const struct psite *ps, size_t n, size_t n_owners,
                      uint32_t (*file_of)(struct prof_internal *, uint32_t), struct prof_site **lists, size_t *lens,
                      struct prof_site *owner_holds)
{
    size_t *fill = calloc(n_owners ? n_owners : 1, sizeof(*fill));
    struct phist *site_h = owner_holds ? malloc(sizeof(*site_h)) : NULL, *owner_h = owner_holds ? malloc(sizeof(*owner_h)) : NULL;
    if (!fill || (owner_holds && (!site_h || !owner_h))) {
        free(fill);
        free(site_h);
        free(owner_h);
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
        s->holds = i; /* until merged below: which psite this is */
    }
    for (size_t o = 0; o < n_owners; o++) {
        if (!lists[o])
            continue;
        size_t len = fill[o], out = 0;
        qsort(lists[o], len, sizeof(**lists), prof_site_ptr_cmp);
        uint64_t owner_max = 0, owner_exact = 0;
        if (owner_h)
            memset(owner_h, 0, sizeof(*owner_h));
        for (size_t i = 0; i < len;) {
            struct prof_site merged = lists[o][i];
            merged.wait_ns = merged.count = 0;
            uint64_t site_max = 0, site_exact = 0;
            /* The site's hold times: its one psite's own histogram as it is (the common case), the
             * psites' merged into site_h when the same stack text came from several. */
            const struct phist *holds = NULL;
            size_t j = i;
            for (; j < len && lists[o][j].stack == merged.stack; j++) {
                merged.wait_ns += lists[o][j].wait_ns;
                merged.count += lists[o][j].count;
                const struct psite *p = &ps[lists[o][j].holds];
                if (site_h && p->hold) {
                    if (!holds) {
                        holds = p->hold;
                    } else {
                        if (holds != site_h) {
                            memset(site_h, 0, sizeof(*site_h));
                            phist_merge(site_h, holds);
                            holds = site_h;
                        }
                        phist_merge(site_h, p->hold);
                    }
                    site_exact += p->hold_exact;
                    site_max = p->hold_max > site_max ? p->hold_max : site_max;
                }
            }
            merged.holds = merged.hold_p50_ns = merged.hold_p99_ns = merged.hold_max_ns = 0;
            merged.holds_from_acquisition = 0;
            if (holds && holds->total) {
                prof_hold_stats(holds, site_max, &merged);
                merged.holds_from_acquisition = site_exact;
                owner_exact += site_exact;
                phist_merge(owner_h, holds);
                owner_max = site_max > owner_max ? site_max : owner_max;
            }
            lists[o][out++] = merged;
            i = j;
        }
        if (owner_h && owner_h->total) {
            prof_hold_stats(owner_h, owner_max, &owner_holds[o]);
            owner_holds[o].holds_from_acquisition = owner_exact;
        }
        qsort(lists[o], out, sizeof(**lists), prof_site_cmp);
        lens[o] = out;
    }
    free(fill);
    free(site_h);
    free(owner_h);
}
