/* The timeline stage: a third pass over each recording that hands every acquisition's wait and every
 * wake-up to a writer (out_trace.c), with the kinds, lock names and stacks the loaded model gave them.
 * Waits are joined into acquisitions as in pass 2 (the parks of one acquisition are one wait); only the
 * acquisition in progress on each thread is kept. */
#include "profile_model.h"

#include <errno.h>
#include <stdio.h>

#include "reader.h"

struct tl_acq {
    uint32_t tid;
    bool open;
    uint8_t raw_kind;
    uint32_t stack_id, type_id;
    uint64_t acq_seq, start, park, end, addr;
};

struct tl {
    struct prof_internal *in;
    const struct prof_timeline_ops *ops;
    void *ctx;
    uint32_t file;
    struct pmap threads; /* tid -> index into acqs */
    struct tl_acq *acqs;
    size_t n_acqs, cap_acqs;
    int rc;
};

static void tl_close(struct tl *t, struct tl_acq *a)
{
    a->open = false;
    if (t->rc)
        return;
    struct prof_internal *in = t->in;
    const struct plock *l = prof_lock_of(in, t->file, a->raw_kind, a->addr, a->type_id, a->stack_id);
    if (!l && !a->park && a->raw_kind == FTP_KIND_PYMUTEX) /* named on a field that is no lock: a spin */
        l = prof_lock_of(in, t->file, FTP_KIND_SPIN, 0, 0, a->stack_id);
    uint64_t wait = a->end > a->start ? a->end - a->start : 0;
    uint64_t spin = a->park ? (a->park > a->start ? a->park - a->start : 0) : wait;
    struct prof_tl_wait w = {
        .file = t->file,
        .tid = a->tid,
        .kind = l ? l->kind : prof_wait_kind(in, t->file, a->raw_kind, a->stack_id),
        .lock = l && l->name ? l->name : "wait",
        .start_ns = a->start,
        .end_ns = a->start + wait,
        .spin_ns = spin > wait ? wait : spin,
        .parked = a->park != 0,
        .stack = prof_resolve(in, t->file, a->stack_id),
    };
    t->rc = t->ops->wait(t->ctx, &w);
}

static struct tl_acq *tl_acq_for(struct tl *t, uint32_t tid)
{
    bool ins;
    uint64_t *slot = prof_put(t->in, &t->threads, tid, 0, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct tl_acq *a = prof_push(t->in, (void **)&t->acqs, &t->n_acqs, &t->cap_acqs, sizeof(*a));
        if (!a)
            return NULL;
        a->tid = tid;
        *slot = t->n_acqs - 1;
    }
    return &t->acqs[*slot];
}

static bool tl_visit(void *ctx, uint32_t chunk, const struct ftp_record *rec)
{
    (void)chunk;
    struct tl *t = ctx;
    if (rec->type == FTP_REC_WAIT && rec->size >= FTP_REC_WAIT_V6_SIZE && !(rec->flags & FTP_WAIT_FAILED)) {
        const struct ftp_rec_wait *w = (const void *)rec;
        struct tl_acq *a = tl_acq_for(t, w->tid);
        if (!a)
            return false;
        if (a->open && a->acq_seq == w->acq_seq) {
            if (!a->park && w->park_ns)
                a->park = w->park_ns;
            a->end = w->end_ns;
            if (a->raw_kind == FTP_KIND_SPIN && w->kind != FTP_KIND_SPIN) {
                a->raw_kind = w->kind; /* a spin that went on to park: the park names the lock */
                a->addr = w->lock_addr;
                a->type_id = w->type_id;
                a->stack_id = w->stack_id;
            }
        } else {
            if (a->open)
                tl_close(t, a);
            *a = (struct tl_acq){.tid = w->tid, .open = true, .raw_kind = w->kind, .stack_id = w->stack_id,
                                 .type_id = w->type_id, .acq_seq = w->acq_seq, .start = w->start_ns,
                                 .park = w->park_ns, .end = w->end_ns, .addr = w->lock_addr};
        }
    } else if (rec->type == FTP_REC_HOLDER && rec->size >= sizeof(struct ftp_rec_holder) && !t->rc) {
        const struct ftp_rec_holder *h = (const void *)rec;
        struct prof_tl_wake k = {
            .file = t->file,
            .tid = h->tid,
            .waiter_tid = (uint32_t)(h->waiter_event_id >> 32),
            .time_ns = h->time_ns,
            .id = h->waiter_event_id,
            .stack = prof_resolve(t->in, t->file, h->stack_id),
        };
        t->rc = t->ops->wake(t->ctx, &k);
    }
    return !t->rc && !t->in->oom;
}

int prof_timeline(struct profile *p, const struct prof_timeline_ops *ops, void *ctx, char *err, size_t errlen)
{
    struct tl t = {.in = p->in, .ops = ops, .ctx = ctx};
    int rc = 0;
    for (uint32_t k = 0; k < p->n_files && rc == 0; k++) {
        struct rd_file rd;
        rc = rd_open(&rd, p->files[k].path, err, errlen);
        if (rc < 0)
            break;
        t.file = k;
        rc = rd_walk(&rd, tl_visit, &t);
        rd_close(&rd);
        for (size_t i = 0; i < t.n_acqs && rc == 0; i++)
            if (t.acqs[i].open)
                tl_close(&t, &t.acqs[i]);
        if (rc == 0 && t.in->oom)
            rc = -ENOMEM;
        if (rc == 0)
            rc = t.rc;
        if (rc < 0 && err[0] == 0)
            snprintf(err, errlen, "%s", rd_error_text(rc));
        pmap_free(&t.threads);
        memset(&t.threads, 0, sizeof(t.threads));
        t.n_acqs = 0;
    }
    free(t.acqs);
    return rc;
}
