/* GOT rewriting, for a recorder loaded into a running process (`ftprof attach`, attach.c).
 *
 * Preloaded, the recorder's hooks win by symbol interposition. Loaded late (dlopen, RTLD_LOCAL), they
 * do not: every object already bound its calls to libc. So at attach, for every loaded object except
 * the recorder itself, libc and the dynamic loader, we walk its dynamic section for the relocations
 * through which it calls an interposed function (R_X86_64_JUMP_SLOT in DT_JMPREL: calls through the
 * PLT; R_X86_64_GLOB_DAT in DT_RELA: -fno-plt calls and address-taken uses), save (slot, old value)
 * and store the hook's address. An aligned 8-byte store is atomic on x86-64: a caller jumps either to
 * libc or to the hook, never to a torn address. Slots in the PT_GNU_RELRO pages are made writable for
 * the store and read-only again after, exactly the pages the loader protected.
 *
 * Objects loaded later are covered through dlsym: its slots are pointed at ftp_dlsym_entry, which
 * rescans (cheaply: the loader's count of loaded objects says whether anything new came) and then
 * jumps to the real dlsym with the caller's own return address, so RTLD_NEXT keeps its meaning.
 * Python's imports and ctypes both call dlsym on a new object before running any of its code.
 * dlopen itself is not wrapped: a wrapper would become the dlopen caller, whose RUNPATH and
 * namespace the loader uses to find the library.
 *
 * Restore writes each saved old value back, but only where the object is still loaded (same base,
 * same dynamic section) and the slot still holds our hook: an object unloaded meanwhile is left alone.
 * A lazily bound slot's old value is the PLT's resolver stub; writing it back re-arms lazy binding.
 *
 * Nothing here runs on a hook's path except the rescan's early exit; set-up takes a libc mutex. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "got.h"

#define GOT_MAX_SLOTS 8192
#define GOT_MAX_OBJECTS 2048

static const char *const hook_names[] = {
    "sem_init", "sem_destroy", "sem_wait", "sem_timedwait", "sem_clockwait", "sem_post", "sched_yield",
    "pthread_mutex_lock", "pthread_mutex_unlock", "pthread_rwlock_rdlock", "pthread_rwlock_wrlock",
    "pthread_rwlock_unlock", "pthread_cond_wait", "pthread_cond_timedwait", "pthread_cond_signal",
    "pthread_cond_broadcast", "dlsym",
};
#define N_HOOKS (sizeof hook_names / sizeof *hook_names)
static uintptr_t hook_addr[N_HOOKS];

struct got_slot {
    uintptr_t *slot;
    uintptr_t old;
    uintptr_t hook;
    uint32_t object; /* index into objects[] */
};
struct got_object {
    uintptr_t base, dyn;
};
static struct got_slot slots[GOT_MAX_SLOTS];
static size_t n_slots;
static struct got_object objects[GOT_MAX_OBJECTS];
static size_t n_objects;
static pthread_mutex_t got_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int installed;
static _Atomic unsigned long long seen_adds; /* the loader's load count at the last scan */
static uintptr_t self_base;

/* Read by ftp_dlsym_entry (got_x86_64.S). */
FTP_HIDDEN void *ftp_real_dlsym;

static int lock(void) { return ftp_real.real_pthread_mutex_lock ? ftp_real.real_pthread_mutex_lock(&got_lock) : 0; }
static void unlock(void)
{
    if (ftp_real.real_pthread_mutex_unlock)
        ftp_real.real_pthread_mutex_unlock(&got_lock);
}

FTP_HIDDEN void ftp_dlsym_entry(void);

/* Not instrumented: a sanitizer runtime preloaded before us calls dlsym while it initialises itself,
 * before its instrumentation may run (ThreadSanitizer crashes on the function-entry hook then). */
#define FTP_NOT_INSTRUMENTED __attribute__((no_sanitize("address", "thread", "undefined")))

FTP_NOT_INSTRUMENTED bool ftp_got_resolve_dlsym(void)
{
    /* dlvsym is not interposed: no way back into ftp_dlsym_entry. */
    void *p = __atomic_load_n(&ftp_real_dlsym, __ATOMIC_ACQUIRE);
    if (!p)
        p = dlvsym(RTLD_DEFAULT, "dlsym", "GLIBC_2.34");
    if (!p)
        p = dlvsym(RTLD_DEFAULT, "dlsym", "GLIBC_2.2.5");
    __atomic_store_n(&ftp_real_dlsym, p, __ATOMIC_RELEASE);
    return p != NULL;
}

static bool resolve_hooks(void)
{
    if (self_base)
        return true;
    Dl_info info;
    if (!dladdr((void *)resolve_hooks, &info) || !info.dli_fname)
        return false;
    void *self = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!self)
        return false;
    for (size_t i = 0; i < N_HOOKS; i++) {
        if (!strcmp(hook_names[i], "dlsym")) {
            hook_addr[i] = (uintptr_t)ftp_dlsym_entry;
            continue;
        }
        /* dlsym on our own handle finds our definition first (libc comes after us in our scope). */
        void *p = dlsym(self, hook_names[i]);
        Dl_info hi;
        if (!p || !dladdr(p, &hi) || hi.dli_fbase != info.dli_fbase)
            return false;
        hook_addr[i] = (uintptr_t)p;
    }
    if (!ftp_got_resolve_dlsym())
        return false;
    self_base = (uintptr_t)info.dli_fbase;
    return true;
}

static bool skip_object(const struct dl_phdr_info *info)
{
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (info->dlpi_addr == self_base && self_base)
        return true;
    return !strncmp(base, "libc.so", 7) || !strncmp(base, "ld-linux", 8) || !strncmp(base, "ld64.so", 7) ||
           !strncmp(base, "linux-vdso", 10) || !strncmp(base, "linux-gate", 10);
}

static int hook_index(const char *name)
{
    for (size_t i = 0; i < N_HOOKS; i++)
        if (!strcmp(name, hook_names[i]))
            return (int)i;
    return -1;
}

/* The version an object asked for symbol `symidx` ("GLIBC_2.3.2"), or NULL when it does not say. */
static const char *needed_version(const ElfW(Half) *versym, const ElfW(Verneed) *verneed, size_t nverneed,
                                  const char *strtab, size_t symidx)
{
    if (!versym || !verneed)
        return NULL;
    ElfW(Half) v = versym[symidx] & 0x7fff;
    if (v <= 1)
        return NULL;
    const ElfW(Verneed) *vn = verneed;
    for (size_t i = 0; i < nverneed; i++) {
        const ElfW(Vernaux) *a = (const ElfW(Vernaux) *)((const char *)vn + vn->vn_aux);
        for (unsigned k = 0; k < vn->vn_cnt; k++) {
            if (a->vna_other == v)
                return strtab + a->vna_name;
            a = (const ElfW(Vernaux) *)((const char *)a + a->vna_next);
        }
        if (!vn->vn_next)
            break;
        vn = (const ElfW(Verneed) *)((const char *)vn + vn->vn_next);
    }
    return NULL;
}

struct scan {
    size_t patched;
    int err;
    unsigned long long adds;
};

static uintptr_t dyn_ptr(uintptr_t base, uintptr_t p) { return p < base ? p + base : p; }

/* What relocating an object's imports needs from its dynamic section and program headers. */
struct dyn_tables {
    uintptr_t base, dyn, relro, relro_end;
    const ElfW(Sym) *symtab;
    const char *strtab;
    const ElfW(Rela) *jmprel, *rela;
    size_t pltrelsz, relasz, nverneed;
    const ElfW(Half) *versym;
    const ElfW(Verneed) *verneed;
    bool pltrela;
};

static bool read_dyn(const struct dl_phdr_info *info, struct dyn_tables *d)
{
    memset(d, 0, sizeof *d);
    d->base = info->dlpi_addr;
    d->pltrela = true;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC)
            d->dyn = d->base + ph->p_vaddr;
        else if (ph->p_type == PT_GNU_RELRO) {
            long page = sysconf(_SC_PAGESIZE);
            /* The loader protects the pages the segment covers fully: start and end rounded down. */
            d->relro = (d->base + ph->p_vaddr) & ~(uintptr_t)(page - 1);
            d->relro_end = (d->base + ph->p_vaddr + ph->p_memsz) & ~(uintptr_t)(page - 1);
        }
    }
    if (!d->dyn)
        return false;
    for (const ElfW(Dyn) *e = (const ElfW(Dyn) *)d->dyn; e->d_tag != DT_NULL; e++) {
        switch (e->d_tag) {
        case DT_SYMTAB: d->symtab = (const ElfW(Sym) *)dyn_ptr(d->base, e->d_un.d_ptr); break;
        case DT_STRTAB: d->strtab = (const char *)dyn_ptr(d->base, e->d_un.d_ptr); break;
        case DT_JMPREL: d->jmprel = (const ElfW(Rela) *)dyn_ptr(d->base, e->d_un.d_ptr); break;
        case DT_PLTRELSZ: d->pltrelsz = e->d_un.d_val; break;
        case DT_PLTREL: d->pltrela = e->d_un.d_val == DT_RELA; break;
        case DT_RELA: d->rela = (const ElfW(Rela) *)dyn_ptr(d->base, e->d_un.d_ptr); break;
        case DT_RELASZ: d->relasz = e->d_un.d_val; break;
        case DT_VERSYM: d->versym = (const ElfW(Half) *)dyn_ptr(d->base, e->d_un.d_ptr); break;
        case DT_VERNEED: d->verneed = (const ElfW(Verneed) *)dyn_ptr(d->base, e->d_un.d_ptr); break;
        case DT_VERNEEDNUM: d->nverneed = e->d_un.d_val; break;
        }
    }
    return true;
}

/* Calls visit(slot, name, symidx) for each GOT slot through which the object calls a function it does
 * not define (JUMP_SLOT and GLOB_DAT relocations); a non-zero return stops the walk with that value. */
static int for_each_import(const struct dyn_tables *d, int (*visit)(const struct dyn_tables *, uintptr_t *,
                                                                    const char *, size_t, void *), void *arg)
{
    if (!d->symtab || !d->strtab || !d->pltrela)
        return 0;
    const struct { const ElfW(Rela) *r; size_t n; uint32_t type; } tables[2] = {
        {d->jmprel, d->pltrelsz / sizeof(ElfW(Rela)), R_X86_64_JUMP_SLOT},
        {d->rela, d->relasz / sizeof(ElfW(Rela)), R_X86_64_GLOB_DAT},
    };
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; tables[t].r && i < tables[t].n; i++) {
            const ElfW(Rela) *r = &tables[t].r[i];
            if (ELF64_R_TYPE(r->r_info) != tables[t].type)
                continue;
            size_t symidx = ELF64_R_SYM(r->r_info);
            const ElfW(Sym) *sym = &d->symtab[symidx];
            if (sym->st_shndx != SHN_UNDEF)
                continue; /* the object defines it itself */
            int rc = visit(d, (uintptr_t *)(d->base + r->r_offset), d->strtab + sym->st_name, symidx, arg);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Stores `value` into a GOT slot, making its RELRO page writable for the moment when it lies there. */
static int store_slot(const struct dyn_tables *d, uintptr_t *slot, uintptr_t value, bool *unprotected)
{
    if ((uintptr_t)slot >= d->relro && (uintptr_t)slot < d->relro_end && !*unprotected) {
        if (mprotect((void *)d->relro, d->relro_end - d->relro, PROT_READ | PROT_WRITE) != 0)
            return -errno;
        *unprotected = true;
    }
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    return 0;
}

struct patch_walk {
    struct scan *sc;
    uint32_t obj;
    bool unprotected;
};

static int patch_import(const struct dyn_tables *d, uintptr_t *slot, const char *name, size_t symidx, void *arg)
{
    struct patch_walk *pw = arg;
    int h = hook_index(name);
    if (h < 0)
        return 0;
    const char *ver = needed_version(d->versym, d->verneed, d->nverneed, d->strtab, symidx);
    if (ver && !strncmp(hook_names[h], "pthread_cond_", 13) && !strcmp(ver, "GLIBC_2.2.5"))
        return 0; /* the old condition ABI: our hooks speak the 2.3.2 one */
    uintptr_t old = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (old == hook_addr[h])
        return 0;
    if (n_slots == GOT_MAX_SLOTS)
        return pw->sc->err = -ENOSPC;
    int rc = store_slot(d, slot, hook_addr[h], &pw->unprotected);
    if (rc)
        return pw->sc->err = rc;
    slots[n_slots++] = (struct got_slot){slot, old, hook_addr[h], pw->obj};
    pw->sc->patched++;
    return 0;
}

static void patch_object(const struct dl_phdr_info *info, struct scan *sc)
{
    struct dyn_tables d;
    if (!read_dyn(info, &d))
        return;
    for (size_t i = 0; i < n_objects; i++)
        if (objects[i].base == d.base && objects[i].dyn == d.dyn)
            return; /* already done (a rescan) */
    if (n_objects == GOT_MAX_OBJECTS) {
        sc->err = -ENOSPC;
        return;
    }
    struct patch_walk pw = {sc, (uint32_t)n_objects, false};
    objects[n_objects++] = (struct got_object){d.base, d.dyn};
    for_each_import(&d, patch_import, &pw);
    if (pw.unprotected)
        mprotect((void *)d.relro, d.relro_end - d.relro, PROT_READ);
}

/* ftp_got_redirect_in: one import of the objects whose file name contains `object`, for good. */
struct redirect {
    const char *object, *symbol;
    uintptr_t target;
    size_t done;
};

static int redirect_import(const struct dyn_tables *d, uintptr_t *slot, const char *name, size_t symidx, void *arg)
{
    (void)symidx;
    struct redirect *rd = arg;
    bool unprotected = false;
    if (strcmp(name, rd->symbol) || store_slot(d, slot, rd->target, &unprotected) != 0)
        return 0;
    if (unprotected)
        mprotect((void *)d->relro, d->relro_end - d->relro, PROT_READ);
    rd->done++;
    return 0;
}

static int redirect_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct redirect *rd = arg;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *base = strrchr(name, '/');
    struct dyn_tables d;
    if (strstr(base ? base + 1 : name, rd->object) && read_dyn(info, &d))
        for_each_import(&d, redirect_import, rd);
    return 0;
}

size_t ftp_got_redirect_in(const char *object, const char *symbol, uintptr_t target)
{
    struct redirect rd = {object, symbol, target, 0};
    dl_iterate_phdr(redirect_cb, &rd);
    return rd.done;
}

/* ftp_got_redirect_object: some imports of one just-loaded object, found from its ELF header in memory
 * (no loader call, no lock: it runs in dlsym's entry). */
struct redirect_many {
    const char *const *symbols;
    const uintptr_t *targets;
    size_t n, done;
};

static int redirect_many_import(const struct dyn_tables *d, uintptr_t *slot, const char *name, size_t symidx,
                                void *arg)
{
    (void)symidx;
    struct redirect_many *rm = arg;
    for (size_t i = 0; i < rm->n; i++) {
        bool unprotected = false;
        if (!rm->targets[i] || strcmp(name, rm->symbols[i]) || store_slot(d, slot, rm->targets[i], &unprotected) != 0)
            continue;
        if (unprotected)
            mprotect((void *)d->relro, d->relro_end - d->relro, PROT_READ);
        rm->done++;
    }
    return 0;
}

size_t ftp_got_redirect_object(uintptr_t bias, const char *const *symbols, const uintptr_t *targets, size_t n)
{
    ElfW(Ehdr) eh;
    if (!ftp_safe_read(&eh, bias, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) || !eh.e_phnum ||
        eh.e_phentsize != sizeof(ElfW(Phdr)))
        return 0;
    struct dl_phdr_info info;
    memset(&info, 0, sizeof info);
    info.dlpi_addr = bias;
    info.dlpi_phdr = (const ElfW(Phdr) *)(bias + eh.e_phoff);
    info.dlpi_phnum = eh.e_phnum;
    struct dyn_tables d;
    struct redirect_many rm = {symbols, targets, n, 0};
    if (read_dyn(&info, &d))
        for_each_import(&d, redirect_many_import, &rm);
    return rm.done;
}

static int install_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct scan *sc = arg;
    sc->adds = info->dlpi_adds;
    if (!skip_object(info))
        patch_object(info, sc);
    return 0;
}

int ftp_got_install(size_t *patched)
{
    lock();
    if (!resolve_hooks()) {
        unlock();
        return -ENOENT;
    }
    struct scan sc = {0};
    dl_iterate_phdr(install_cb, &sc);
    atomic_store(&seen_adds, sc.adds);
    atomic_store(&installed, 1);
    if (patched)
        *patched = n_slots;
    unlock();
    return sc.err;
}

static int count_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    *(unsigned long long *)arg = info->dlpi_adds;
    return 1; /* the count is the same in every entry: the first is enough */
}

/* From ftp_dlsym_entry: objects loaded since the last scan get their slots patched too. */
static void ftp_got_rescan(void)
{
    if (!atomic_load_explicit(&installed, memory_order_relaxed))
        return;
    int saved = errno;
    unsigned long long adds = 0;
    dl_iterate_phdr(count_cb, &adds);
    if (adds != atomic_load_explicit(&seen_adds, memory_order_relaxed)) {
        lock();
        if (atomic_load(&installed)) {
            struct scan sc = {0};
            dl_iterate_phdr(install_cb, &sc);
            atomic_store(&seen_adds, sc.adds);
        }
        unlock();
    }
    errno = saved;
}

static void ftp_dlsym_watch(void *handle, const char *symbol);

/* ftp_dlsym_entry (got_x86_64.S) calls this with dlsym's arguments before jumping to the real dlsym:
 * the exported dlsym under LD_PRELOAD, the patched GOT slots of an attached recorder. */
FTP_HIDDEN void ftp_dlsym_before(void *handle, const char *symbol);
FTP_NOT_INSTRUMENTED void ftp_dlsym_before(void *handle, const char *symbol)
{
    if (!__atomic_load_n(&ftp_real_dlsym, __ATOMIC_ACQUIRE)) {
        int saved = errno;
        ftp_got_resolve_dlsym();
        errno = saved;
    }
    /* Before the recorder's own start (a library preloaded ahead of us looking up symbols in its
     * constructor, a sanitizer runtime initialising itself), nothing to look at: straight to dlsym. */
    if (!atomic_load_explicit(&ftp_real_resolved, memory_order_acquire))
        return;
    ftp_dlsym_watch(handle, symbol);
}

/* Set by the orchestrator at start (init.c): extension.c's look at a dlsym, which sits above this file. */
static _Atomic ftp_got_dlsym_watcher dlsym_watcher;

void ftp_got_watch_dlsym(ftp_got_dlsym_watcher watcher) { atomic_store(&dlsym_watcher, watcher); }

/* The part of ftp_dlsym_before that runs once the recorder has started. */
static void ftp_dlsym_watch(void *handle, const char *symbol)
{
    int saved = errno;
    ftp_got_rescan();
    ftp_got_dlsym_watcher watcher = atomic_load(&dlsym_watcher);
    if (watcher)
        watcher((uintptr_t)handle, symbol);
    errno = saved;
}

struct restore {
    size_t restored, skipped;
};

static int restore_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct restore *rs = arg;
    struct dyn_tables d;
    if (!read_dyn(info, &d))
        return 0;
    for (size_t o = 0; o < n_objects; o++) {
        if (objects[o].base != d.base || objects[o].dyn != d.dyn)
            continue;
        bool unprotected = false;
        for (size_t i = 0; i < n_slots; i++) {
            struct got_slot *s = &slots[i];
            if (s->object != o || !s->slot)
                continue;
            if (__atomic_load_n(s->slot, __ATOMIC_RELAXED) != s->hook) {
                s->slot = NULL; /* someone else rebound it (lazy binding raced the install): theirs now */
                rs->skipped++;
                continue;
            }
            if (store_slot(&d, s->slot, s->old, &unprotected) != 0)
                continue;
            s->slot = NULL;
            rs->restored++;
        }
        if (unprotected)
            mprotect((void *)d.relro, d.relro_end - d.relro, PROT_READ);
        objects[o].dyn = 0; /* done */
    }
    return 0;
}

int ftp_got_restore(size_t *restored)
{
    lock();
    atomic_store(&installed, 0);
    struct restore rs = {0};
    dl_iterate_phdr(restore_cb, &rs);
    size_t left = 0;
    for (size_t i = 0; i < n_slots; i++)
        left += slots[i].slot != NULL; /* their object went away: nothing to write back */
    n_slots = 0;
    n_objects = 0;
    if (restored)
        *restored = rs.restored;
    unlock();
    return left ? -ESRCH : 0;
}

size_t ftp_got_list(struct ftp_got_entry *out, size_t cap)
{
    lock();
    size_t n = 0;
    for (size_t i = 0; i < n_slots && n < cap; i++)
        if (slots[i].slot)
            out[n++] = (struct ftp_got_entry){(uintptr_t)slots[i].slot, slots[i].old, slots[i].hook};
    unlock();
    return n;
}

void ftp_got_after_fork_in_child(void)
{
    got_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    ftp_got_restore(NULL);
}
