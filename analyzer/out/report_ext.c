/* The extension modules in `ftprof report`: a count, and a line for each module that keeps the GIL or
 * whose declaration is unknown (`ftprof ready` prints the full list, cmd_ready.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

#define RE_YELLOW "\033[33m"
#define RE_DIM "\033[2m"
#define RE_RESET "\033[0m"
#define REPORT_EXT_LINES 10 /* modules listed by name */

static const char *base_name(const char *file)
{
    const char *slash = strrchr(file, '/');
    return slash ? slash + 1 : file;
}

/* A frame of the program's own code: not the import machinery ("<frozen ...>"), an installed package
 * (under site-packages) or the standard library (under lib/pythonX.Y). */
static bool program_frame(const struct prof_frame *f)
{
    return f->file && !f->native && f->file[0] != '<' && !strstr(f->file, "/site-packages/") &&
           !strstr(f->file, "/dist-packages/") && !strstr(f->file, "/lib/python3.");
}

void report_ext_where(char *buf, size_t len, const struct prof_extension *e)
{
    const struct prof_frame *line = e->import_line, *mine = NULL;
    if (!line) {
        snprintf(buf, len, "%s", e->before_start ? "before the recording started" : "from an unknown place (no Python stack)");
        return;
    }
    for (size_t k = 0; e->import_stack && k < e->import_stack->depth && !mine; k++)
        if (program_frame(&e->import_stack->frames[k]))
            mine = &e->import_stack->frames[k];
    if (mine && mine != line)
        snprintf(buf, len, "at %s:%d (via %s:%d)", base_name(mine->file), mine->line, base_name(line->file), line->line);
    else
        snprintf(buf, len, "at %s:%d", base_name(line->file), line->line);
}

const char *report_ext_declared(const struct prof_extension *e)
{
    switch (e->gil) {
    case PROF_EXT_GIL_NOT_USED: return "declares support";
    case PROF_EXT_GIL_USED: return "declares nothing (keeps the GIL)";
    default: return e->free_threaded ? "unknown" : "unknown on this build";
    }
}

int report_text_extensions(FILE *out, const struct profile *p, bool color)
{
    if (!p->n_extensions)
        return 0;
    size_t declared = 0, keeps = 0, unknown = 0;
    for (size_t i = 0; i < p->n_extensions; i++) {
        const struct prof_extension *e = &p->extensions[i];
        declared += e->gil == PROF_EXT_GIL_NOT_USED;
        keeps += e->gil == PROF_EXT_GIL_USED;
        unknown += e->gil == PROF_EXT_GIL_UNKNOWN;
    }
    fprintf(out, "Extension modules: %zu loaded; %zu declare free-threading support, %zu do not, %zu unknown "
                 "(details: ftprof ready)\n", p->n_extensions, declared, keeps, unknown);
    size_t shown = 0;
    for (size_t i = 0; i < p->n_extensions; i++) {
        const struct prof_extension *e = &p->extensions[i];
        /* On a GIL build most modules are unknown there: counted above, not listed. */
        if (e->gil == PROF_EXT_GIL_NOT_USED || (e->gil == PROF_EXT_GIL_UNKNOWN && !e->free_threaded))
            continue;
        if (shown++ == REPORT_EXT_LINES) {
            fprintf(out, "  ... (ftprof ready lists them all)\n");
            break;
        }
        char where[256];
        report_ext_where(where, sizeof where, e);
        fprintf(out, "  %s%s %s (%s%s%s), imported %s%s%s\n", color ? (e->gil == PROF_EXT_GIL_USED ? RE_YELLOW : RE_DIM) : "",
                e->gil == PROF_EXT_GIL_USED ? "!" : "?", e->module, e->distribution ? e->distribution : e->origin,
                e->distribution && e->version ? " " : "", e->distribution && e->version ? e->version : "", where,
                e->reenabled_gil ? "; re-enabled the GIL" : "", color ? RE_RESET : "");
    }
    return ferror(out) ? -EIO : 0;
}
