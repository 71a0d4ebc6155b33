/* Per-thread chunks of the shared file mapping, and ring mode (FTPROF_MODE=ring). A thread owns one
 * chunk at a time and appends records to it with plain stores; only claiming a new chunk touches shared
 * state (one CAS). Chunks of exited threads go on a lock-free free list and are adopted, with their fill
 * level, by later threads, so 10,000 short-lived threads do not need 10,000 chunks. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "file.h"
#include "ring.h"
#include "thread.h"

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

/* ---- ring mode (FTPROF_MODE=ring): the oldest full chunks are overwritten, what they held is counted ---- */

void ftp_ring_file_opened(struct ftp_file_header *h)
{
    atomic_store(&ftp_state.ring_next, 0);
    if (ftp_state.ring) {
        /* Private bookkeeping, one byte and one word per chunk (start-up or a forked child: no hook). */
        size_t need = (size_t)ftp_state.chunk_count * (1 + sizeof(uint32_t));
        void *p = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            ftp_warn("FTPROF_MODE=ring: cannot allocate the chunk table; using normal mode", NULL, NULL);
            ftp_state.ring = false;
            h->mode = FTP_MODE_NORMAL;
            return;
        }
        ftp_state.chunk_gen = p;
        ftp_state.chunk_owned = (_Atomic uint8_t *)((uint32_t *)p + ftp_state.chunk_count);
    }
}

/* Ring mode: a chunk a thread or the free list holds is never overwritten. */
static void mark_owned(uint32_t index, bool owned)
{
    if (ftp_state.ring && ftp_state.chunk_owned && index < ftp_state.chunk_count)
        atomic_store_explicit(&ftp_state.chunk_owned[index], owned, memory_order_release);
}

static void atomic_max_u64(_Atomic uint64_t *p, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(p, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak(p, &cur, v))
        ;
}

/* Ring mode: a full chunk to overwrite (its lost waits counted), or false when none can be. */
static bool recycle_oldest(uint32_t *index)
{
    uint32_t n = ftp_state.chunk_count;
    if (!ftp_state.ring || !ftp_state.chunk_owned || !ftp_state.hdr)
        return false;
    struct ftp_file_header *h = ftp_state.hdr;
    /* Round robin over the chunks in the order they were first claimed: the one overwritten next is
     * the one filled longest ago, less those a thread (or the free list) still holds. */
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = atomic_fetch_add_explicit(&ftp_state.ring_next, 1, memory_order_relaxed) % n;
        uint8_t free_now = 0;
        if (atomic_load_explicit(&ftp_state.chunk_owned[i], memory_order_relaxed) ||
            !atomic_compare_exchange_strong(&ftp_state.chunk_owned[i], &free_now, 1))
            continue;
        /* What is lost: every WAIT record the chunk holds, and up to when. */
        uint8_t *c = ftp_state.map + FTP_HEADER_SIZE + (size_t)i * ftp_state.chunk_size;
        uint64_t lost = 0, until = 0;
        for (uint32_t off = 0; off + sizeof(struct ftp_record) <= ftp_state.chunk_size;) {
            const struct ftp_record *r = (const struct ftp_record *)(c + off);
            uint32_t size = atomic_load_explicit((_Atomic uint32_t *)&r->size, memory_order_acquire);
            if (size == 0 || size % FTP_RECORD_ALIGN || size > ftp_state.chunk_size - off)
                break;
            if (r->type == FTP_REC_WAIT && size >= FTP_REC_WAIT_V6_SIZE) {
                lost++;
                uint64_t end = ((const struct ftp_rec_wait *)r)->end_ns;
                if (end > until)
                    until = end;
            }
            off += size;
        }
        atomic_fetch_add_explicit(&ftp_state.chunk_gen[i], 1, memory_order_release);
        /* A reader stops at the first size 0: cut the chunk there first, then clear the rest. */
        atomic_store_explicit((_Atomic uint32_t *)c, 0, memory_order_release);
        memset(c + 8, 0, ftp_state.chunk_size - 8);
        atomic_fetch_add_explicit((_Atomic uint64_t *)&h->overwritten_events, lost, memory_order_relaxed);
        atomic_max_u64((_Atomic uint64_t *)&h->overwritten_until_ns, until);
        atomic_fetch_add_explicit((_Atomic uint64_t *)&h->chunks_recycled, 1, memory_order_relaxed);
        ftp_state.chunk_fill[i] = 0;
        *index = i;
        return true;
    }
    return false;
}

uint64_t ftp_ring_where(void)
{
    struct ftp_thread *t = &ftp_tls;
    if (!ftp_state.ring || !ftp_state.chunk_gen || !t->chunk)
        return 0;
    return (uint64_t)(t->chunk_index + 1) << 32 |
           atomic_load_explicit(&ftp_state.chunk_gen[t->chunk_index], memory_order_relaxed);
}

bool ftp_ring_defined(uint64_t where)
{
    if (!where || !ftp_state.chunk_gen)
        return true;
    uint32_t i = (uint32_t)(where >> 32) - 1;
    return i >= ftp_state.chunk_count ||
           atomic_load_explicit(&ftp_state.chunk_gen[i], memory_order_relaxed) == (uint32_t)where;
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
            return !(n & FTP_CLAIMS_CLOSED) && recycle_oldest(index); /* ring mode: the oldest full chunk */
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
            ftp_file_disk_full(rc, ftp_ring_detach_free_list);
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
        mark_owned(idx, false); /* ring mode: full, may be overwritten */
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
    mark_owned(idx, true);
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

/* Set before recording starts (session.c), never changed while it runs. */
static ftp_ring_namer thread_namer;

void ftp_ring_name_threads_with(ftp_ring_namer namer) { thread_namer = namer; }

static bool announce_thread(struct ftp_thread *t)
{
    char py_name[128];
    size_t py_len = thread_namer ? thread_namer(t, py_name, sizeof py_name) : 0;
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
            mark_owned(t->chunk_index, false); /* ring mode: full, may be overwritten */
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
        mark_owned(t->chunk_index, false);
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
