/* Capturing and interning stacks. A stack is written once as a STACK record and referred to by id
 * afterwards; the hash covers every frame, so equal ids mean equal frames. */
#include <string.h>

#include "intern.h"
#include "native.h"
#include "python.h"
#include "ring.h"
#include "stack.h"

static uint64_t hash_words(const uint64_t *w, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= w[i];
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

uint32_t ftp_stack_capture(struct ftp_thread *t)
{
    struct ftp_py_raw_frame raw[FTP_MAX_PY_FRAMES];
    struct ftp_py_frame py[FTP_MAX_PY_FRAMES];
    uint64_t native[FTP_MAX_NATIVE_FRAMES];
    int npy = ftp_python_raw_frames(raw, FTP_MAX_PY_FRAMES);
    int nnat = ftp_state.native ? ftp_native_backtrace(t, native, FTP_MAX_NATIVE_FRAMES) : 0;
    if (npy == 0 && nnat == 0)
        return 0;
    uint64_t h = 0xcbf29ce484222325ULL ^ ((uint64_t)npy << 16 | (uint64_t)nnat);
    bool named = false;
    if (FTP_UNLIKELY(ftp_state.ring)) {
        /* In ring mode a code object's definition may be overwritten and written again under a new id:
         * a stack is known by its code ids, so that it is defined again with the new ones. */
        ftp_python_frames_named(t, raw, py, npy);
        named = true;
        h = hash_words((const uint64_t *)py, (size_t)npy, h); /* each frame is one 8-byte word */
    } else {
        /* Otherwise a stack seen before is known by its frames as they are: no code object is looked
         * up (a code id is a function of the code and its check word). */
        h = hash_words((const uint64_t *)raw, (size_t)npy * (sizeof *raw / 8), h);
    }
    h = hash_words(native, (size_t)nnat, h);
    /* (Not in ring mode: the definition may have been overwritten since; the table knows.) */
    struct ftp_stack_seen *seen = &t->stack_seen[(h ^ h >> 32) & (FTP_STACK_SEEN - 1)];
    if (seen->hash == h && seen->id && !ftp_state.ring)
        return seen->id;
    _Atomic uint64_t *slot;
    uint32_t id = ftp_intern_stack_lookup(h, &slot);
    if (!id) {
        if (!named)
            ftp_python_frames_named(t, raw, py, npy);
        uint32_t size = (uint32_t)(sizeof(struct ftp_rec_stack) + (size_t)npy * sizeof(struct ftp_py_frame) +
                                   (size_t)nnat * sizeof(uint64_t));
        struct ftp_rec_stack *r = ftp_ring_reserve(t, size);
        if (!r)
            return 0;
        id = ftp_new_id();
        r->stack_id = id;
        r->py_count = (uint16_t)npy;
        r->native_count = (uint16_t)nnat;
        r->hash = h;
        memcpy(r + 1, py, (size_t)npy * sizeof *py);
        memcpy((uint8_t *)(r + 1) + (size_t)npy * sizeof *py, native, (size_t)nnat * sizeof *native);
        ftp_ring_commit(t, r, FTP_REC_STACK, 0, size);
        ftp_intern_publish(slot, id, 0);
    }
    *seen = (struct ftp_stack_seen){h, id};
    return id;
}
