/* Native stacks (FTPROF_NATIVE=1) through libunwind, and the module map the analyzer needs to
 * symbolize them: each loaded ELF object's load bias, executable range, path and build id.
 *
 * The module map comes from the dynamic loader's link map (_r_debug), the list debuggers read: walking
 * it takes no lock, unlike dl_iterate_phdr, so new objects (extension modules imported later) can be
 * described from inside a hook. Every read of it goes through ftp_safe_read.
 *
 * libunwind finds an address's unwind tables through dl_iterate_phdr, which holds the loader's
 * dl_load_write_lock while it calls back. So libunwind's own GOT slot for dl_iterate_phdr is pointed at
 * unwind_iterate_phdr (once, at set-up, outside any hook; nobody else's calls change): on a thread that
 * is unwinding inside a hook it answers from the same lock-free walk of the link map (each object's
 * program headers read from its ELF header in memory); otherwise it is glibc's. The one thing the lock
 * guarded that the walk does not: an object dlclose()d while libunwind reads its tables (CPython never
 * unloads an extension module). */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <elf.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "got.h"
#include "native.h"
#include "ring.h"
#include "thread.h"

/* The last link-map entry already described in this file: written by the one walker (`walking`), read by
 * any thread to see whether something was loaded since. */
static _Atomic uintptr_t last_map_entry;
/* The executable ranges described in this file so far (appended by the one walker, read by any hook),
 * and per thread the last one a native lock's caller was found in: a thread that waits again on a lock
 * of the same library (the common case) finds it in two compares, with no system call. `generation`
 * changes with every new file, which makes the threads' remembered ranges stale. */
#define DESCRIBED_MAX 1024
static struct { _Atomic uintptr_t start, end; } described[DESCRIBED_MAX]; /* relaxed: n_described orders */
static _Atomic uint32_t n_described;
static _Atomic uint32_t generation = 1;
static __thread uintptr_t caller_start __attribute__((tls_model("initial-exec")));
static __thread uintptr_t caller_end __attribute__((tls_model("initial-exec")));
static __thread uint32_t caller_generation __attribute__((tls_model("initial-exec")));
static _Atomic int walking;      /* one walker at a time; others just skip (never wait) */
static char exe_path[1024];

typedef int (*iterate_fn)(int (*)(struct dl_phdr_info *, size_t, void *), void *);
static iterate_fn real_dl_iterate_phdr;
static __thread bool unwinding __attribute__((tls_model("initial-exec")));

static int unwind_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data);

void ftp_native_init(void)
{
    if (ftp_state.native && !real_dl_iterate_phdr) {
        real_dl_iterate_phdr = (iterate_fn)dl_iterate_phdr;
#if defined(__x86_64__) /* got.c: elsewhere libunwind keeps glibc's, lock and all */
        ftp_got_redirect_in("libunwind", "dl_iterate_phdr", (uintptr_t)unwind_iterate_phdr);
#endif
    }
    /* Per-thread caches: no global unwinder lock on the waiting path. */
    if (ftp_state.native)
        unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = 0;
}

/* A new session or a fork child: describe every object again. `walking` too, since a fork may have
 * copied another thread's walk in progress, whose end never comes in the child. */
void ftp_native_reset(void)
{
    atomic_store_explicit(&last_map_entry, 0, memory_order_relaxed);
    atomic_store(&n_described, 0);
    atomic_fetch_add(&generation, 1);
    atomic_store(&walking, 0);
}

struct map_entry {
    uintptr_t l_addr;
    uintptr_t l_name;
    uintptr_t l_ld;
    uintptr_t l_next;
    uintptr_t l_prev;
};

size_t ftp_native_read_cstr(uintptr_t addr, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        char buf[64];
        size_t want = cap - 1 - n < sizeof buf ? cap - 1 - n : sizeof buf;
        /* Shorten the read near a page end rather than fail on the next page. */
        size_t to_page = 4096 - ((addr + n) & 4095);
        if (want > to_page)
            want = to_page;
        if (!ftp_safe_read(buf, addr + n, want))
            break;
        size_t len = strnlen(buf, want);
        memcpy(out + n, buf, len);
        n += len;
        if (len < want)
            break;
    }
    out[n] = 0;
    return n;
}

/* Describe one loaded object from its ELF and program headers in memory. */
static void write_module(struct ftp_thread *t, uintptr_t bias, const char *path)
{
    ElfW(Ehdr) eh;
    ElfW(Phdr) ph[64];
    uintptr_t base = bias, start = UINTPTR_MAX, end = 0;
    /* Objects whose first PT_LOAD is at vaddr 0 (all PIEs and shared objects) map their ELF header at
     * the load bias. */
    if (!ftp_safe_read(&eh, base, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_phnum == 0 ||
        eh.e_phentsize != sizeof(ElfW(Phdr)))
        return;
    int nph = eh.e_phnum < 64 ? eh.e_phnum : 64;
    if (!ftp_safe_read(ph, base + eh.e_phoff, (size_t)nph * sizeof ph[0]))
        return;
    uint8_t bid[64];
    size_t bid_len = 0;
    for (int i = 0; i < nph; i++) {
        if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
            uintptr_t s = bias + ph[i].p_vaddr;
            if (s < start)
                start = s;
            if (s + ph[i].p_memsz > end)
                end = s + ph[i].p_memsz;
        } else if (ph[i].p_type == PT_NOTE && !bid_len) {
            uint8_t notes[512];
            size_t len = ph[i].p_memsz < sizeof notes ? ph[i].p_memsz : sizeof notes;
            if (!ftp_safe_read(notes, bias + ph[i].p_vaddr, len))
                continue;
            for (size_t off = 0; off + sizeof(ElfW(Nhdr)) <= len;) {
                const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(notes + off);
                size_t name_off = off + sizeof *nh, desc_off = name_off + ((nh->n_namesz + 3) & ~3u);
                if (desc_off + nh->n_descsz > len)
                    break;
                if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(notes + name_off, "GNU", 4) &&
                    nh->n_descsz <= sizeof bid) {
                    memcpy(bid, notes + desc_off, nh->n_descsz);
                    bid_len = nh->n_descsz;
                    break;
                }
                off = desc_off + ((nh->n_descsz + 3) & ~3u);
            }
        }
    }
    if (end == 0)
        return;
    size_t path_len = strlen(path);
    uint32_t rec_size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_module) + bid_len + path_len));
    struct ftp_rec_module *r = ftp_ring_reserve(t, rec_size);
    if (!r)
        return;
    r->base = base;
    r->start = start;
    r->end = end;
    r->build_id_len = (uint16_t)bid_len;
    r->path_len = (uint16_t)path_len;
    r->reserved = 0;
    memcpy(r + 1, bid, bid_len);
    memcpy((uint8_t *)(r + 1) + bid_len, path, path_len);
    memset((uint8_t *)(r + 1) + bid_len + path_len, 0, rec_size - sizeof *r - bid_len - path_len);
    ftp_ring_commit(t, r, FTP_REC_MODULE, 0, rec_size);
    uint32_t n = atomic_load_explicit(&n_described, memory_order_relaxed); /* one walker at a time */
    if (n < DESCRIBED_MAX) {
        atomic_store_explicit(&described[n].start, start, memory_order_relaxed);
        atomic_store_explicit(&described[n].end, end, memory_order_relaxed);
        atomic_store_explicit(&n_described, n + 1, memory_order_release);
    }
}

static uintptr_t map_head(void)
{
    return _r_debug.r_version ? (uintptr_t)_r_debug.r_map : 0;
}

void ftp_native_write_modules(struct ftp_thread *t)
{
    if (!atomic_load(&ftp_state.recording) || atomic_exchange(&walking, 1))
        return;
    t->guard++;
    uintptr_t described = atomic_load_explicit(&last_map_entry, memory_order_acquire);
    uintptr_t node = described ? described : map_head();
    bool first = !described;
    struct map_entry e;
    for (int n = 0; node && n < 4096 && ftp_safe_read(&e, node, sizeof e); n++) {
        if (!first || node != described) {
            char path[1024];
            size_t len = e.l_name ? ftp_native_read_cstr(e.l_name, path, sizeof path) : 0;
            if (len == 0 && node == map_head())
                strcpy(path, exe_path); /* the main program's entry has an empty name */
            if (path[0] == '/')
                write_module(t, e.l_addr, path);
        }
        atomic_store_explicit(&last_map_entry, node, memory_order_release);
        described = node;
        first = false;
        node = e.l_next;
    }
    t->guard--;
    atomic_store(&walking, 0);
}

bool ftp_native_object_of(uintptr_t handle, uintptr_t *bias, char *path, size_t cap)
{
    /* glibc's dlopen handle is the object's link-map node: it is read, and taken for one only when its
     * predecessor links back to it (or, with none, when it is the map's head). Two reads, where a walk
     * of the map costs one per loaded object, on every extension module imported. */
    struct map_entry e, prev;
    if (!ftp_safe_read(&e, handle, sizeof e))
        return false;
    if (e.l_prev ? !ftp_safe_read(&prev, e.l_prev, sizeof prev) || prev.l_next != handle : handle != map_head())
        return false;
    *bias = e.l_addr;
    return e.l_name && ftp_native_read_cstr(e.l_name, path, cap) > 0;
}

void ftp_native_each_object(struct ftp_thread *t, void (*cb)(struct ftp_thread *, uintptr_t, const char *))
{
    uintptr_t node = map_head();
    struct map_entry e;
    for (int n = 0; node && n < 4096 && ftp_safe_read(&e, node, sizeof e); n++, node = e.l_next) {
        char path[1024];
        if (e.l_name && ftp_native_read_cstr(e.l_name, path, sizeof path) > 0 && path[0] == '/')
            cb(t, e.l_addr, path);
    }
}

/* The objects of the link map, as dl_iterate_phdr would give them, without the loader's lock. The main
 * program's entry (the first, with an empty name) takes its program headers from the auxiliary vector:
 * a non-PIE executable is not mapped at its link-map address 0. */
static int iterate_without_lock(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data)
{
    uintptr_t node = map_head();
    struct map_entry e;
    for (int n = 0; node && n < 4096 && ftp_safe_read(&e, node, sizeof e); n++, node = e.l_next) {
        struct dl_phdr_info info;
        memset(&info, 0, sizeof info);
        info.dlpi_name = e.l_name ? (const char *)e.l_name : "";
        if (n == 0) {
            uintptr_t phdr = (uintptr_t)getauxval(AT_PHDR);
            size_t phnum = (size_t)getauxval(AT_PHNUM);
            ElfW(Phdr) ph;
            uintptr_t bias = e.l_addr;
            for (size_t i = 0; phdr && i < phnum && ftp_safe_read(&ph, phdr + i * sizeof ph, sizeof ph); i++)
                if (ph.p_type == PT_PHDR)
                    bias = phdr - ph.p_vaddr;
            if (!phdr || !phnum)
                continue;
            info.dlpi_addr = bias;
            info.dlpi_phdr = (const ElfW(Phdr) *)phdr;
            info.dlpi_phnum = (ElfW(Half))phnum;
        } else {
            ElfW(Ehdr) eh;
            if (!ftp_safe_read(&eh, e.l_addr, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) || !eh.e_phnum ||
                eh.e_phentsize != sizeof(ElfW(Phdr)))
                continue; /* not mapped with its ELF header at its bias: unwinding stops at its frames */
            ElfW(Phdr) first;
            if (!ftp_safe_read(&first, e.l_addr + eh.e_phoff, sizeof first))
                continue;
            info.dlpi_addr = e.l_addr;
            info.dlpi_phdr = (const ElfW(Phdr) *)(e.l_addr + eh.e_phoff);
            info.dlpi_phnum = eh.e_phnum;
        }
        int rc = cb(&info, sizeof info, data);
        if (rc)
            return rc;
    }
    return 0;
}

static int unwind_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data)
{
    if (unwinding || !real_dl_iterate_phdr)
        return iterate_without_lock(cb, data);
    return real_dl_iterate_phdr(cb, data);
}

void ftp_native_catch_up(struct ftp_thread *t)
{
    /* Objects loaded since we last looked (imports) must be described before their addresses appear:
     * two reads when nothing was loaded since. */
    struct map_entry tail;
    uintptr_t described = atomic_load_explicit(&last_map_entry, memory_order_acquire);
    if (!described || (ftp_safe_read(&tail, described, sizeof tail) && tail.l_next))
        ftp_native_write_modules(t);
}

static bool caller_described(uintptr_t caller, uint32_t gen)
{
    uint32_t n = atomic_load_explicit(&n_described, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t start = atomic_load_explicit(&described[i].start, memory_order_relaxed);
        uintptr_t end = atomic_load_explicit(&described[i].end, memory_order_relaxed);
        if (start <= caller && caller < end) {
            caller_start = start;
            caller_end = end;
            caller_generation = gen;
            return true;
        }
    }
    return false;
}

void ftp_native_describe_caller(struct ftp_thread *t, uintptr_t caller)
{
    uint32_t gen = atomic_load_explicit(&generation, memory_order_acquire);
    if (caller_generation == gen && caller_start <= caller && caller < caller_end)
        return;
    if (!caller_described(caller, gen)) {
        ftp_native_catch_up(t);
        caller_described(caller, gen);
    }
}

int ftp_native_backtrace(struct ftp_thread *t, uint64_t *pcs, int max)
{
    ftp_native_catch_up(t);
    void *buf[FTP_MAX_NATIVE_FRAMES];
    if (max > FTP_MAX_NATIVE_FRAMES)
        max = FTP_MAX_NATIVE_FRAMES;
    unwinding = true;
    int n = unw_backtrace(buf, max);
    unwinding = false;
    for (int i = 0; i < n; i++)
        pcs[i] = (uint64_t)(uintptr_t)buf[i];
    return n < 0 ? 0 : n;
}

size_t ftp_native_last_extension(char *out, size_t cap)
{
    /* The import that re-enabled the GIL has just loaded its extension: the newest link-map entry
     * named like an extension module (*.cpython-*.so / *.abi3.so), or else the newest entry. */
    char path[1024], any[1024];
    size_t ext_len = 0, any_len = 0;
    uintptr_t node = map_head();
    struct map_entry e;
    for (int n = 0; node && n < 4096 && ftp_safe_read(&e, node, sizeof e); n++, node = e.l_next) {
        size_t len = e.l_name ? ftp_native_read_cstr(e.l_name, path, sizeof path) : 0;
        if (!len)
            continue;
        if (strstr(path, ".cpython-") || strstr(path, ".abi3.")) {
            memcpy(out, path, len < cap ? len : cap - 1);
            ext_len = len < cap ? len : cap - 1;
        } else {
            memcpy(any, path, len + 1);
            any_len = len;
        }
    }
    if (!ext_len && any_len) {
        ext_len = any_len < cap ? any_len : cap - 1;
        memcpy(out, any, ext_len);
    }
    out[ext_len] = 0;
    return ext_len;
}
