/* Extension modules after loading (their EXTENSION records are read in pass 1, profile_defs.c): the
 * import stacks, the module whose import re-enabled the GIL, and each file's distribution. */
#include "profile_model.h"

#include <stdlib.h>
#include <string.h>

#include "dist.h"

const char *prof_ext_gil_name(enum prof_ext_gil g)
{
    switch (g) {
    case PROF_EXT_GIL_NOT_USED: return "not_used";
    case PROF_EXT_GIL_USED: return "used";
    default: return "unknown";
    }
}

/* m_name when it is a dotted name ending in the init function's name (PyInit_<short>), else <short>. */
static bool def_name_fits(const char *def, const char *shortname)
{
    size_t d = strlen(def), s = strlen(shortname);
    return d >= s && !strcmp(def + d - s, shortname) && (d == s || def[d - s - 1] == '.');
}

/* Frames of the import machinery: importlib's frozen modules and importlib/__init__.py. */
static bool import_machinery(const struct prof_frame *f)
{
    if (!f->file)
        return true;
    return strstr(f->file, "<frozen importlib") || prof_ends_with(f->file, "/importlib/__init__.py");
}

/* CPython re-enables the GIL for the first module of a free-threaded run that declares nothing (unless
 * PYTHON_GIL=0): the module the recording's GIL record names when it declared nothing, else the first
 * such import of that file. */
static void ext_mark_reenabler(struct profile *p, uint32_t file, const struct prof_gil_event *g)
{
    struct prof_extension *first = NULL;
    for (size_t i = 0; i < p->n_extensions; i++) {
        struct prof_extension *e = &p->extensions[i];
        if (e->file != file || e->gil != PROF_EXT_GIL_USED || e->before_start || e->gil_was_on)
            continue; /* the GIL was already on when it came: not the one that turned it on */
        if (g->path && e->path && !strcmp(g->path, e->path)) {
            e->reenabled_gil = true;
            return;
        }
        if (!first)
            first = e;
    }
    if (first)
        first->reenabled_gil = true;
}

void prof_extensions_finish(struct prof_internal *in)
{
    struct profile *p = in->p;
    struct dist_cache *dc = in->dists;
    for (size_t i = 0; i < p->n_extensions; i++) {
        struct prof_extension *e = &p->extensions[i];
        const struct prof_file *f = &p->files[e->file];
        e->free_threaded = f->flags & FTP_FLAG_FREE_THREADED;
        e->imported_ns = e->imported_ns > f->start_ns ? e->imported_ns - f->start_ns : 0;
        if (e->stack_id && !e->before_start) {
            e->import_stack = prof_resolve(in, e->file, e->stack_id);
            for (size_t k = 0; e->import_stack && k < e->import_stack->depth; k++)
                if (!e->import_stack->frames[k].native && !import_machinery(&e->import_stack->frames[k])) {
                    e->import_line = &e->import_stack->frames[k];
                    break;
                }
        }
        struct dist_owner o;
        if (dc && dist_owner_of(dc, e->path, &o)) {
            e->distribution = o.name ? prof_intern(in, o.name, strlen(o.name)) : NULL;
            e->version = o.version ? prof_intern(in, o.version, strlen(o.version)) : NULL;
            e->wheel_tag = o.wheel_tag ? prof_intern(in, o.wheel_tag, strlen(o.wheel_tag)) : NULL;
            e->origin = !e->wheel_tag ? "no wheel" : dist_tag_built_here(e->wheel_tag) ? "built here" : "wheel";
            if (o.module)
                e->module = prof_intern(in, o.module, strlen(o.module));
        } else {
            e->origin = e->path && strstr(e->path, "/lib-dynload/") ? "stdlib" : "not installed";
            if (e->def_name && e->module && strcmp(e->origin, "stdlib") && def_name_fits(e->def_name, e->module))
                e->module = e->def_name;
        }
    }
    for (size_t i = 0; i < p->n_gil_events; i++)
        ext_mark_reenabler(p, p->gil_events[i].file, &p->gil_events[i]);
}
