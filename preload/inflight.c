/* Waits in flight: a thread about to block publishes the wait in its own slot of the file's INFLIGHT
 * table (format.h), so a reader of the file can see every thread blocked right now, on which lock,
 * since when and from where, even a wait that never ends (a hang, a deadlock), which no WAIT record
 * would ever describe.
 *
 * The table is one record spanning chunk 0, written when the file is created. A thread claims a free
 * slot with one CAS at its first wait and keeps it until it exits. Publishing is a seqlock write of the
 * thread's own cache line: seq made odd, plain (relaxed) stores, seq made even with release order; no
 * allocation, no lock, nothing shared but the line itself. A reader in another process copies the slot
 * and checks seq did not move (see format.h). */
#include <pthread.h>
#include <string.h>

#include "file.h"
#include "inflight.h"
#include "python.h"
#include "ring.h"

#define SLOT_STORE(field, v) atomic_store_explicit((_Atomic __typeof__(s->field) *)&s->field, (v), memory_order_relaxed)

int ftp_inflight_init(void)
{
    struct ftp_file_header *h = ftp_state.hdr;
    ftp_state.inflight_slots = NULL;
    ftp_state.inflight_count = 0;
    /* Chunk 0, before any thread can claim chunks: nobody else touches `claimed` yet. */
    if (atomic_load(&ftp_state.claimed) != 0 || ftp_state.chunk_count < 2)
        return -1;
    uint32_t size = ftp_state.chunk_size;
    if (ftp_file_reserve(FTP_HEADER_SIZE, size) != 0)
        return -1;
    atomic_store(&ftp_state.claimed, 1);
    atomic_store((_Atomic uint32_t *)&h->chunks_used, 1);
    if (ftp_state.chunk_owned)
        atomic_store(&ftp_state.chunk_owned[0], 1); /* never overwritten in ring mode */
    struct ftp_rec_inflight *r = (struct ftp_rec_inflight *)(ftp_state.map + FTP_HEADER_SIZE);
    memset(r, 0, size);
    r->slot_count = (size - sizeof *r) / sizeof(struct ftp_inflight_slot);
    r->slot_size = sizeof(struct ftp_inflight_slot);
    r->h.type = FTP_REC_INFLIGHT;
    atomic_store_explicit((_Atomic uint32_t *)&r->h.size, size, memory_order_release);
    ftp_state.inflight_slots = (struct ftp_inflight_slot *)(r + 1);
    ftp_state.inflight_count = r->slot_count;
    h->inflight_chunk = 1;
    return 0;
}

static struct ftp_inflight_slot *inflight_claim(struct ftp_thread *t)
{
    struct ftp_inflight_slot *slots = ftp_state.inflight_slots;
    uint32_t n = ftp_state.inflight_count;
    /* Start near the tid so that threads starting together rarely race for the same slot. */
    for (uint32_t k = 0, i = t->tid % (n ? n : 1); k < n; k++, i = i + 1 == n ? 0 : i + 1) {
        struct ftp_inflight_slot *s = &slots[i];
        uint32_t free_tid = 0;
        if (atomic_load_explicit((_Atomic uint32_t *)&s->tid, memory_order_relaxed) != 0 ||
            !atomic_compare_exchange_strong((_Atomic uint32_t *)&s->tid, &free_tid, t->tid))
            continue;
        uint32_t seq = atomic_load_explicit((_Atomic uint32_t *)&s->seq, memory_order_relaxed);
        atomic_store_explicit((_Atomic uint32_t *)&s->seq, seq | 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        SLOT_STORE(start_ns, 0);
        SLOT_STORE(thread_ident, (uint64_t)pthread_self());
        atomic_store_explicit((_Atomic uint32_t *)&s->seq, (seq | 1) + 1, memory_order_release);
        return s;
    }
    return NULL;
}

void ftp_inflight_begin(struct ftp_thread *t, const struct ftp_wait *w, uint64_t owner)
{
    struct ftp_inflight_slot *s = t->inflight;
    if (FTP_UNLIKELY(!s || (!t->py_named && t->name_tries < 16))) {
        if (t->inflight_none || !ftp_state.inflight_slots)
            return;
        /* A reader names a thread by its THREAD record: make sure one is out there (this first wait's
         * stack may have been interned by another thread already: a zero-byte reservation announces),
         * and that it has the threading.Thread name, which a thread announced before its first frame
         * lacks: that record is repeated a few times, as event.c does after a wait. */
        ftp_thread_name_again(t);
        (void)ftp_ring_reserve(t, 0);
        if (!s && !(s = t->inflight = inflight_claim(t))) {
            t->inflight_none = true;
            return;
        }
    }
    uint32_t seq = s->seq;
    atomic_store_explicit((_Atomic uint32_t *)&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    SLOT_STORE(lock_addr, w->lock_addr);
    SLOT_STORE(kind, w->kind);
    SLOT_STORE(region, w->region);
    SLOT_STORE(flags, w->flags & FTP_WAIT_TIMED);
    SLOT_STORE(region_offset, w->region_offset);
    SLOT_STORE(type_id, w->type_id);
    SLOT_STORE(stack_id, w->stack_id);
    SLOT_STORE(event_id, w->event_id);
    SLOT_STORE(owner, owner);
    SLOT_STORE(start_ns, w->start_ns);
    atomic_store_explicit((_Atomic uint32_t *)&s->seq, seq + 2, memory_order_release);
}

void ftp_inflight_end(struct ftp_thread *t)
{
    struct ftp_inflight_slot *s = t->inflight;
    if (!s)
        return;
    uint32_t seq = s->seq;
    atomic_store_explicit((_Atomic uint32_t *)&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    SLOT_STORE(start_ns, 0);
    atomic_store_explicit((_Atomic uint32_t *)&s->seq, seq + 2, memory_order_release);
}

void ftp_inflight_release(struct ftp_thread *t)
{
    struct ftp_inflight_slot *s = t->inflight;
    if (!s)
        return;
    ftp_inflight_end(t);
    t->inflight = NULL;
    atomic_store_explicit((_Atomic uint32_t *)&s->tid, 0, memory_order_release);
}
