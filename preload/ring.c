/* Per-thread chunks of the shared file mapping. A thread owns one chunk at a time and appends records to
 * it with plain stores; only claiming a new chunk touches shared state (one CAS). Chunks of exited
 * threads go on a lock-free free list and are adopted, with their fill level, by later threads, so
 * 10,000 short-lived threads do not need 10,000 chunks. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "recorder.h"

void ftp_ring_count_drop(uint64_t wait_ns)
{
    /* After the file was finished (exit), a thread that still waits and needs a new chunk finds none:
     * that wait is past the recording's end, not a sign of a buffer too small. */
    if (atomic_load_explicit(&ftp_state.claimed, memory_order_relaxed) & FTP_CLAIMS_CLOSED)
        return;
    struct ftp_file_header *h = ftp_state.hdr;
    if (!h)
        return;
    /* A full disk is not a small buffer: raising FTPROF_BUFFER would not have kept these. */
    if (atomic_load_explicit(&ftp_state.disk_full, memory_order_relaxed))
        atomic_fetch_add_explicit((_Atomic uint64_t *)&h->disk_full_events, 1, memory_order_relaxed);
    else {
        atomic_fetch_add_explicit((_Atomic uint64_t *)&h->dropped_events, 1, memory_order_relaxed);
        atomic_fetch_add_explicit((_Atomic uint64_t *)&h->dropped_wait_ns, wait_ns, memory_order_relaxed);
    }
}

static bool pop_free_chunk(uint32_t *index)
{
    uint64_t head = atomic_load(&ftp_state.free_chunks);
    for (;;) {
        uint32_t top = (uint32_t)head;
        if (top == 0)
            return false;
        uint32_t next = ftp_state.chunk_next[top - 1];
        /* The tag in the high half makes a recycled head differ from the one we read (ABA). */
        uint64_t want = ((head >> 32) + 1) << 32 | next;
        if (atomic_compare_exchange_weak(&ftp_state.free_chunks, &head, want)) {
            *index = top - 1;
            return true;
        }
    }
}

uint32_t ftp_ring_detach_free_list(void)
{
    /* A new tag with an empty list: a pop that read the old head fails its CAS and finds nothing. */
    uint64_t head = atomic_load(&ftp_state.free_chunks);
    while (!atomic_compare_exchange_weak(&ftp_state.free_chunks, &head, ((head >> 32) + 1) << 32))
        ;
    return (uint32_t)head;
}

static bool claim_new_chunk(uint32_t *index)
{
    /* Claims go through a private word whose top bit closes the file at exit (ring_close): after that
     * nobody may touch a chunk past the truncated end. Once the disk was found full, none are tried. */
    if (atomic_load_explicit(&ftp_state.disk_full, memory_order_relaxed))
        return false;
    uint32_t n = atomic_load(&ftp_state.claimed);
    do {
        if ((n & FTP_CLAIMS_CLOSED) || n >= ftp_state.chunk_count)
            return !(n & FTP_CLAIMS_CLOSED) && ftp_ring_recycle(index); /* ring mode: the oldest full chunk */
    } while (!atomic_compare_exchange_weak(&ftp_state.claimed, &n, n + 1));
    /* Reserve the chunk's disk blocks before touching its pages: on a full disk a store into a sparse
     * shared mapping would raise SIGBUS in the host. */
    size_t off = FTP_HEADER_SIZE + (size_t)n * ftp_state.chunk_size;
    int rc = ftp_file_reserve(off, ftp_state.chunk_size);
    if (rc != 0) {
        /* Hand the index back if nobody claimed after it, so the trim at exit drops it too. */
        uint32_t want = n + 1;
        atomic_compare_exchange_strong(&ftp_state.claimed, &want, n);
        if (rc == ESTALE)
            ftp_stop("the recording's file cannot be opened again (moved, replaced or made read-only)");
        else
            ftp_file_disk_full(rc);
        return false;
    }
    /* Published only once its blocks exist: readers (and the trim of an exec'd image) never count a
     * chunk that could not be reserved. */
    _Atomic uint32_t *used = (_Atomic uint32_t *)&ftp_state.hdr->chunks_used;
    uint32_t seen = atomic_load(used);
    while (seen < n + 1 && !atomic_compare_exchange_weak(used, &seen, n + 1))
        ;
    *index = n;
    return true;
}

/* A chunk handed back with less room than this is left as it is: the next thread would only find it
 * too full for its first records and have to take another one anyway. */
#define FTP_CHUNK_REUSE_MIN 1024

void ftp_ring_release_chunk(struct ftp_thread *t)
{
    if (!t->chunk)
        return;
    uint32_t idx = t->chunk_index;
    ftp_state.chunk_fill[idx] = t->chunk_off;
    bool reusable = ftp_state.chunk_size - t->chunk_off >= FTP_CHUNK_REUSE_MIN;
    t->chunk = NULL;
    t->announced = false;
    if (!reusable) {
        ftp_ring_mark_owned(idx, false); /* ring mode: full, may be overwritten */
        return;
    }
    uint64_t head = atomic_load(&ftp_state.free_chunks);
    for (;;) {
        ftp_state.chunk_next[idx] = (uint32_t)head;
        uint64_t want = ((head >> 32) + 1) << 32 | (idx + 1);
        if (atomic_compare_exchange_weak(&ftp_state.free_chunks, &head, want))
            return;
    }
}

/* A chunk for this thread: one handed back by an exited thread (with what it already holds) when
 * `reuse` allows, else a fresh one. */
static bool take_chunk(struct ftp_thread *t, bool reuse)
{
    uint32_t idx, fill = 0;
    if (reuse && pop_free_chunk(&idx))
        fill = ftp_state.chunk_fill[idx];
    else if (!claim_new_chunk(&idx))
        return false;
    t->chunk = ftp_state.map + FTP_HEADER_SIZE + (size_t)idx * ftp_state.chunk_size;
    t->chunk_index = idx;
    t->chunk_off = fill;
    t->announced = false;
    ftp_ring_mark_owned(idx, true);
    ftp_thread_set_key(t); /* its destructor hands the chunk back at thread exit */
    return true;
}

static void *reserve_raw(struct ftp_thread *t, uint32_t size)
{
    if (t->chunk && t->chunk_off + size <= ftp_state.chunk_size) {
        void *p = t->chunk + t->chunk_off;
        t->chunk_off += size;
        return p;
    }
    return NULL;
}

static bool announce_thread(struct ftp_thread *t)
{
    char py_name[128];
    size_t py_len = ftp_python_thread_name(t, py_name, sizeof py_name);
    uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_thread) + py_len));
    struct ftp_rec_thread *r = reserve_raw(t, size);
    if (!r)
        return false;
    r->tid = t->tid;
    r->py_name_len = (uint32_t)py_len;
    r->first_seen_ns = ftp_now();
    memset(r->name, 0, sizeof r->name);
    pthread_getname_np(pthread_self(), r->name, sizeof r->name); /* prctl(PR_GET_NAME): no locks */
    memcpy(r + 1, py_name, py_len);
    memset((uint8_t *)(r + 1) + py_len, 0, size - sizeof *r - py_len);
    ftp_ring_commit(t, r, FTP_REC_THREAD, 0, size);
    t->announced = true;
    t->py_named = py_len > 0;
    return true;
}

void *ftp_ring_reserve(struct ftp_thread *t, uint32_t size)
{
    if (FTP_UNLIKELY(size > ftp_state.chunk_size - sizeof(struct ftp_rec_thread) - 128))
        return NULL;
    if (t->chunk && (t->announced || announce_thread(t))) {
        void *p = reserve_raw(t, size);
        if (p)
            return p;
    }
    /* The chunk in hand cannot take the record: leave it as full as it is and take another. A handed
     * back chunk is tried first; if it is too full as well, a fresh one, where the thread's record and
     * any record that passed the size check above always fit. Only when no chunk is left is the record
     * lost (and a wait counted as dropped by the caller). */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (t->chunk)
            ftp_ring_mark_owned(t->chunk_index, false); /* ring mode: full, may be overwritten */
        t->chunk = NULL;
        t->announced = false;
        if (!take_chunk(t, attempt == 0))
            return NULL;
        if (announce_thread(t)) {
            void *p = reserve_raw(t, size);
            if (p)
                return p;
        }
    }
    if (t->chunk)
        ftp_ring_mark_owned(t->chunk_index, false);
    t->chunk = NULL;
    t->announced = false;
    return NULL;
}

void ftp_ring_commit(struct ftp_thread *t, void *rec, uint16_t type, uint16_t flags, uint32_t size)
{
    (void)t;
    struct ftp_record *h = rec;
    h->type = type;
    h->flags = flags;
    /* Readers treat size 0 as "not yet published": the size is the last store, with release order. */
    atomic_store_explicit((_Atomic uint32_t *)&h->size, size, memory_order_release);
}

uint32_t ftp_ring_close(void)
{
    return atomic_fetch_or(&ftp_state.claimed, FTP_CLAIMS_CLOSED) & ~FTP_CLAIMS_CLOSED;
}
