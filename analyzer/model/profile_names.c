/* Lock names: a label from the kind and type, and for the interpreter's own mutexes the field they
 * are, from the interpreter binary's debug information. */
#include "profile_model.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "dist.h"
#include "symbolize.h"

static const char *prof_lock_label(const struct plock *l, const char *type)
{
    /* threading.Lock() and RLock() objects are known by these names, not by their C types'. */
    if (type && strcmp(type, "_thread.lock") == 0)
        type = "Lock";
    else if (type && strcmp(type, "_thread.RLock") == 0)
        type = "RLock";
    if (l->raw_kind == FTP_KIND_SPIN)
        return "spin (unattributed)";
    if (l->raw_kind == PROF_RAW_GIL_TRANSIENT)
        return "GIL (on for an import)";
    if (l->raw_kind == FTP_KIND_SEQLOCK)
        return "type cache (seqlock)";
    if (l->merged)
        return l->kind == PROF_KIND_THREAD_JOIN ? "Thread.join"
               : l->kind == PROF_KIND_STOP_THE_WORLD
                   ? (l->raw_kind == FTP_KIND_GC_PAUSE ? "stop-the-world (garbage collection)" : "stop-the-world")
                                                     : "Condition";
    switch (l->kind) {
    case PROF_KIND_LOCK: return type ? type : "Lock";
    case PROF_KIND_RLOCK: return type ? type : "RLock";
    case PROF_KIND_CRITICAL_SECTION: return type ? type : "object";
    case PROF_KIND_PYMUTEX: return "PyMutex";
    case PROF_KIND_STOP_THE_WORLD: return "stop-the-world";
    case PROF_KIND_GIL: return "GIL";
    /* A native condition variable (a BLAS pool's, say) is no threading.Condition. */
    case PROF_KIND_CONDITION: return l->raw_kind == FTP_KIND_COND_WAIT ? "pthread_cond" : type ? type : "Condition";
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

/* The member path of a runtime, interpreter or thread state field ("._main_interpreter.types.mutex")
 * from the interpreter's debug information, and whether it is a lock; false without it. */
static bool prof_region_path(struct prof_internal *in, uint32_t file, uint8_t region, uint32_t offset, char *path,
                             size_t cap, bool *on_lock)
{
    static const char *const types[] = {[FTP_REGION_RUNTIME] = "_PyRuntimeState",
                                        [FTP_REGION_INTERP] = "PyInterpreterState",
                                        [FTP_REGION_TSTATE] = "_PyThreadStateImpl"};
    if (region < FTP_REGION_RUNTIME || region > FTP_REGION_TSTATE)
        return false;
    const struct pfiledefs *d = &in->defs[file];
    const struct pmodule *m = d->python_runtime ? prof_module_holding(d, d->python_runtime) : NULL;
    struct pnamer *namer = m ? prof_namer(in, m) : NULL;
    if (!namer || !namer->sym)
        return false;
    /* The same binary at this recording's load address, moved to where the namer has it. */
    uint64_t anchor = d->python_runtime - m->base + namer->module->base;
    return symbolizer_field_lock(namer->sym, anchor, types[region], offset, path, cap, on_lock);
}

bool prof_spin_on_non_lock(struct prof_internal *in, uint32_t file, uint8_t raw_kind, uint64_t park_ns, uint8_t region,
                           uint32_t region_offset)
{
    if (park_ns || raw_kind != FTP_KIND_PYMUTEX || (region != FTP_REGION_RUNTIME && region != FTP_REGION_INTERP))
        return false;
    bool ins;
    uint64_t *known = prof_put(in, &in->fields_map, ((uint64_t)file << 40) | ((uint64_t)region << 32) | region_offset,
                               0, &ins);
    if (known && !ins)
        return *known == 2;
    char path[128];
    bool on_lock = false;
    bool named = prof_region_path(in, file, region, region_offset, path, sizeof(path), &on_lock);
    if (known)
        *known = named && !on_lock ? 2 : 1; /* without debug information the recorder's word stands */
    return named && !on_lock;
}

/* The field of the runtime, interpreter or thread state a lock lives in, from the interpreter's
 * debug information: "interp->types.mutex". False (and the caller shows the offset) without it. */
static bool prof_region_field(struct prof_internal *in, const struct plock *l, char *out, size_t cap)
{
    char path[128];
    bool on_lock;
    if (!prof_region_path(in, l->file, l->region, l->region_offset, path, sizeof(path), &on_lock))
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

const struct pmodule *prof_module_of_pc(const struct pfiledefs *d, uint64_t pc)
{
    for (size_t i = 0; i < d->n_mods; i++)
        if (d->mods[i].start <= pc && pc < d->mods[i].end && d->mods[i].path)
            return &d->mods[i];
    return NULL;
}

/* The path of the object holding a return address, normalized ("…/numpy/../numpy.libs/x.so" as the
 * loader found it through an $ORIGIN run path), interned; NULL if no module record covers it. */
static const char *prof_caller_object(struct prof_internal *in, uint32_t file, uint64_t caller)
{
    const struct pmodule *m = caller ? prof_module_of_pc(&in->defs[file], caller - 1) : NULL;
    char norm[PATH_MAX];
    if (!m)
        return NULL;
    const char *path = dist_normalize(m->path, norm, sizeof(norm)) ? norm : m->path;
    return prof_intern(in, path, strlen(path));
}

void prof_lock_native_owner(struct prof_internal *in, const struct plock *l, struct prof_lock *o)
{
    if (l->kind != PROF_KIND_PTHREAD_MUTEX && l->kind != PROF_KIND_PTHREAD_RWLOCK)
        return;
    o->native_object = prof_caller_object(in, l->file, l->caller);
    o->native_other_object = prof_caller_object(in, l->file, l->other_caller);
    struct dist_owner dist;
    if (!o->native_object || !in->dists || !dist_owner_of(in->dists, o->native_object, &dist))
        return;
    o->native_distribution = prof_intern(in, dist.name ? dist.name : "", dist.name ? strlen(dist.name) : 0);
    o->native_version = prof_intern(in, dist.version ? dist.version : "", dist.version ? strlen(dist.version) : 0);
    o->native_wheel_tag = dist.wheel_tag ? prof_intern(in, dist.wheel_tag, strlen(dist.wheel_tag)) : NULL;
}

static const char *prof_base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* "pthread_mutex in libscipy_openblas64_-4b78795a.so (numpy 2.3.4)": the label with the object that
 * took the lock, when known. */
static void prof_owned_label(const char *label, const struct prof_lock *o, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s", label);
    if (!o || !o->native_object || n < 0 || (size_t)n >= cap)
        return;
    n += snprintf(out + n, cap - (size_t)n, " in %s", prof_base_name(o->native_object));
    if (o->native_distribution && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, " (%s %s)", o->native_distribution, o->native_version);
    if (o->native_other_object && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, " and %s", prof_base_name(o->native_other_object));
}

const char *prof_lock_name(struct prof_internal *in, const struct plock *l, const char *type)
{
    return prof_lock_name_owned(in, l, type, NULL);
}

const char *prof_lock_name_owned(struct prof_internal *in, const struct plock *l, const char *type,
                                 const struct prof_lock *o)
{
    char buf[512], field[160], label[320];
    prof_owned_label(prof_lock_label(l, type), o, label, sizeof(label));
    static const char *const regions[] = {[FTP_REGION_RUNTIME] = "_PyRuntime", [FTP_REGION_INTERP] = "interp",
                                          [FTP_REGION_TSTATE] = "tstate"};
    if (l->region >= FTP_REGION_RUNTIME && l->region <= FTP_REGION_TSTATE && prof_region_field(in, l, field, sizeof(field)))
        snprintf(buf, sizeof(buf), "%s %s", label, field);
    else if (l->region >= FTP_REGION_RUNTIME && l->region <= FTP_REGION_TSTATE)
        snprintf(buf, sizeof(buf), "%s %s+0x%x", label, regions[l->region], l->region_offset);
    else if (l->raw_kind == FTP_KIND_SEQLOCK && type) /* the type whose attribute was looked up */
        snprintf(buf, sizeof(buf), "%s for %s", label, type);
    else if (l->addr)
        snprintf(buf, sizeof(buf), "%s @\u2026%08llx", label, (unsigned long long)(l->addr & 0xffffffffu));
    else
        snprintf(buf, sizeof(buf), "%s", label);
    return prof_intern(in, buf, strlen(buf));
}
