/* The extension modules in `ftprof report`: a count, and a line for each module that keeps the GIL or
 * whose declaration is unknown (`ftprof ready` prints the full list, cmd_ready.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

#define RE_YELLOW "\033[33m"
#define RE_DIM "\033[2m"
#define RE_RESET "\033[0m"

void report_ext_where(char *buf, size_t len, const struct prof_extension *e)
{
    const char *file = e->import_line ? e->import_line->file : NULL;
    if (!file) {
        snprintf(buf, len, "%s", e->before_start ? "before the recording started" : "from an unknown place");
        return;
    }
    const char *base = strrchr(file, '/');
    snprintf(buf, len, "%s:%d", base ? base + 1 : file, e->import_line->line);
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
    for (size_t i = 0; i < p->n_extensions; i++) {
        const struct prof_extension *e = &p->extensions[i];
        if (e->gil == PROF_EXT_GIL_NOT_USED)
            continue;
        char where[256];
        report_ext_where(where, sizeof where, e);
        fprintf(out, "  %s%s %s (%s%s%s), imported at %s%s%s\n", color ? (e->gil == PROF_EXT_GIL_USED ? RE_YELLOW : RE_DIM) : "",
                e->gil == PROF_EXT_GIL_USED ? "!" : "?", e->module, e->distribution ? e->distribution : e->origin,
                e->distribution && e->version ? " " : "", e->distribution && e->version ? e->version : "", where,
                e->reenabled_gil ? "; re-enabled the GIL" : "", color ? RE_RESET : "");
    }
    return ferror(out) ? -EIO : 0;
}
