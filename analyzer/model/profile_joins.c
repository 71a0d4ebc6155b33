/* Pass 2's joins share (see PROF_SHARE_* in profile_model.h) in a thread of its own. The thread walks
 * a second mapping of the file with a model view of its own (jn): the model's join tables (holder
 * groups and sites, the join table, the holder site cache, the hold times' histogram ring) are lent
 * to that view for the walk and taken back after it, and the view follows the threads' acquisitions in
 * a table of its own. The load's thread meanwhile reads the file's definitions and does the waits
 * share: the joins need no definitions (a holder's stack is a key until the report resolves it), so
 * the two walks share nothing while they run. */
#include "profile_model.h"

#include <pthread.h>
#include <sched.h>

#include "reader.h"

struct prof_joins {
    struct prof_internal *in; /* the model, its join tables lent to jn while the thread runs */
    struct prof_internal *jn; /* the joins share's view */
    struct rd_file twin;      /* the file, mapped again for the thread's walk */
    pthread_t thread;
    int rc; /* the thread's walk: 0, -errno or RD_ERR_* */
};

/* What the joins share owns: swapped between the model and the thread's view, before and after. */
static void prof_joins_swap(struct prof_internal *a, struct prof_internal *b)
{
#define SWAP(field)                          \
    do {                                     \
        __typeof__(a->field) t_ = a->field;  \
        a->field = b->field;                 \
        b->field = t_;                       \
    } while (0)
    SWAP(hgroups_map);
    SWAP(hsites_map);
    SWAP(hgroups);
    SWAP(n_hgroups);
    SWAP(cap_hgroups);
    SWAP(hsites);
    SWAP(n_hsites);
    SWAP(cap_hsites);
    SWAP(pending);
    SWAP(hsite_cache);
    SWAP(hist_ring[PROF_STAGE_RECORDS]);
#undef SWAP
}

/* A second core for this process to run on (the affinity mask, not the machine, says). */
static bool prof_joins_second_core(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return false;
    return CPU_COUNT(&set) > 1;
}

static void *prof_joins_main(void *arg)
{
    struct prof_joins *j = arg;
    j->rc = rd_walk_holding(&j->twin, prof_visit_events, prof_events_chunk_done, j->jn);
    if (j->rc == 0)
        prof_events_end_file(j->jn); /* the threads' last parks joined, the hold times' adds done */
    return NULL;
}

/* A large mapped file, with a second core to run on. FTPROF_ANALYZER_THREADS says otherwise for
 * comparisons (the output is the same either way): 1, the whole load in the calling thread; 2, the
 * joins share in a thread of its own for every mapped file, small ones and one core included. */
static bool prof_joins_wanted(const struct rd_file *rd)
{
    const char *threads = getenv("FTPROF_ANALYZER_THREADS");
    if (!rd->map || (threads && strcmp(threads, "1") == 0))
        return false;
    if (threads && strcmp(threads, "2") == 0)
        return true;
    return rd->chunks >= PROF_THREADED_CHUNKS && prof_joins_second_core();
}

bool prof_joins_start(struct prof_internal *in, const struct rd_file *rd)
{
    in->share = PROF_SHARE_ALL;
    if (!prof_joins_wanted(rd))
        return false;
    struct prof_joins *j = calloc(1, sizeof(*j));
    struct prof_internal *jn = j ? calloc(1, sizeof(*jn)) : NULL;
    if (!jn || rd_twin(rd, &j->twin) != 0) {
        free(jn);
        free(j);
        return false; /* one walk does both shares, then */
    }
    /* No profile and no definitions: the joins share touches neither (the load's thread writes both). */
    jn->cur_file = in->cur_file;
    jn->last_acq = SIZE_MAX;
    jn->share = PROF_SHARE_JOINS;
    j->in = in;
    j->jn = jn;
    prof_joins_swap(in, jn);
    if (pthread_create(&j->thread, NULL, prof_joins_main, j) != 0) {
        prof_joins_swap(in, jn);
        rd_close(&j->twin);
        free(jn);
        free(j);
        return false;
    }
    in->joins = j;
    in->share = PROF_SHARE_WAITS;
    return true;
}

int prof_joins_finish(struct prof_internal *in)
{
    struct prof_joins *j = in->joins;
    if (!j)
        return 0;
    pthread_join(j->thread, NULL);
    struct prof_internal *jn = j->jn;
    prof_joins_swap(in, jn);
    in->oom |= jn->oom;
    int rc = j->rc;
    rd_close(&j->twin);
    free(jn->acqs);
    pmap_free(&jn->acqs_map);
    free(jn);
    free(j);
    in->joins = NULL;
    in->share = PROF_SHARE_ALL;
    return rc;
}
