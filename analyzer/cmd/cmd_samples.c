#include "cmd_samples.h"

#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sites a lock's samples come from, its holders' or its waiters'; false for a lock left out
 * (not a contention kind, unless `all`). */
static bool samples_sites_of(const struct prof_lock *l, bool holders, bool all, const struct prof_site **s, size_t *n)
{
    *s = holders ? l->holders : l->waiters;
    *n = holders ? l->n_holders : l->n_waiters;
    return all || prof_kind_is_contention(l->kind);
}

int cmd_samples_build(const struct profile *p, bool holders, bool all, struct cmd_samples *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = 0, frames = 0;
    for (size_t i = 0; i < p->n_locks; i++) {
        const struct prof_site *s;
        size_t ns;
        if (!samples_sites_of(&p->locks[i], holders, all, &s, &ns))
            continue;
        n += ns;
        for (size_t k = 0; k < ns; k++)
            frames += s[k].stack ? s[k].stack->depth : 0;
    }
    out->samples = calloc(n ? n : 1, sizeof(*out->samples));
    out->frames = calloc(frames ? frames : 1, sizeof(*out->frames));
    out->names = calloc(p->n_locks ? p->n_locks : 1, sizeof(*out->names));
    if (!out->samples || !out->frames || !out->names) {
        cmd_samples_free(out);
        return -1;
    }
    out->n_names = p->n_locks;
    size_t f = 0;
    for (size_t i = 0; i < p->n_locks; i++) {
        const struct prof_lock *l = &p->locks[i];
        const struct prof_site *s;
        size_t ns;
        if (!samples_sites_of(l, holders, all, &s, &ns))
            continue;
        const char *kind = prof_kind_name(l->kind);
        size_t len = strlen(kind) + strlen(l->name) + 2;
        out->names[i] = malloc(len);
        if (!out->names[i]) {
            cmd_samples_free(out);
            return -1;
        }
        snprintf(out->names[i], len, "%s %s", kind, l->name);
        for (size_t k = 0; k < ns; k++) {
            struct out_sample *smp = &out->samples[out->n++];
            smp->frames = &out->frames[f];
            smp->depth = s[k].stack ? s[k].stack->depth : 0;
            for (size_t d = 0; d < smp->depth; d++, f++) {
                const struct prof_frame *pf = &s[k].stack->frames[d];
                out->frames[f] = (struct out_frame){pf->function, pf->file, pf->line, pf->native};
            }
            smp->lock = out->names[i];
            smp->kind = kind;
            smp->wait_ns = s[k].wait_ns;
            smp->count = s[k].count;
        }
    }
    return 0;
}

void cmd_samples_free(struct cmd_samples *s)
{
    for (size_t i = 0; s->names && i < s->n_names; i++)
        free(s->names[i]);
    free(s->names);
    free(s->samples);
    free(s->frames);
    memset(s, 0, sizeof(*s));
}

int cmd_samples_write(char *const *files, size_t n, bool holders, bool all, const char *out_path,
                      cmd_samples_writer write, void *ctx)
{
    struct profile p;
    int rc = cmd_load(&p, files, n, false);
    struct cmd_samples s = {0};
    if (rc == FTPROF_EXIT_OK && cmd_samples_build(&p, holders, all, &s) < 0)
        rc = cmd_error(FTPROF_EXIT_NO_MEMORY, out_path, "out of memory");
    if (rc == FTPROF_EXIT_OK) {
        FILE *out = cmd_create_output(out_path);
        if (!out) {
            rc = FTPROF_EXIT_CANNOT_WRITE;
        } else {
            int w = write(out, &p, &s, ctx);
            rc = cmd_finish_output(out, out_path, w < 0 ? w : 0);
        }
    }
    cmd_samples_free(&s);
    prof_free(&p);
    return rc;
}
