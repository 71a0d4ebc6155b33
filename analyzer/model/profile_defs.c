/* Pass 1 over a recording: the definitions later records refer to by id (threads, code objects,
 * stacks, types, loaded modules, extension modules) and the GIL coming back. */
#include "profile_model.h"

#include <stdlib.h>
#include <string.h>

#include "linetable.h"

int prof_code_line(struct prof_internal *in, uint32_t file, uint32_t code_id, uint32_t offset)
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

struct prof_thread *prof_thread_get(struct prof_internal *in, uint32_t file, uint32_t tid)
{
    struct profile *p = in->p;
    bool ins;
    uint64_t *slot = prof_put(in, &in->threads_map, file, tid, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct prof_thread *th = prof_push(in, (void **)&p->threads, &p->n_threads, &in->cap_threads,
                                           sizeof(*th));
        if (!th) {
            pmap_del(&in->threads_map, file, tid);
            return NULL;
        }
        th->tid = tid;
        th->file = file;
        th->pid = p->files[file].pid;
        *slot = p->n_threads - 1;
    }
    return &p->threads[*slot];
}

/* ---- extension modules (EXTENSION records, format 7): one entry per import, joined with what the
 * module's init declared (records of one module share the load bias of its object) ---- */

static enum prof_ext_gil ext_gil(uint8_t raw)
{
    return raw == FTP_EXT_GIL_NOT_USED ? PROF_EXT_GIL_NOT_USED : raw == FTP_EXT_GIL_USED ? PROF_EXT_GIL_USED
                                                                                          : PROF_EXT_GIL_UNKNOWN;
}

static const char *ext_init(uint8_t raw)
{
    switch (raw) {
    case FTP_EXT_INIT_MULTI: return "multi-phase";
    case FTP_EXT_INIT_SINGLE: return "single-phase";
    case FTP_EXT_INIT_EXPORT: return "export";
    default: return NULL;
    }
}

/* The latest entry of this file for the object at `base`. */
static struct prof_extension *ext_find(struct profile *p, uint32_t file, uint64_t base)
{
    for (size_t i = p->n_extensions; i-- > 0;)
        if (p->extensions[i].file == file && p->extensions[i].base == base)
            return &p->extensions[i];
    return NULL;
}

static void prof_def_extension(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_extension))
        return;
    const struct ftp_rec_extension *r = (const void *)rec;
    if (sizeof(*r) + (uint64_t)r->name_len + r->path_len > rec->size)
        return;
    struct profile *p = in->p;
    const char *name = (const char *)(r + 1), *path = name + r->name_len;
    if (rec->flags & FTP_EXT_LOADED) {
        struct prof_extension *e = prof_push(in, (void **)&p->extensions, &p->n_extensions, &in->cap_ext, sizeof(*e));
        if (!e)
            return;
        e->module = prof_intern(in, name, strnlen(name, r->name_len));
        e->path = prof_intern(in, path, strnlen(path, r->path_len));
        e->gil = ext_gil(r->gil);
        e->init = ext_init(r->init);
        e->before_start = rec->flags & FTP_EXT_BEFORE_START;
        e->gil_was_on = rec->flags & FTP_EXT_GIL_WAS_ON;
        e->file = in->cur_file;
        e->tid = r->tid;
        e->base = r->base;
        e->imported_ns = r->time_ns;
        e->stack_id = r->stack_id;
        return;
    }
    struct prof_extension *e = ext_find(p, in->cur_file, r->base);
    if (!e || !(rec->flags & FTP_EXT_DECLARED))
        return;
    e->gil = ext_gil(r->gil);
    if (ext_init(r->init))
        e->init = ext_init(r->init);
    if (r->name_len)
        e->def_name = prof_intern(in, name, strnlen(name, r->name_len));
}

/* ---- threads, code objects, stacks, types, the GIL ---- */

static void prof_def_thread(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_thread))
        return;
    const struct ftp_rec_thread *t = (const void *)rec;
    struct prof_thread *th = prof_thread_get(in, in->cur_file, t->tid);
    if (!th)
        return;
    if (t->first_seen_ns && (!th->first_seen_ns || t->first_seen_ns < th->first_seen_ns))
        th->first_seen_ns = t->first_seen_ns;
    /* The Python name (threading.Thread.name) when the recorder read one, else the OS name. */
    if (t->py_name_len && t->py_name_len <= rec->size - sizeof(*t)) {
        th->name = prof_intern(in, (const char *)(t + 1), t->py_name_len);
        return;
    }
    size_t nlen = strnlen(t->name, sizeof(t->name));
    /* The record is repeated in every chunk the thread writes; an OS name never replaces a name
     * already known (the Python one may have come first). */
    if (nlen && !th->name)
        th->name = prof_intern(in, t->name, nlen);
}

/* The kernel's creation time is known to a clock tick, [created, created + tick); the thread existed
 * no later than `latest`. The middle of what both allow is off by half a tick at most (5 ms at 100 Hz),
 * and exact to that for a thread that slept, blocked or computed before its first hooked call alike. */
uint64_t prof_thread_created(uint64_t created, uint32_t tick, uint64_t latest)
{
    if (!created || created > latest)
        return latest; /* not read, or a clock that does not agree: the bound the recorder saw */
    uint64_t hi = created + tick < latest ? created + tick : latest;
    return created + (hi - created) / 2;
}

static void prof_def_thread_end(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < FTP_THREAD_END_V3_SIZE)
        return;
    const struct ftp_rec_thread_end *e = (const void *)rec;
    if (e->end_ns < e->start_ns)
        return; /* damaged */
    struct prof_thread *th = prof_thread_get(in, in->cur_file, e->tid);
    if (!th)
        return;
    th->ended = true;
    /* It ran for at least the CPU time it had used when it first called the recorder: created no later. */
    uint64_t latest = e->start_cpu_ns < e->start_ns ? e->start_ns - e->start_cpu_ns : 0;
    th->start_ns = latest;
    if (rec->size >= sizeof(*e)) {
        th->start_ns = prof_thread_created(e->created_ns, e->created_tick_ns, latest);
        th->run_delay_known = (e->flags & FTP_THREAD_END_RUN_DELAY) != 0;
        th->run_delay_ns = th->run_delay_known ? e->run_delay_ns : 0;
    }
    th->end_ns = e->end_ns;
    th->cpu_ns = e->cpu_ns;
    struct pfiledefs *d = &in->defs[in->cur_file];
    if (e->end_ns > d->max_end_ns)
        d->max_end_ns = e->end_ns;
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

bool prof_visit_defs(void *ctx, uint32_t chunk, const struct ftp_record *rec)
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
    case FTP_REC_THREAD_END: prof_def_thread_end(in, rec); break;
    case FTP_REC_EXTENSION: prof_def_extension(in, rec); break;
    default: break;
    }
    return !in->oom;
}
