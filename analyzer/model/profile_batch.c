/* The batches between pass 2's two stages (see PROF_STAGE_RECORDS in profile_model.h): the records
 * stage fills batches of closed acquisitions in order, the close stage, in a thread of its own, empties
 * them in the same order. The two stages touch disjoint parts of the
 * model, so the aggregates come out the same either way; the close stage fetches each acquisition's
 * cache slot and site some acquisitions ahead within its batch. Inline, there are no batches: each
 * closed acquisition is applied as it comes (the records stage fetches for it). */
#include "profile_model.h"

#include <pthread.h>
#include <stdlib.h>

#define PROF_FETCH_FAR 16 /* closes ahead: the wait cache slot */
#define PROF_FETCH_NEAR 6 /* closes ahead: the site the slot names */

struct prof_pipe {
    struct prof_internal *in;
    struct prof_batch *batches; /* PROF_BATCHES, used in turn */
    uint64_t handed, done;      /* batches handed to the close stage, and emptied by it */
    bool last;                  /* no batch will follow the ones handed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
};

static void prof_batch_apply(struct prof_internal *in, const struct prof_batch *b)
{
    uint32_t n = b->n;
    for (uint32_t i = 0; i < n && i < PROF_FETCH_FAR; i++)
        prof_close_prefetch(in, &b->closed[i], true);
    for (uint32_t i = 0; i < n && i < PROF_FETCH_NEAR; i++)
        prof_close_prefetch(in, &b->closed[i], false);
    for (uint32_t i = 0; i < n; i++) {
        if (i + PROF_FETCH_FAR < n)
            prof_close_prefetch(in, &b->closed[i + PROF_FETCH_FAR], true);
        if (i + PROF_FETCH_NEAR < n)
            prof_close_prefetch(in, &b->closed[i + PROF_FETCH_NEAR], false);
        prof_close_apply(in, &b->closed[i]);
    }
}

static void *prof_batch_main(void *arg)
{
    struct prof_pipe *pp = arg;
    pthread_mutex_lock(&pp->mu);
    for (;;) {
        while (pp->done == pp->handed && !pp->last)
            pthread_cond_wait(&pp->cv, &pp->mu);
        if (pp->done == pp->handed)
            break;
        const struct prof_batch *b = &pp->batches[pp->done % PROF_BATCHES];
        pthread_mutex_unlock(&pp->mu);
        prof_batch_apply(pp->in, b);
        pthread_mutex_lock(&pp->mu);
        pp->done++;
        pthread_cond_broadcast(&pp->cv);
    }
    pthread_mutex_unlock(&pp->mu);
    phist_ring_flush(&pp->in->hist_ring[PROF_STAGE_CLOSE]);
    return NULL;
}

int prof_batch_start(struct prof_internal *in, bool threaded)
{
    in->close_threaded = false;
    if (!threaded)
        return 0;
    struct prof_pipe *pp = calloc(1, sizeof(*pp));
    if (pp)
        pp->batches = calloc(PROF_BATCHES, sizeof(*pp->batches));
    if (!pp || !pp->batches || pthread_mutex_init(&pp->mu, NULL) != 0) {
        if (pp)
            free(pp->batches);
        free(pp);
        return 0; /* inline, then */
    }
    if (pthread_cond_init(&pp->cv, NULL) != 0) {
        pthread_mutex_destroy(&pp->mu);
        free(pp->batches);
        free(pp);
        return 0;
    }
    pp->in = in;
    if (pthread_create(&pp->thread, NULL, prof_batch_main, pp) != 0) {
        pthread_cond_destroy(&pp->cv);
        pthread_mutex_destroy(&pp->mu);
        free(pp->batches);
        free(pp);
        return 0;
    }
    in->pipe = pp;
    in->close_threaded = true;
    return 0;
}

/* Hands the batch being filled to the close stage and waits, if need be, for the next one to be free. */
static void prof_batch_hand(struct prof_pipe *pp, bool last)
{
    pthread_mutex_lock(&pp->mu);
    pp->handed++;
    pp->last = last;
    pthread_cond_broadcast(&pp->cv);
    while (!last && pp->handed - pp->done >= PROF_BATCHES)
        pthread_cond_wait(&pp->cv, &pp->mu);
    pthread_mutex_unlock(&pp->mu);
    if (!last)
        pp->batches[pp->handed % PROF_BATCHES].n = 0;
}

void prof_batch_push(struct prof_internal *in, const struct prof_closed *c)
{
    struct prof_pipe *pp = in->pipe;
    if (!pp) { /* inline */
        prof_close_apply(in, c);
        return;
    }
    struct prof_batch *b = &pp->batches[pp->handed % PROF_BATCHES];
    b->closed[b->n++] = *c;
    if (b->n == PROF_BATCH)
        prof_batch_hand(pp, false);
}

void prof_batch_finish(struct prof_internal *in)
{
    struct prof_pipe *pp = in->pipe;
    if (!pp) {
        phist_ring_flush(&in->hist_ring[PROF_STAGE_CLOSE]);
        return;
    }
    prof_batch_hand(pp, true);
    pthread_join(pp->thread, NULL); /* it flushed its histogram ring */
    pthread_cond_destroy(&pp->cv);
    pthread_mutex_destroy(&pp->mu);
    free(pp->batches);
    free(pp);
    in->pipe = NULL;
    in->close_threaded = false;
}
