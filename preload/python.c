/* Reading the interpreter from inside, without calling into it.
 *
 * Everything comes from _PyRuntime's _Py_DebugOffsets (the offsets out-of-process profilers use), so
 * a stripped python3.13t works. Two kinds of memory are read here:
 *  - the calling thread's own frames, code objects and their strings: only the owning thread changes
 *    its frames and it is inside our hook, and each frame holds a reference to its code, so plain
 *    loads are safe;
 *  - guessed addresses (the object around a parked address, a type's name): read with
 *    process_vm_readv on our own pid, which returns EFAULT instead of faulting. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "intern.h"
#include "python.h"
#include "ring.h"

/* Short for the layout of the interpreter we run in (layout.c): every offset below comes from it. */
#define L (&ftp_state.py.lay)
/* The GIL's runtime state, from its first field to past switch_mutex (struct _gil_runtime_state,
 * Include/internal/pycore_gil.h, 3.13-3.15): the addresses whose waits are GIL waits. */
#define GIL_STATE_SPAN 256

static int find_text(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t probe = *(uintptr_t *)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        if (probe >= start && probe < end) {
            ftp_state.py.text_start = start;
            ftp_state.py.text_end = end;
            return 1;
        }
    }
    return 0;
}

/* Where the interpreter's seqlock functions are: their exported symbols' values and sizes. */
static void seqlock_text_detect(struct ftp_python *py)
{
    static const char *const names[3] = {"_PySeqLock_BeginRead", "_PySeqLock_EndRead", "_PySeqLock_LockWrite"};
    for (int i = 0; i < 3; i++) {
        void *fn = dlsym(RTLD_DEFAULT, names[i]);
        Dl_info info;
        const ElfW(Sym) *sym = NULL;
        if (fn && dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size) {
            py->seqlock_text[i][0] = (uintptr_t)fn;
            py->seqlock_text[i][1] = (uintptr_t)fn + sym->st_size;
        }
    }
}

static void tstate_source_detect(struct ftp_python *py, uintptr_t fn);
enum { TSTATE_NONE, TSTATE_TLS, TSTATE_KEY };

/* A free-threaded build told to keep the GIL (PYTHON_GIL=1, or -X gil=1, which wins over the variable):
 * read from the configuration at start-up, because the first look at the interpreter's own flag may
 * come only after an extension turned the GIL on, and 3.15 turns it on transiently while starting. */
static bool gil_forced_by_config(void)
{
    const char *env = getenv("PYTHON_GIL");
    bool forced = env && !strcmp(env, "1");
    const char *argv;
    uint32_t len, argc;
    ftp_argv(&argv, &len, &argc);
    const char *end = argv + len;
    for (const char *a = argv; a < end; a += strlen(a) + 1) {
        const char *opt = NULL;
        if (!strcmp(a, "-X") && a + 3 < end)
            opt = a + 3;
        else if (!strncmp(a, "-X", 2))
            opt = a + 2;
        if (opt && !strncmp(opt, "gil=", 4))
            forced = !strcmp(opt + 4, "1");
        if (!strcmp(a, "-c") || !strcmp(a, "-m") || (a != argv && a[0] != '-'))
            break; /* the script's own arguments begin */
    }
    return forced;
}

/* Appending to a message without stdio: the recorder's messages follow the hooks' rules. */
static void text_add(char *out, size_t cap, size_t *n, const char *s)
{
    while (*s && *n + 1 < cap)
        out[(*n)++] = *s++;
    out[*n] = 0;
}

static void text_add_uint(char *out, size_t cap, size_t *n, unsigned v)
{
    char digits[12];
    int d = (int)sizeof digits - 1;
    digits[d] = 0;
    do
        digits[--d] = (char)('0' + v % 10);
    while ((v /= 10) && d > 0);
    text_add(out, cap, n, digits + d);
}

/* "CPython 3.14.9", "CPython 3.15.0rc2 free-threaded": the whole PY_VERSION_HEX. */
static void version_text(char *out, size_t cap, uint64_t version, bool free_threaded)
{
    static const char *const levels[16] = {[0xa] = "a", [0xb] = "b", [0xc] = "rc"};
    unsigned level = (unsigned)(version >> 4) & 0xf;
    size_t n = 0;
    text_add(out, cap, &n, "CPython ");
    text_add_uint(out, cap, &n, (unsigned)(version >> 24) & 0xff);
    text_add(out, cap, &n, ".");
    text_add_uint(out, cap, &n, (unsigned)(version >> 16) & 0xff);
    text_add(out, cap, &n, ".");
    text_add_uint(out, cap, &n, (unsigned)(version >> 8) & 0xff);
    if (level != 0xf) { /* a pre-release: its level and serial */
        text_add(out, cap, &n, levels[level] ? levels[level] : "?");
        text_add_uint(out, cap, &n, (unsigned)version & 0xf);
    }
    if (free_threaded)
        text_add(out, cap, &n, " free-threaded");
}

void ftp_python_detect(void)
{
    struct ftp_python *py = &ftp_state.py;
    if (py->present)
        return;
    const uint64_t *dbg = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!dbg || memcmp(dbg, "xdebugpy", 8) != 0)
        return;
    py->runtime = (uintptr_t)dbg;
    py->version = dbg[1];
    py->free_threaded = dbg[2] != 0;
    py->gil_forced = py->free_threaded && gil_forced_by_config();
    py->code_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
    py->type_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyType_Type");
    /* Only to find the interpreter's code (spins are counted only when it yields); never called. */
    uintptr_t probe = (uintptr_t)dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
    if (probe)
        dl_iterate_phdr(find_text, &probe);
    tstate_source_detect(py, probe);
    seqlock_text_detect(py);
    /* Offsets are only stable within a minor version, and only a table we know is believed (layout.c).
     * Other interpreters still get their waits recorded, without Python stacks or object names. */
    const uint8_t *str_type = dlsym(RTLD_DEFAULT, "PyUnicode_Type"), *bytes_type = dlsym(RTLD_DEFAULT, "PyBytes_Type");
    py->str_type = (uintptr_t)str_type;
    py->method_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyMethod_Type");
    bool symbols = py->code_type && py->type_type && str_type && bytes_type && py->tstate_via != TSTATE_NONE;
    bool known = ftp_layout_load(&py->lay, dbg, py->version, py->free_threaded);
    const char *why = known ? ": its symbols are missing" : ": memory layout (_Py_DebugOffsets) not known to this ftprof";
    if (known && symbols) {
        struct ftp_layout_types types = {(const uint8_t *)py->type_type, (const uint8_t *)py->code_type, str_type,
                                         bytes_type, py->type_type};
        known = ftp_layout_check_types(&py->lay, &types);
        why = ": its type objects do not match the memory layout known to this ftprof";
    }
    py->layout_unknown = !known;
    py->stacks = known && symbols;
    /* Said whether or not FTPROF_VERBOSE is set: the report would otherwise just lack its stacks. */
    if (!known || (!py->stacks && ftp_state.verbose)) {
        char v[64];
        version_text(v, sizeof v, py->version, py->free_threaded);
        ftp_warn(v, why, "; recording waits without Python stacks or object names");
    }
    py->present = true;
}

/* Finish set-up once the main interpreter exists (the constructor runs before Py_Initialize). */
bool ftp_python_ready(void)
{
    struct ftp_python *py = &ftp_state.py;
    /* Acquire: the fields set-up stored before its release store (interp, gil, gil_enabled) are read
     * by this thread right after. */
    if (FTP_LIKELY(__atomic_load_n(&py->ready, __ATOMIC_ACQUIRE)))
        return true;
    if (!py->present || !L->minor)
        return false;
    uintptr_t interp = *(volatile uintptr_t *)(py->runtime + L->rt_interpreters_head);
    if (!interp)
        return false;
    /* One thread sets up; the others carry on without Python facts until it has published them. */
    static _Atomic int setting_up;
    if (atomic_exchange(&setting_up, 1))
        return false;
    /* Atomic stores: threads that have not seen `ready` yet may read these fields (region, GIL checks). */
    __atomic_store_n(&py->interp, interp, __ATOMIC_RELAXED);
    __atomic_store_n(&py->gil, interp + L->is_gil_state, __ATOMIC_RELAXED);
    if (py->free_threaded)
        __atomic_store_n(&py->gil_enabled, (volatile int *)(interp + L->is_gil_state + L->gil_enabled), __ATOMIC_RELAXED);
    if (ftp_state.hdr)
        ftp_python_describe(ftp_state.hdr);
    __atomic_store_n(&py->ready, true, __ATOMIC_RELEASE);
    return true;
}

void ftp_python_describe(struct ftp_file_header *h)
{
    struct ftp_python *py = &ftp_state.py;
    uint32_t flags = 0;
    if (py->free_threaded)
        flags |= FTP_FLAG_FREE_THREADED;
    bool gil_now = !py->free_threaded || py->gil_forced;
    if (gil_now)
        flags |= FTP_FLAG_GIL_AT_START;
    atomic_store(&ftp_state.gil_reported, gil_now);
    h->python_version = py->version;
    h->python_runtime = py->runtime;
    atomic_fetch_or((_Atomic uint32_t *)&h->flags, flags);
}

/* Each thread's own PyThreadState, the one PyGILState_GetThisThreadState returns (the current one is
 * NULL while a free-threaded thread is parked: it detached), is read without calling that function:
 *  - 3.15 keeps it in a C thread-local (_Py_tss_gilstate, Python/pystate.c), and the function is one
 *    load from the thread pointer; its code says at which offset (local-exec TLS, libpython linked into
 *    the executable: mov %fs:OFFSET,%rax; initial-exec, a shared libpython loaded at start-up: the
 *    offset sits in a GOT slot the code names). Read once, outside any hook (ftp_python_detect).
 *  - 3.13 and 3.14 keep it in a pthread key (_PyRuntime.autoTSSkey, at an offset _Py_DebugOffsets does
 *    not give). Which key is found once, on a thread that has a state: the key whose value is a thread
 *    state of the main interpreter for this very thread (interp, native_thread_id). Then a lookup is
 *    pthread_getspecific, a few loads in the thread's own descriptor.
 * Either way: no lock, no allocation, no call into the interpreter. The first state found is checked
 * to be the calling thread's own (native_thread_id, interp); if it is not, Python stacks are off. An
 * interpreter whose function is neither (another TLS model, another architecture) has no stacks. */
static void tstate_source_detect(struct ftp_python *py, uintptr_t fn)
{
    py->tstate_via = TSTATE_NONE;
#if defined(__x86_64__)
    uint8_t c[16];
    if (!fn || !ftp_safe_read(c, fn, sizeof c))
        return;
    const uint8_t *p = c;
    if (p[0] == 0xf3 && p[1] == 0x0f && p[2] == 0x1e && p[3] == 0xfa)
        p += 4; /* endbr64 */
    int32_t d;
    if (p[0] == 0x64 && p[1] == 0x48 && p[2] == 0x8b && p[3] == 0x04 && p[4] == 0x25 && p[9] == 0xc3) {
        memcpy(&d, p + 5, 4); /* mov %fs:d32,%rax; ret */
        py->tstate_tls_offset = d;
        py->tstate_via = TSTATE_TLS;
        return;
    }
    if (p[0] == 0x48 && p[1] == 0x8b && p[2] == 0x05 && p[7] == 0x64 && p[8] == 0x48 && p[9] == 0x8b &&
        p[10] == 0x00 && p[11] == 0xc3) {
        memcpy(&d, p + 3, 4); /* mov d32(%rip),%rax; mov %fs:(%rax),%rax; ret */
        int64_t off;
        if (!ftp_safe_read(&off, fn + (uintptr_t)(p - c) + 7 + (intptr_t)d, sizeof off))
            return;
        py->tstate_tls_offset = (intptr_t)off;
        py->tstate_via = TSTATE_TLS;
        return;
    }
    /* 3.13, 3.14: a call (PyThread_tss_get, then pthread_getspecific): the key is found by value. */
    py->tstate_via = TSTATE_KEY;
#endif
}

static uintptr_t tstate_from_tls(intptr_t offset)
{
#if defined(__x86_64__)
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp)); /* the TCB's self pointer: the thread pointer */
    return *(const uintptr_t *)(tp + offset);
#else
    (void)offset;
    return 0;
#endif
}

/* Is `ts` a thread state of the main interpreter, for the calling thread? */
static bool tstate_is_ours(uintptr_t ts)
{
    uintptr_t interp = __atomic_load_n(&ftp_state.py.interp, __ATOMIC_RELAXED);
    uint64_t native_id, ts_interp;
    return ts >= 4096 && interp && ftp_tls.tid && L->ts_native_thread_id && L->ts_interp &&
           ftp_safe_read(&native_id, ts + L->ts_native_thread_id, sizeof native_id) && native_id == ftp_tls.tid &&
           ftp_safe_read(&ts_interp, ts + L->ts_interp, sizeof ts_interp) && ts_interp == interp;
}

static int find_tstate_key(void)
{
    struct ftp_python *py = &ftp_state.py;
    uintptr_t interp = __atomic_load_n(&py->interp, __ATOMIC_RELAXED);
    uint64_t tid = ftp_tls.tid;
    if (!interp || !tid || !L->ts_native_thread_id || !L->ts_interp)
        return 0;
    for (unsigned k = 0; k < PTHREAD_KEYS_MAX; k++) {
        uintptr_t ts = (uintptr_t)pthread_getspecific((pthread_key_t)k);
            if (!tstate_is_ours(ts))
            continue;
        atomic_store_explicit(&py->tstate_key, (int)k + 1, memory_order_relaxed);
        atomic_store_explicit(&py->tstate_checked, 1, memory_order_relaxed);
        return (int)k + 1;
    }
    return 0;
}

uintptr_t ftp_python_tstate(void)
{
    struct ftp_python *py = &ftp_state.py;
    if (!py->stacks || !__atomic_load_n(&py->ready, __ATOMIC_ACQUIRE))
        return 0;
    /* Once the runtime is finalizing, thread states are being freed under threads that may still
     * wait (daemon threads, exit handlers): no Python stacks from then on. */
    if (*(volatile const uintptr_t *)(py->runtime + L->rt_finalizing))
        return 0;
    if (py->tstate_via == TSTATE_TLS) {
        uintptr_t ts = tstate_from_tls(py->tstate_tls_offset);
        int checked = atomic_load_explicit(&py->tstate_checked, memory_order_relaxed);
        if (FTP_UNLIKELY(checked <= 0) && ts) {
            if (checked < 0)
                return 0;
            /* The first state read this way must be this thread's own, or the offset is not what the
             * code seemed to say: no stacks rather than wrong ones. */
            atomic_store_explicit(&py->tstate_checked, tstate_is_ours(ts) ? 1 : -1, memory_order_relaxed);
            if (atomic_load_explicit(&py->tstate_checked, memory_order_relaxed) < 0)
                return 0;
        }
        return ts;
    }
    if (py->tstate_via != TSTATE_KEY)
        return 0;
    int key = atomic_load_explicit(&py->tstate_key, memory_order_relaxed);
    if (FTP_UNLIKELY(!key) && !(key = find_tstate_key()))
        return 0;
    return (uintptr_t)pthread_getspecific((pthread_key_t)(key - 1));
}

uint8_t ftp_python_region(uintptr_t addr, uint32_t *offset)
{
    struct ftp_python *py = &ftp_state.py;
    if (L->rt_size && addr >= py->runtime && addr < py->runtime + L->rt_size) {
        *offset = (uint32_t)(addr - py->runtime);
        return FTP_REGION_RUNTIME;
    }
    uintptr_t interp = __atomic_load_n(&py->interp, __ATOMIC_RELAXED);
    if (interp && addr >= interp && addr < interp + L->is_size) {
        *offset = (uint32_t)(addr - interp);
        return FTP_REGION_INTERP;
    }
    *offset = 0;
    return FTP_REGION_HEAP;
}

bool ftp_python_is_gil(uintptr_t addr)
{
    struct ftp_python *py = &ftp_state.py;
    uintptr_t gil = __atomic_load_n(&py->gil, __ATOMIC_RELAXED);
    return __atomic_load_n(&py->ready, __ATOMIC_ACQUIRE) && addr >= gil && addr < gil + GIL_STATE_SPAN;
}

/* ---- strings ---- */

/* UTF-8 of a str object we may read directly (a code object's name or file). Returns the length. */
static size_t copy_str(uintptr_t str, char *out, size_t cap)
{
    if (!str)
        return 0;
    uint32_t state = *(const uint32_t *)(str + L->str_state);
    int64_t length = *(const int64_t *)(str + L->str_length);
    unsigned kind = (state >> L->str_kind_shift) & 7, compact = (state >> L->str_compact_shift) & 1,
             ascii = (state >> L->str_ascii_shift) & 1;
    if (!compact || length < 0 || (kind != 1 && kind != 2 && kind != 4) || (ascii && kind != 1))
        return 0;
    const uint8_t *data = (const uint8_t *)(str + (ascii ? L->str_ascii_size : L->str_compact_size));
    size_t n = 0;
    for (int64_t i = 0; i < length; i++) {
        uint32_t c = kind == 1 ? data[i] : kind == 2 ? ((const uint16_t *)data)[i] : ((const uint32_t *)data)[i];
        char buf[4];
        size_t len;
        if (c < 0x80)
            buf[0] = (char)c, len = 1;
        else if (c < 0x800)
            buf[0] = (char)(0xC0 | c >> 6), buf[1] = (char)(0x80 | (c & 0x3F)), len = 2;
        else if (c < 0x10000)
            buf[0] = (char)(0xE0 | c >> 12), buf[1] = (char)(0x80 | ((c >> 6) & 0x3F)), buf[2] = (char)(0x80 | (c & 0x3F)), len = 3;
        else
            buf[0] = (char)(0xF0 | c >> 18), buf[1] = (char)(0x80 | ((c >> 12) & 0x3F)),
            buf[2] = (char)(0x80 | ((c >> 6) & 0x3F)), buf[3] = (char)(0x80 | (c & 0x3F)), len = 4;
        if (n + len > cap)
            break;
        memcpy(out + n, buf, len);
        n += len;
    }
    return n;
}

/* ---- code objects ---- */

#define MAX_NAME 512
#define MAX_LINETABLE 16384

/* The word that tells a code object from another one made later at its freed address: its name and
 * line table (both immutable for the code's life). */
static inline uintptr_t code_check(uintptr_t code)
{
    return *(const uintptr_t *)(code + L->co_qualname) ^ (*(const uintptr_t *)(code + L->co_linetable) << 1);
}

/* `check`: code_check(code), already read with the frame. */
static uint32_t code_id(struct ftp_thread *t, uintptr_t code, uintptr_t check)
{
    _Atomic uint64_t *slot;
    uint32_t id = ftp_intern_code_lookup(code, check, &slot);
    if (id)
        return id;
    uintptr_t filename = *(const uintptr_t *)(code + L->co_filename);
    uintptr_t qualname = *(const uintptr_t *)(code + L->co_qualname);
    uintptr_t linetable = *(const uintptr_t *)(code + L->co_linetable);
    char fname[MAX_NAME], qname[MAX_NAME];
    size_t flen = copy_str(filename, fname, sizeof fname);
    size_t qlen = copy_str(qualname, qname, sizeof qname);
    int64_t ltlen = linetable ? *(const int64_t *)(linetable + L->bytes_size) : 0;
    uint16_t flags = 0;
    if (ltlen < 0)
        ltlen = 0;
    int64_t ltmax = MAX_LINETABLE < ftp_state.chunk_size / 4 ? MAX_LINETABLE : ftp_state.chunk_size / 4;
    if (ltlen > ltmax)
        ltlen = ltmax, flags |= FTP_CODE_FLAG_LINETABLE_TRUNCATED;
    uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_code) + flen + qlen + (size_t)ltlen));
    struct ftp_rec_code *r = ftp_ring_reserve(t, size);
    if (!r)
        return 0;
    id = ftp_new_id();
    r->code_id = id;
    r->firstlineno = *(const int32_t *)(code + L->co_firstlineno);
    r->filename_len = (uint16_t)flen;
    r->qualname_len = (uint16_t)qlen;
    r->linetable_len = (uint32_t)ltlen;
    r->reserved = 0;
    uint8_t *p = (uint8_t *)(r + 1);
    memcpy(p, fname, flen);
    memcpy(p + flen, qname, qlen);
    if (ltlen)
        memcpy(p + flen + qlen, (const void *)(linetable + L->bytes_sval), (size_t)ltlen);
    size_t used = sizeof *r + flen + qlen + (size_t)ltlen;
    memset((uint8_t *)r + used, 0, size - used);
    ftp_ring_commit(t, r, FTP_REC_CODE, flags, size);
    ftp_intern_publish(slot, id, 0);
    return id;
}

/* The code object a frame runs, or 0 for an entry frame, a sentinel or anything that is not code. */
static inline uintptr_t frame_code(uintptr_t frame)
{
    if (*(const uint8_t *)(frame + L->fr_owner) >= L->frame_owner_entry)
        return 0;
    uintptr_t code = *(const uintptr_t *)(frame + L->fr_executable) & ~L->executable_tag_mask;
    return code && *(const uintptr_t *)(code + L->ob_type) == ftp_state.py.code_type ? code : 0;
}

/* Where each code object's per-thread bytecode copy starts, by (code, tlbc index), one table for all
 * threads: a stack is as deep as the program's calls (an HTTP handler's is twenty frames and more),
 * deeper than a per-thread cache worth its TLS, and a miss costs two process_vm_readv. A slot is
 * written under its own sequence word (odd while written) by whichever thread claims it first, and
 * read only when that word is even and unchanged around the read: a torn or contended slot is a miss,
 * never a wrong answer, and nobody waits. A code object freed and another made at its address leave
 * a stale slot: a frame whose instruction pointer is not inside the cached copy reads it again. */
#define TLBC_SLOTS 2048
#define TLBC_READ_ENTRIES 64
static struct tlbc_slot {
    _Atomic uint32_t seq;
    _Atomic int32_t index;
    _Atomic uintptr_t code, bytecode;
} tlbc_cache[TLBC_SLOTS];

static struct tlbc_slot *tlbc_slot_of(uintptr_t code, int32_t index)
{
    return &tlbc_cache[((code >> 4) ^ ((uint32_t)index * 0x9e3779b1u)) % TLBC_SLOTS];
}

static uintptr_t tlbc_cached(const struct tlbc_slot *s, uintptr_t code, int32_t index)
{
    uint32_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    if (seq & 1)
        return 0;
    uintptr_t c = atomic_load_explicit(&s->code, memory_order_relaxed);
    int32_t i = atomic_load_explicit(&s->index, memory_order_relaxed);
    uintptr_t bytecode = atomic_load_explicit(&s->bytecode, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->seq, memory_order_relaxed) != seq || c != code || i != index)
        return 0;
    return bytecode;
}

static void tlbc_remember(struct tlbc_slot *s, uintptr_t code, int32_t index, uintptr_t bytecode)
{
    uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    if ((seq & 1) || !atomic_compare_exchange_strong_explicit(&s->seq, &seq, seq + 1, memory_order_acq_rel,
                                                              memory_order_relaxed))
        return; /* another thread writes it right now: it stays theirs */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->code, code, memory_order_relaxed);
    atomic_store_explicit(&s->index, index, memory_order_relaxed);
    atomic_store_explicit(&s->bytecode, bytecode, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

/* Where the frame's bytecode starts, given its instruction pointer `ip` and the code's length in bytes.
 * Free-threaded 3.14+ gives each thread its own specialised copy of a function's bytecode (per-thread
 * bytecode): instr_ptr points into co_tlbc->entries[tlbc_index], and only index 0 (the main thread's,
 * and every thread's with -X tlbc=0) is co_code_adaptive. The entries array can be replaced by another
 * thread while this one is parked (the old one is freed once every thread passed a quiescent state,
 * and a parked thread is detached, hence quiescent), so it is read through ftp_safe_read; the copy it
 * points to lives as long as the code object, so the answer is kept (tlbc_cache). */
static uintptr_t frame_bytecode(uintptr_t frame, uintptr_t code, uintptr_t ip, uint64_t limit)
{
    uintptr_t adaptive = code + L->co_code_adaptive;
    if (!L->co_tlbc)
        return adaptive;
    int32_t index = *(const int32_t *)(frame + L->fr_tlbc_index);
    if (index <= 0)
        return adaptive;
    struct tlbc_slot *slot = tlbc_slot_of(code, index);
    uintptr_t known = tlbc_cached(slot, code, index);
    if (known && ip >= known && ip - known < limit)
        return known;
    uintptr_t array = *(const uintptr_t *)(code + L->co_tlbc), entry = 0;
    if (!array)
        return 0;
    /* The array's size and entries up to `index` in one read while that is short (thread indexes are
     * small and reused); a read that fails (the array ends sooner, before a page that is not mapped)
     * is made again as two, the size first. */
    int64_t words[1 + TLBC_READ_ENTRIES];
    if (index < TLBC_READ_ENTRIES && ftp_safe_read(words, array, (size_t)(index + 2) * 8)) {
        if (index >= words[0] || !(entry = (uintptr_t)words[1 + index]))
            return 0;
    } else {
        int64_t size = 0;
        if (!ftp_safe_read(&size, array, sizeof size) || index >= size ||
            !ftp_safe_read(&entry, array + 8 + (uintptr_t)index * 8, sizeof entry) || !entry)
            return 0;
    }
    tlbc_remember(slot, code, index, entry);
    return entry;
}

int ftp_python_raw_frames(struct ftp_py_raw_frame *frames, int max)
{
    uintptr_t tstate = ftp_python_tstate();
    if (!tstate)
        return 0;
    uintptr_t frame = *(const uintptr_t *)(tstate + L->ts_current_frame);
    int n = 0;
    for (int steps = 0; frame && n < max && steps < 4 * FTP_MAX_PY_FRAMES; steps++) {
        uintptr_t code = frame_code(frame);
        if (!code) {
            /* An entry frame: the Python frame just inside it was the first of one eval-loop call. */
            if (n > 0 && *(const uint8_t *)(frame + L->fr_owner) >= L->frame_owner_entry)
                frames[n - 1].instr_offset |= FTP_PY_FRAME_ENTRY;
        } else {
            uintptr_t ip = *(const uintptr_t *)(frame + L->fr_instr_ptr);
            /* The code's length in bytes: Py_SIZE(code) counts 2-byte code units. */
            int64_t units = *(const int64_t *)(code + L->ob_size);
            uint64_t limit = units > 0 && units < (1 << 28) ? (uint64_t)units * 2 : 0;
            uintptr_t first = frame_bytecode(frame, code, ip, limit);
            frames[n].code = code;
            frames[n].check = code_check(code);
            frames[n].instr_offset = first && ip >= first && ip - first < limit ? (uint32_t)(ip - first) : 0;
            frames[n].reserved = 0;
            n++;
        }
        frame = *(const uintptr_t *)(frame + L->fr_previous);
    }
    return n;
}

void ftp_python_frames_named(struct ftp_thread *t, const struct ftp_py_raw_frame *raw, struct ftp_py_frame *frames,
                             int n)
{
    for (int i = 0; i < n; i++) {
        frames[i].code_id = code_id(t, raw[i].code, raw[i].check);
        frames[i].instr_offset = raw[i].instr_offset;
    }
}

bool ftp_python_in_rlock_factory(void)
{
    static _Atomic uintptr_t rlock_code; /* threading.RLock's code object, once recognised */
    uintptr_t tstate = ftp_python_tstate();
    if (!tstate)
        return false;
    uintptr_t frame = *(const uintptr_t *)(tstate + L->ts_current_frame);
    while (frame && *(const uint8_t *)(frame + L->fr_owner) >= L->frame_owner_entry)
        frame = *(const uintptr_t *)(frame + L->fr_previous);
    uintptr_t code = frame ? frame_code(frame) : 0;
    if (!code)
        return false;
    uintptr_t known = atomic_load_explicit(&rlock_code, memory_order_relaxed);
    if (known)
        return code == known;
    char qname[16], fname[MAX_NAME];
    size_t qlen = copy_str(*(const uintptr_t *)(code + L->co_qualname), qname, sizeof qname);
    if (qlen != 5 || memcmp(qname, "RLock", 5) != 0)
        return false;
    size_t flen = copy_str(*(const uintptr_t *)(code + L->co_filename), fname, sizeof fname);
    if (flen < 12 || memcmp(fname + flen - 12, "threading.py", 12) != 0)
        return false;
    atomic_store(&rlock_code, code);
    return true;
}

/* ---- what a parked address is ---- */

#define TYPE_IS_LOCK 1u  /* extra word in the type table: _thread.lock */
#define TYPE_IS_RLOCK 2u /* _thread.RLock (3.14 parks on its PyMutex) */
#define TYPE_NOT_A_TYPE 0x80000000u
#define TYPE_PENDING 0x40000000u /* returned only: a type whose definition another thread is writing */

/* The id of the type at `type`, writing its TYPE record the first time; 0 if it is not a type. */
static uint32_t type_id(struct ftp_thread *t, uintptr_t type, uint32_t *extra)
{
    struct ftp_python *py = &ftp_state.py;
    _Atomic uint64_t *slot;
    *extra = 0;
    if (!type || (type & 7))
        return 0;
    uint32_t id = ftp_intern_type_lookup(type, &slot);
    if (id) {
        *extra = ftp_intern_extra(type);
        return (*extra & TYPE_NOT_A_TYPE) ? 0 : id;
    }
    /* No slot: another thread is writing this type's definition right now (two threads parking on the
     * first two locks of a kind at once), or the table is crowded. Still read what the type is, so the
     * lock keeps its kind; only the TYPE record (and so the id) is left to the definer. */
    /* A type's own type is `type` or a metaclass whose type is `type`. */
    uintptr_t meta = 0, metameta = 0, name_ptr = 0;
    bool is_type = ftp_safe_read(&meta, type + L->ob_type, sizeof meta) &&
                   (meta == py->type_type ||
                    (ftp_safe_read(&metameta, meta + L->ob_type, sizeof metameta) && metameta == py->type_type));
    char name[96];
    size_t len = 0;
    if (is_type && ftp_safe_read(&name_ptr, type + L->tp_name, sizeof name_ptr) && name_ptr) {
        /* Read the name in two steps so a short name near the end of a mapping still reads. */
        if (ftp_safe_read(name, name_ptr, 32) || ftp_safe_read(name, name_ptr, 8)) {
            size_t lim = 32;
            name[31] = 0;
            if (strnlen(name, 32) == 32 && ftp_safe_read(name, name_ptr, sizeof name - 1))
                lim = sizeof name - 1;
            len = strnlen(name, lim);
        }
    }
    if (!is_type || len == 0) {
        ftp_intern_publish(slot, UINT32_MAX, TYPE_NOT_A_TYPE);
        *extra = TYPE_NOT_A_TYPE;
        return 0;
    }
    if (len == 12 && !memcmp(name, "_thread.lock", 12))
        *extra = TYPE_IS_LOCK;
    else if (len == 13 && !memcmp(name, "_thread.RLock", 13) && L->rlock_is_pymutex)
        *extra = TYPE_IS_RLOCK;
    if (!slot) {
        *extra |= TYPE_PENDING; /* a type, of known kind, not yet defined */
        return 0;
    }
    uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_type) + len));
    struct ftp_rec_type *r = ftp_ring_reserve(t, size);
    if (!r) {
        ftp_intern_publish(slot, UINT32_MAX, TYPE_NOT_A_TYPE);
        return 0;
    }
    if (FTP_UNLIKELY(ftp_state.test_slow_types)) {
        struct timespec slow = {1, 0}; /* holds the slot pending, for tests of the thread that finds it so */
        nanosleep(&slow, NULL);
    }
    id = ftp_new_id();
    r->type_id = id;
    r->name_len = (uint32_t)len;
    r->type_addr = type;
    memcpy(r + 1, name, len);
    memset((uint8_t *)(r + 1) + len, 0, size - sizeof *r - len);
    ftp_ring_commit(t, r, FTP_REC_TYPE, 0, size);
    ftp_intern_publish(slot, id, *extra);
    return id;
}

/* Is `addr` a type object (its type is `type` or a metaclass whose type is `type`)? Safe reads only. */
static bool is_type_object(uintptr_t addr)
{
    uintptr_t meta = 0, metameta = 0;
    return !(addr & 7) && ftp_safe_read(&meta, addr + L->ob_type, sizeof meta) &&
           (meta == ftp_state.py.type_type ||
            (meta && ftp_safe_read(&metameta, meta + L->ob_type, sizeof metameta) && metameta == ftp_state.py.type_type));
}

/* The type cache entry whose seqlock a register points at: its version and name (a str) read, or false. */
static bool seqlock_entry(uintptr_t seq, uint32_t *version)
{
    uint8_t entry[16];
    uintptr_t name = 0, name_type = 0;
    if ((seq & 7) != L->tc_entry_sequence || !ftp_safe_read(entry, seq - L->tc_entry_sequence, sizeof entry))
        return false;
    memcpy(version, entry, sizeof *version);
    memcpy(&name, entry + L->tc_entry_name, sizeof name);
    return *version && name && ftp_safe_read(&name_type, name + L->ob_type, sizeof name_type) &&
           name_type == ftp_state.py.str_type;
}

/* The type `r` is, or whose tp_version_tag it points at, if its version tag is `version`; else 0. */
static uintptr_t type_with_version(uintptr_t r, uint32_t version)
{
    uintptr_t candidates[2] = {r, r - L->tp_version_tag};
    for (int i = 0; i < 2; i++) {
        uint32_t tag = 0;
        if (ftp_safe_read(&tag, candidates[i] + L->tp_version_tag, sizeof tag) && tag == version &&
            is_type_object(candidates[i]))
            return candidates[i];
    }
    return 0;
}

/* A seqlock spinner's registers hold its type cache entry's &sequence (BeginRead's and LockWrite's
 * argument, or the lookup's own copy across EndRead) and the type looked up, or a pointer to its
 * tp_version_tag (_PyType_LookupStackRefAndVersion keeps one in 3.13-3.15). The type is named only
 * when its version tag is the entry's: a stale register names nothing. */
uint32_t ftp_python_seqlock_type(struct ftp_thread *t, const uintptr_t *regs, int nregs)
{
    if (!ftp_state.py.stacks || !L->tp_version_tag || !__atomic_load_n(&ftp_state.py.ready, __ATOMIC_ACQUIRE))
        return 0;
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0), found = 0;
    uint32_t version = 0;
    for (int i = 0; i < nregs && !version; i++)
        if (!seqlock_entry(regs[i], &version))
            version = 0;
    for (int i = 0; i < nregs && version; i++) {
        uintptr_t r = regs[i];
        if (r < 65536 || (r > sp - 65536 && r < sp + (1u << 20)))
            continue; /* small integers, our own stack */
        uintptr_t type = type_with_version(r, version);
        if (type && found && type != found)
            return 0; /* two types of one version: cannot be, trust neither */
        found = type ? type : found;
    }
    uint32_t extra;
    return found ? type_id(t, found, &extra) : 0;
}

/* Is the garbage collector running right now? It stops the world for the whole of a collection
 * (free-threaded builds), with interp->gc.collecting set (a plain int in the interpreter state). */
static bool gc_running(void)
{
    uintptr_t interp = __atomic_load_n(&ftp_state.py.interp, __ATOMIC_RELAXED);
    return interp && L->is_gc && *(volatile const int *)(interp + L->is_gc + L->gc_collecting) != 0;
}

/* A new thread parked in its bootstrap on `addr`, its bootstate's handle_ready: the threading.Thread
 * whose _bootstrap it is about to run (the bound method's self), kept to name the thread before it has
 * a frame. Only a bound method's self is taken; the name is read from it as from a frame's. */
static void boot_thread_object(struct ftp_thread *t, uintptr_t addr)
{
    uintptr_t func = 0, func_type = 0, self = 0, self_type = 0;
    if (!ftp_state.py.method_type || !L->boot_handle_ready || addr < L->boot_handle_ready ||
        !ftp_safe_read(&func, addr - L->boot_handle_ready + L->boot_func, sizeof func) || !func ||
        !ftp_safe_read(&func_type, func + L->ob_type, sizeof func_type) || func_type != ftp_state.py.method_type ||
        !ftp_safe_read(&self, func + L->method_self, sizeof self) || !self ||
        !ftp_safe_read(&self_type, self + L->ob_type, sizeof self_type))
        return;
    t->boot_thread = self;
    t->boot_thread_type = self_type;
    t->announced = false; /* this wait's record announces the thread with the name */
}

void ftp_python_classify(struct ftp_thread *t, uintptr_t addr, bool mutex_park, bool live, const uint8_t *window,
                         struct ftp_lock_class *out)
{
    struct ftp_python *py = &ftp_state.py;
    memset(out, 0, sizeof *out);
    out->kind = mutex_park ? FTP_KIND_PYMUTEX : FTP_KIND_EVENT;
    out->region = FTP_REGION_UNKNOWN;
    if (!__atomic_load_n(&py->ready, __ATOMIC_ACQUIRE))
        return;
    uintptr_t tstate = ftp_python_tstate();
    if (tstate && addr >= tstate && addr < tstate + L->ts_size) {
        /* Parked on our own &tstate->state: suspended for a stop-the-world pause. */
        out->kind = gc_running() ? FTP_KIND_GC_PAUSE : FTP_KIND_STOP_THE_WORLD;
        out->region = FTP_REGION_TSTATE;
        out->region_offset = (uint32_t)(addr - tstate);
        return;
    }
    out->region = ftp_python_region(addr, &out->region_offset);
    if (out->region != FTP_REGION_HEAP) {
        /* Events in the runtime or interpreter state are the stop-the-world requester's stop_event. */
        if (!mutex_park)
            out->kind = gc_running() ? FTP_KIND_GC_PAUSE : FTP_KIND_STOP_THE_WORLD;
        return;
    }
    if (!mutex_park) {
        /* A PyEvent (Thread.join's handle, ...): the analyzer names it from the stack. One waited on by a
         * thread with no Python thread state yet is a new thread waiting in its bootstrap to be started
         * (thread_run's handle_ready, Modules/_threadmodule.c): waiting for work. */
        if (!tstate) {
            out->kind = FTP_KIND_CONDITION;
            if (!t->py_named && !t->boot_thread)
                boot_thread_object(t, addr);
        }
        return;
    }
    /* A PyMutex in a heap object: the mutex of a _thread.lock, right after its PyObject header
     * (3.13.1+), or — free-threaded builds — a critical section on an object's ob_mutex at +10.
     * Read both candidates' ob_type in one go: the window [addr - 32, addr + 22), given by the caller, or
     * read in place when `addr` is known to be live (the thread parks or spins on it). */
    uint8_t around[FTP_CLASSIFY_WINDOW];
    if (!L->ob_type || L->lock_mutex > FTP_CLASSIFY_BEFORE || L->ob_type + 8 > L->lock_mutex)
        return;
    if (window)
        memcpy(around, window, sizeof around);
    else if (!ftp_read_near(around, addr - FTP_CLASSIFY_BEFORE, sizeof around, live ? addr : 0))
        return;
    uintptr_t type_lock, type_cs = 0;
    memcpy(&type_lock, around + (FTP_CLASSIFY_BEFORE - L->lock_mutex) + L->ob_type, sizeof type_lock);
    if (L->ob_mutex)
        memcpy(&type_cs, around + (FTP_CLASSIFY_BEFORE - L->ob_mutex) + L->ob_type, sizeof type_cs);
    uint32_t extra;
    if (((addr - L->lock_mutex) & 7) == 0) {
        uint32_t id = type_id(t, type_lock, &extra);
        if (extra & (TYPE_IS_LOCK | TYPE_IS_RLOCK)) { /* id 0: the type is being defined by another thread */
            out->kind = (extra & TYPE_IS_RLOCK) ? FTP_KIND_RLOCK : FTP_KIND_LOCK;
            out->type_id = id;
            return;
        }
    }
    if (L->ob_mutex && ((addr - L->ob_mutex) & 7) == 0) {
        uint32_t id = type_id(t, type_cs, &extra);
        if (id || (extra & TYPE_PENDING)) {
            out->kind = FTP_KIND_CRITICAL_SECTION;
            out->type_id = id;
        }
    }
}

/* ---- the threading.Thread of the calling thread (its name: thread_name.c) ---- */

/* The `self` of the outermost Thread._bootstrap_inner frame of the calling thread, or 0. */
uintptr_t ftp_python_thread_object(void)
{
    static _Atomic uintptr_t bootstrap_code;
    uintptr_t tstate = ftp_python_tstate();
    if (!tstate)
        return 0;
    uintptr_t frame = *(const uintptr_t *)(tstate + L->ts_current_frame), self = 0;
    for (int steps = 0; frame && steps < 4 * FTP_MAX_PY_FRAMES; steps++) {
        {
            uintptr_t code = frame_code(frame);
            if (code) {
                uintptr_t known = atomic_load_explicit(&bootstrap_code, memory_order_relaxed);
                bool match = known ? code == known : false;
                if (!known) {
                    char q[32];
                    size_t qlen = copy_str(*(const uintptr_t *)(code + L->co_qualname), q, sizeof q);
                    if (qlen == 23 && !memcmp(q, "Thread._bootstrap_inner", 23)) {
                        atomic_store(&bootstrap_code, code);
                        match = true;
                    }
                }
                if (match)
                    self = *(const uintptr_t *)(frame + L->fr_localsplus) & ~L->executable_tag_mask; /* a _PyStackRef from 3.14 */
            }
        }
        frame = *(const uintptr_t *)(frame + L->fr_previous);
    }
    return self;
}

bool ftp_python_has_frame(void)
{
    uintptr_t tstate = ftp_python_tstate();
    return tstate && *(const uintptr_t *)(tstate + L->ts_current_frame);
}
