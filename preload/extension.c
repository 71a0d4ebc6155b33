/* Extension modules: which the program imports, from where, and what each declares about the GIL.
 *
 * The import machinery loads an extension's object with dlopen, then looks up its PyInit_<name> (3.15
 * first tries PyModExport_<name>) with dlsym, then calls it. dlsym is ours (got_x86_64.S), so we see that
 * look-up on the importing thread with the import's Python stack live and none of the module's code run
 * yet: the EXTENSION record "loaded" is written there.
 *
 * What the module declares is in its module definition, which only its own init function hands to the
 * interpreter: PyModuleDef_Init(&def) or PyModule_FromDefAndSpec2(&def, ...) for multi-phase init (the
 * def's m_slots may hold Py_mod_gil), PyModule_Create2(&def) and maybe PyUnstable_Module_SetGIL(mod, gil)
 * for single-phase init. The module calls those through its own GOT, so before the init runs we point
 * those four slots of the new object at the wrappers below (got.c), which read the def (plain reads of
 * static data) or the SetGIL argument, write a "declared" record and call on what the slot would have
 * called. Symbol interposition could not do this: on a static-libpython interpreter the executable's own
 * definitions win over a preloaded library's; a GOT slot of the module is the module's call either way.
 * The recorder calls nothing of the interpreter: the wrappers only pass the module's own call along.
 *
 * A small table (static, no allocation) keeps what was seen per object, so a recording that starts
 * later in the same process (a fork child's, an attach after a detach) lists the modules loaded before it
 * with what was known. Modules loaded before the recorder existed (attach) are listed from the link map,
 * their declaration unknown. x86-64 only, like got.c. */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>

#include "event.h"
#include "extension.h"
#include "got.h"
#include "native.h"
#include "python.h"
#include "ring.h"
#include "stack.h"
#include "thread.h"

#define EXT_TABLE_MAX 1024
#define EXT_NAME_MAX 200

struct ext_seen {
    _Atomic uintptr_t base; /* 0: free; claimed with a CAS */
    _Atomic uint8_t gil, init;
    _Atomic bool created;   /* its first module object was made (later ones are submodules or copies) */
    _Atomic uintptr_t end;  /* the end of its highest PT_LOAD segment */
};
static struct ext_seen seen[EXT_TABLE_MAX];

enum { API_DEF_INIT, API_CREATE2, API_FROM_SPEC2, API_SET_GIL, API_COUNT };
static const char *const api_names[API_COUNT] = {"PyModuleDef_Init", "PyModule_Create2", "PyModule_FromDefAndSpec2",
                                                  "PyUnstable_Module_SetGIL"};
static _Atomic uintptr_t api_real[API_COUNT];
static _Atomic int api_resolved;

static struct ext_seen *seen_slot(uintptr_t base, bool claim)
{
    size_t start = (size_t)((base * 0x9E3779B97F4A7C15ull) >> 54) % EXT_TABLE_MAX;
    for (size_t k = 0; k < EXT_TABLE_MAX; k++) {
        struct ext_seen *e = &seen[(start + k) % EXT_TABLE_MAX];
        uintptr_t cur = atomic_load(&e->base);
        if (cur == base)
            return e;
        if (!cur) {
            if (!claim)
                return NULL;
            uintptr_t zero = 0;
            if (atomic_compare_exchange_strong(&e->base, &zero, base) || zero == base)
                return e;
        }
    }
    return NULL;
}

/* One EXTENSION record's fields. */
struct ext_args {
    struct ftp_thread *t;
    uint16_t flags;
    uint32_t stack_id;
    uint64_t time_ns;
    uintptr_t base;
    uint8_t gil, init;
    const char *name, *path;
    size_t name_len, path_len;
};

static void write_record(struct ext_args *a)
{
    if (a->name_len > EXT_NAME_MAX)
        a->name_len = EXT_NAME_MAX;
    if (a->path_len > 1024)
        a->path_len = 1024;
    uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_extension) + a->name_len + a->path_len));
    struct ftp_rec_extension *r = ftp_ring_reserve(a->t, size);
    if (!r)
        return;
    r->tid = a->t->tid;
    r->stack_id = a->stack_id;
    r->time_ns = a->time_ns;
    r->base = a->base;
    r->gil = a->gil;
    r->init = a->init;
    r->name_len = (uint16_t)a->name_len;
    r->path_len = (uint16_t)a->path_len;
    r->reserved = 0;
    uint8_t *p = (uint8_t *)(r + 1);
    memcpy(p, a->name, a->name_len);
    memcpy(p + a->name_len, a->path, a->path_len);
    memset(p + a->name_len + a->path_len, 0, size - sizeof *r - a->name_len - a->path_len);
    ftp_ring_commit(a->t, r, FTP_REC_EXTENSION, a->flags, size);
}

/* ---- what the module's init declares ---- */

/* The end of the object loaded at `bias`, from its program headers in memory (0: unreadable). */
static uintptr_t object_end(uintptr_t bias)
{
    ElfW(Ehdr) eh;
    ElfW(Phdr) ph[64];
    if (!ftp_safe_read(&eh, bias, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) || !eh.e_phnum ||
        eh.e_phentsize != sizeof(ElfW(Phdr)))
        return 0;
    int n = eh.e_phnum < 64 ? eh.e_phnum : 64;
    if (!ftp_safe_read(ph, bias + eh.e_phoff, (size_t)n * sizeof ph[0]))
        return 0;
    uintptr_t end = 0;
    for (int i = 0; i < n; i++)
        if (ph[i].p_type == PT_LOAD && bias + ph[i].p_vaddr + ph[i].p_memsz > end)
            end = bias + ph[i].p_vaddr + ph[i].p_memsz;
    return end;
}

/* The extension object whose code called a wrapper: the one whose mapping holds the return address.
 * An init may import other extension modules before it declares (ujson imports decimal), so "the
 * import in progress on this thread" is only the answer when the call was a tail call from the init
 * function (`return PyModuleDef_Init(&def);`), whose return address is the import machinery's: then
 * no other import came between the look-up of the init function and the call. */
static struct ext_seen *caller_object(uintptr_t ret)
{
    for (size_t i = 0; i < EXT_TABLE_MAX; i++) {
        uintptr_t b = atomic_load_explicit(&seen[i].base, memory_order_relaxed);
        if (b && b <= ret && ret < atomic_load_explicit(&seen[i].end, memory_order_relaxed))
            return &seen[i];
    }
    uintptr_t pending = ftp_tls.ext_base;
    return pending ? seen_slot(pending, false) : NULL;
}

/* The size of the object header that starts a PyModuleDef (PyModuleDef_Base): from the layout when the
 * recorder knows this interpreter's, else from the build for the versions whose header is known
 * (3.13 to 3.15: two words, four on a free-threaded build; a 3.13.0 has no layout of ours); 0: unknown. */
static uint64_t def_head_size(void)
{
    const struct ftp_python *py = &ftp_state.py;
    if (py->lay.ob_type)
        return py->lay.ob_type + 8;
    unsigned minor = (unsigned)(py->version >> 16) & 0xff, major = (unsigned)(py->version >> 24) & 0xff;
    return major == 3 && minor >= 13 && minor <= 15 ? (py->free_threaded ? 32 : 16) : 0;
}

static void declared(struct ext_seen *e, uint8_t gil, uint8_t init, uintptr_t def)
{
    if (!e || !atomic_load_explicit(&ftp_state.recording, memory_order_acquire) || ftp_tls.guard)
        return;
    struct ftp_thread *t = ftp_thread_enter();
    if (!t || !ftp_busy_enter(t))
        return;
    char name[EXT_NAME_MAX + 1];
    size_t name_len = 0;
    /* PyModuleDef: PyModuleDef_Base (the object header, m_init, m_index, m_copy), then m_name. */
    uint64_t head = def_head_size();
    uintptr_t name_ptr = 0;
    if (def && head && ftp_safe_read(&name_ptr, def + head + 24, sizeof name_ptr) && name_ptr)
        name_len = ftp_native_read_cstr(name_ptr, name, sizeof name);
    atomic_store(&e->gil, gil);
    if (init)
        atomic_store(&e->init, init);
    struct ext_args a = {t, FTP_EXT_DECLARED, 0, ftp_now(), atomic_load(&e->base), gil, init, name, "", name_len, 0};
    write_record(&a);
    ftp_busy_leave(t);
}

/* Py_mod_gil in a multi-phase def's m_slots (4; also 87, 3.15's new numbering). */
static uint8_t gil_of_def(uintptr_t def)
{
    uint64_t head = def_head_size();
    uintptr_t slots = 0;
    if (!def || !head || !ftp_safe_read(&slots, def + head + 24 + 32, sizeof slots))
        return FTP_EXT_GIL_UNKNOWN;
    for (int i = 0; slots && i < 64; i++) {
        struct { int32_t id; int32_t pad; uintptr_t value; } s;
        if (!ftp_safe_read(&s, slots + (uintptr_t)i * sizeof s, sizeof s))
            return FTP_EXT_GIL_UNKNOWN;
        if (s.id == 0)
            break;
        if (s.id == 4 || (((ftp_state.py.version >> 16) & 0xff) >= 15 && s.id == 87))
            return s.value == 1 ? FTP_EXT_GIL_NOT_USED : FTP_EXT_GIL_USED;
    }
    /* No slot: the free-threaded build keeps the GIL for it; a GIL build's module may declare only in its
     * free-threaded build, so nothing can be said there. */
    return ftp_state.py.free_threaded ? FTP_EXT_GIL_USED : FTP_EXT_GIL_UNKNOWN;
}

/* The first module (definition) an object's code hands over is the module itself; later ones are
 * submodules or copies, not what the import of the object decides on. */
static struct ext_seen *first_module_of(uintptr_t ret)
{
    struct ext_seen *e = caller_object(ret);
    return e && !atomic_exchange(&e->created, true) ? e : NULL;
}

static void *wrap_def_init(void *def)
{
    declared(first_module_of((uintptr_t)__builtin_return_address(0)), gil_of_def((uintptr_t)def), FTP_EXT_INIT_MULTI,
             (uintptr_t)def);
    return ((void *(*)(void *))atomic_load(&api_real[API_DEF_INIT]))(def);
}

static void *wrap_from_spec2(void *def, void *spec, int api)
{
    declared(first_module_of((uintptr_t)__builtin_return_address(0)), gil_of_def((uintptr_t)def), FTP_EXT_INIT_MULTI,
             (uintptr_t)def);
    return ((void *(*)(void *, void *, int))atomic_load(&api_real[API_FROM_SPEC2]))(def, spec, api);
}

static void *wrap_create2(void *def, int api)
{
    declared(first_module_of((uintptr_t)__builtin_return_address(0)),
             ftp_state.py.free_threaded ? FTP_EXT_GIL_USED : FTP_EXT_GIL_UNKNOWN, FTP_EXT_INIT_SINGLE, (uintptr_t)def);
    return ((void *(*)(void *, int))atomic_load(&api_real[API_CREATE2]))(def, api);
}

static int wrap_set_gil(void *module, void *gil)
{
    declared(caller_object((uintptr_t)__builtin_return_address(0)),
             (uintptr_t)gil == 1 ? FTP_EXT_GIL_NOT_USED : FTP_EXT_GIL_USED, FTP_EXT_INIT_UNKNOWN, 0);
    return ((int (*)(void *, void *))atomic_load(&api_real[API_SET_GIL]))(module, gil);
}

static const uintptr_t api_wrappers[API_COUNT] = {(uintptr_t)wrap_def_init, (uintptr_t)wrap_create2,
                                                  (uintptr_t)wrap_from_spec2, (uintptr_t)wrap_set_gil};

/* The interpreter's own definitions, looked up once. We are in dlsym's entry on the way to the loader's
 * own lookup: one more lookup there takes nothing the caller was not about to take. */
static bool resolve_api(void)
{
    if (atomic_load(&api_resolved))
        return atomic_load(&api_resolved) > 0;
    void *(*real)(void *, const char *) = (void *(*)(void *, const char *))__atomic_load_n(&ftp_real_dlsym, __ATOMIC_ACQUIRE);
    if (!real)
        return false;
    bool any = false;
    for (int i = 0; i < API_COUNT; i++) {
        uintptr_t p = (uintptr_t)real(RTLD_DEFAULT, api_names[i]);
        atomic_store(&api_real[i], p);
        any |= p != 0;
    }
    atomic_store(&api_resolved, any ? 1 : -1);
    return any;
}

/* ---- the import ---- */

static bool gil_on_for_good(void)
{
    volatile int *enabled = __atomic_load_n(&ftp_state.py.gil_enabled, __ATOMIC_RELAXED);
    return enabled && *enabled == 0x7fffffff;
}

void ftp_extension_before_dlsym(uintptr_t handle, const char *symbol)
{
    size_t prefix = !symbol ? 0 : !strncmp(symbol, "PyInit_", 7) ? 7 : !strncmp(symbol, "PyModExport_", 12) ? 12 : 0;
    if (!prefix || !handle || !atomic_load_explicit(&ftp_state.recording, memory_order_acquire) || ftp_tls.guard)
        return;
    struct ftp_thread *t = ftp_thread_enter();
    if (!t)
        return;
    char path[1024];
    uintptr_t base;
    if (!ftp_native_object_of(handle, &base, path, sizeof path))
        return; /* not a handle of a loaded object (RTLD_DEFAULT, a stale handle) */
    if (prefix == 7 && t->ext_base == base && t->ext_stage == 2) {
        t->ext_stage = 0; /* 3.15: PyModExport_ was not there, PyInit_ comes next: same import */
        return;
    }
    if (!ftp_busy_enter(t))
        return;
    if (ftp_python_ready())
        ftp_event_check_gil(t); /* the previous import's re-enable is told before this one's */
    struct ext_args a = {t, FTP_EXT_LOADED, ftp_stack_capture(t), ftp_now(), base, FTP_EXT_GIL_UNKNOWN,
                            prefix == 12 ? FTP_EXT_INIT_EXPORT : FTP_EXT_INIT_UNKNOWN, symbol + prefix, path,
                            strlen(symbol + prefix), strlen(path)};
    if (gil_on_for_good())
        a.flags |= FTP_EXT_GIL_WAS_ON;
    write_record(&a);
    struct ext_seen *e = seen_slot(base, true);
    if (e) {
        atomic_store(&e->end, object_end(base));
        atomic_store(&e->created, false); /* a fork child's or new recording's import of a known object */
    }
    t->ext_base = base;
    t->ext_stage = prefix == 12 ? 2 : 0;
    if (resolve_api()) {
        uintptr_t targets[API_COUNT];
        for (int i = 0; i < API_COUNT; i++)
            targets[i] = atomic_load(&api_real[i]) ? api_wrappers[i] : 0;
        ftp_got_redirect_object(base, api_names, targets, API_COUNT);
    }
    ftp_busy_leave(t);
}

/* ---- modules loaded before the recording ---- */

static uintptr_t moduledef_type; /* &PyModuleDef_Type, looked up where a look-up is safe */

/* What the initialised multi-phase definitions in an object's writable segments say, for a module the
 * recorder did not see being imported (an attach). PyModuleDef_Init gives every definition it
 * initialises the type PyModuleDef_Type, so a word equal to &PyModuleDef_Type at the header's type
 * offset marks one; its m_slots tell Py_mod_gil. Definitions without slots are single-phase ones, whose
 * declaration lives in the module object: unknown. Several definitions that disagree: unknown. */
static uint8_t declared_in_object(uintptr_t bias, uint8_t *init)
{
    uint64_t head = def_head_size();
    ElfW(Ehdr) eh;
    ElfW(Phdr) ph[32];
    if (!moduledef_type || !head || !ftp_safe_read(&eh, bias, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum > 32 ||
        !ftp_safe_read(ph, bias + eh.e_phoff, (size_t)eh.e_phnum * sizeof ph[0]))
        return FTP_EXT_GIL_UNKNOWN;
    uint8_t found = FTP_EXT_GIL_UNKNOWN;
    for (int i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_W) || ph[i].p_memsz > (16u << 20))
            continue;
        uintptr_t start = (bias + ph[i].p_vaddr + 7) & ~(uintptr_t)7, end = bias + ph[i].p_vaddr + ph[i].p_memsz;
        for (uintptr_t at = start; at + 8 <= end; at += 4096) {
            uintptr_t words[512];
            size_t n = (end - at) / 8 < 512 ? (end - at) / 8 : 512;
            if (!ftp_safe_read(words, at, n * 8))
                continue;
            for (size_t k = 0; k < n; k++) {
                uintptr_t def = at + k * 8 - (head - 8), slots = 0;
                if (words[k] != moduledef_type || !ftp_safe_read(&slots, def + head + 24 + 32, sizeof slots) || !slots)
                    continue;
                uint8_t gil = gil_of_def(def);
                if (found && gil != found)
                    return FTP_EXT_GIL_UNKNOWN;
                found = gil;
                *init = FTP_EXT_INIT_MULTI;
            }
        }
    }
    return found;
}

/* A new recording in a process that already imported extension modules (attach, fork child): one
 * LOADED record for each object of the link map named like an extension module, with what an earlier
 * recording of this process saw its init declare, or else what its definitions say. */
static void before_start_cb(struct ftp_thread *t, uintptr_t base, const char *path)
{
    const char *file = strrchr(path, '/');
    file = file ? file + 1 : path;
    if (!strstr(file, ".cpython-") && !strstr(file, ".abi3.") && !strstr(file, ".pypy"))
        return;
    size_t name_len = strcspn(file, ".");
    struct ext_seen *e = seen_slot(base, false);
    uint8_t gil = e ? atomic_load(&e->gil) : FTP_EXT_GIL_UNKNOWN, init = e ? atomic_load(&e->init) : 0;
    if (!gil)
        gil = declared_in_object(base, &init);
    struct ext_args a = {t, FTP_EXT_LOADED | FTP_EXT_BEFORE_START, 0, ftp_state.hdr ? ftp_state.hdr->start_ns : ftp_now(),
                            base, gil, init, file, path, name_len, strlen(path)};
    write_record(&a);
    if (gil) {
        a.flags = FTP_EXT_DECLARED;
        a.name_len = 0;
        a.path_len = 0;
        write_record(&a);
    }
}

void ftp_extension_recording_started(struct ftp_thread *t)
{
    /* A look-up takes the loader's lock: not in a fork child, where a thread gone with the fork may have
     * held it (the parent's answer is kept); at start-up and at an attach no hook is running. */
    if (!moduledef_type && ftp_state.hdr && !(ftp_state.hdr->flags & FTP_FLAG_FORKED_CHILD))
        moduledef_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyModuleDef_Type");
    if (!t || !ftp_busy_enter(t))
        return;
    ftp_native_each_object(t, before_start_cb);
    ftp_busy_leave(t);
}
