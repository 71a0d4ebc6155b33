/* The one place that knows how CPython lays out its memory, per minor version.
 *
 * Most of it comes from the interpreter itself: _PyRuntime starts with _Py_DebugOffsets, the table of
 * struct sizes and field offsets that out-of-process debuggers read. Its fields are u64 words whose
 * positions change between minor versions (fields are inserted in the middle), so each version we know
 * has a table of word indices below, taken from that version's header. The few facts the offsets do not
 * carry (frame owner values, string state bits, tag bits, heap-type and dict layouts, the parking lot's
 * wait entry) follow each table, each with the source it comes from.
 *
 * The layout is chosen once, at start-up, from the whole table, not from the version word alone: the
 * minor version picks the word indices and the table's length, and the table's contents ([2, length):
 * the flavour word and every word up to the table's end) must then hash to a fingerprint taken from an
 * interpreter we build and test (known_tables below). So a table with a field inserted, removed or
 * resized anywhere is refused, even where its offsets would still look plausible, and a later patch
 * release whose table did not change keeps its stacks. A few facts the table does not carry are then
 * checked against the interpreter's own static type objects (ftp_layout_check_types). An unknown minor
 * version (3.16), an unknown table, or a failed check gets no layout at all: its waits are recorded
 * without Python stacks or object names, the recorder says so once on stderr, and the recording's
 * header carries FTP_FLAG_LAYOUT_UNKNOWN. Nothing here guesses an offset.
 *
 * Adding a CPython release: build it, then run `tools/layout-fingerprint PYTHON`. It prints the
 * interpreter's table and the known_tables line to add below; run tests/e2e/test_layout.py on that
 * interpreter (it holds the layout against the sizes Python itself reports). A new minor version also
 * needs a word table of its own (dbg_words, from its Include/internal/pycore_debug_offsets.h). */
#include <string.h>

#include "layout.h"

/* Word indices into _Py_DebugOffsets (word 0 is the "xdebugpy" cookie, so 0 means "not in this
 * version"). Words 1-5 (version, free_threaded, runtime size/finalizing/interpreters_head) never move. */
struct dbg_words {
    uint8_t words; /* the table's length in u64 words: its fingerprint covers words [2, words) */
    uint8_t rt_size, rt_finalizing, rt_interpreters_head;
    uint8_t is_size, is_threads_head, is_threads_main, is_gil_state, is_gil_enabled, is_gc, gc_collecting;
    uint8_t ts_size, ts_next, ts_interp, ts_current_frame, ts_thread_id, ts_native_thread_id;
    uint8_t fr_size, fr_previous, fr_executable, fr_instr_ptr, fr_localsplus, fr_owner, fr_tlbc_index;
    uint8_t co_size, co_filename, co_qualname, co_linetable, co_firstlineno, co_code_adaptive, co_tlbc;
    uint8_t ob_size, ob_type;
    uint8_t tp_size, tp_name, tp_flags, tp_basicsize;
    uint8_t ht_cached_keys;
    uint8_t bytes_size, bytes_ob_size, bytes_ob_sval;
    uint8_t str_size, str_state, str_length, str_ascii_size, str_compact_size;
    /* PEP 768's debugger_support (3.14+) */
    uint8_t dbg_eval_breaker, dbg_remote_support, dbg_remote_enabled, dbg_pending_call, dbg_script_path,
        dbg_script_path_size;
};

/* 3.13: Include/internal/pycore_runtime.h, struct _Py_DebugOffsets (73 words). */
static const struct dbg_words words_313 = {
    .words = 73,
    .rt_size = 3, .rt_finalizing = 4, .rt_interpreters_head = 5,
    .is_size = 6, .is_threads_head = 9, .is_gil_state = 15, .is_gil_enabled = 16, .is_gc = 10, .gc_collecting = 72,
    .ts_size = 19, .ts_next = 21, .ts_interp = 22, .ts_current_frame = 23, .ts_thread_id = 24, .ts_native_thread_id = 25,
    .fr_size = 28, .fr_previous = 29, .fr_executable = 30, .fr_instr_ptr = 31, .fr_localsplus = 32, .fr_owner = 33,
    .co_size = 34, .co_filename = 35, .co_qualname = 37, .co_linetable = 38, .co_firstlineno = 39,
    .co_code_adaptive = 43,
    .ob_size = 44, .ob_type = 45,
    .tp_size = 46, .tp_name = 47, .tp_flags = 49,
    .bytes_size = 64, .bytes_ob_size = 65, .bytes_ob_sval = 66,
    .str_size = 67, .str_state = 68, .str_length = 69, .str_ascii_size = 70,
};

/* 3.14: Include/internal/pycore_debug_offsets.h (95 words): adds threads_main, code_object_generation,
 * tlbc_generation, frame stackpointer/tlbc_index, co_tlbc, set objects, generators, debugger_support. */
static const struct dbg_words words_314 = {
    .words = 95,
    .rt_size = 3, .rt_finalizing = 4, .rt_interpreters_head = 5,
    .is_size = 6, .is_threads_head = 9, .is_threads_main = 10, .is_gil_state = 16, .is_gil_enabled = 17, .is_gc = 11,
    .gc_collecting = 82,
    .ts_size = 22, .ts_next = 24, .ts_interp = 25, .ts_current_frame = 26, .ts_thread_id = 27, .ts_native_thread_id = 28,
    .fr_size = 31, .fr_previous = 32, .fr_executable = 33, .fr_instr_ptr = 34, .fr_localsplus = 35, .fr_owner = 36,
    .fr_tlbc_index = 38,
    .co_size = 39, .co_filename = 40, .co_qualname = 42, .co_linetable = 43, .co_firstlineno = 44,
    .co_code_adaptive = 48, .co_tlbc = 49,
    .ob_size = 50, .ob_type = 51,
    .tp_size = 52, .tp_name = 53, .tp_flags = 55,
    .bytes_size = 74, .bytes_ob_size = 75, .bytes_ob_sval = 76,
    .str_size = 77, .str_state = 78, .str_length = 79, .str_ascii_size = 80,
    .dbg_eval_breaker = 89, .dbg_remote_support = 90, .dbg_remote_enabled = 91, .dbg_pending_call = 92,
    .dbg_script_path = 93, .dbg_script_path_size = 94,
};

/* 3.15: Include/internal/pycore_debug_offsets.h (111 words): adds base_frame, last_profiled_frame,
 * holds_gil/gil_requested, exception state, tp_basicsize/tp_dictoffset, heap_type_object,
 * compactunicodeobject_size, gc frame and generation stats. */
static const struct dbg_words words_315 = {
    .words = 111,
    .rt_size = 3, .rt_finalizing = 4, .rt_interpreters_head = 5,
    .is_size = 6, .is_threads_head = 9, .is_threads_main = 10, .is_gil_state = 16, .is_gil_enabled = 17, .is_gc = 11,
    .gc_collecting = 95,
    .ts_size = 22, .ts_next = 24, .ts_interp = 25, .ts_current_frame = 26, .ts_thread_id = 30, .ts_native_thread_id = 31,
    .fr_size = 39, .fr_previous = 40, .fr_executable = 41, .fr_instr_ptr = 42, .fr_localsplus = 43, .fr_owner = 44,
    .fr_tlbc_index = 46,
    .co_size = 47, .co_filename = 48, .co_qualname = 50, .co_linetable = 51, .co_firstlineno = 52,
    .co_code_adaptive = 56, .co_tlbc = 57,
    .ob_size = 58, .ob_type = 59,
    .tp_size = 60, .tp_name = 61, .tp_flags = 63, .tp_basicsize = 64,
    .ht_cached_keys = 67,
    .bytes_size = 86, .bytes_ob_size = 87, .bytes_ob_sval = 88,
    .str_size = 89, .str_state = 90, .str_length = 91, .str_ascii_size = 92, .str_compact_size = 93,
    .dbg_eval_breaker = 105, .dbg_remote_support = 106, .dbg_remote_enabled = 107, .dbg_pending_call = 108,
    .dbg_script_path = 109, .dbg_script_path_size = 110,
};

static uint64_t word(const uint64_t *dbg, uint8_t index) { return index ? dbg[index] : 0; }

static const struct dbg_words *words_of_minor(unsigned minor)
{
    return minor == 13 ? &words_313 : minor == 14 ? &words_314 : minor == 15 ? &words_315 : NULL;
}

/* FNV-1a (64-bit) of the table's words [2, length), byte by byte, little-endian: the flavour word and
 * everything after it, the cookie and the version word left out (so a patch release with the same table
 * matches). Any word inserted or removed before the end shifts the words after it, so changes the hash. */
static uint64_t table_fingerprint(const uint64_t *dbg, unsigned length)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (unsigned i = 2; i < length; i++)
        for (unsigned b = 0; b < 8; b++) {
            h ^= (dbg[i] >> (8 * b)) & 0xff;
            h *= 0x100000001b3u;
        }
    return h;
}

uint64_t ftp_layout_fingerprint(const uint64_t *dbg, uint64_t version, unsigned *length)
{
    const struct dbg_words *w = (version >> 24) == 3 ? words_of_minor((unsigned)(version >> 16) & 0xff) : NULL;
    *length = w ? w->words : 0;
    return w ? table_fingerprint(dbg, w->words) : 0;
}

/* The tables this recorder knows: minor version, free-threaded or not, fingerprint, and the release it
 * was taken from (tools/layout-fingerprint prints these lines). A release whose table hashes the same
 * needs no line of its own. */
struct known_table {
    uint8_t minor;
    bool free_threaded;
    uint64_t fingerprint;
    const char *taken_from;
};
static const struct known_table known_tables[] = {
    {13, true, 0x7ef3d021655ddf51u, "3.13.15"},
    {13, false, 0x0f9686802ed9e38au, "3.13.15"},
    {14, true, 0x43abcd57c278367fu, "3.14.7"},
    {14, false, 0xaece11e0b67160c0u, "3.14.7"},
    {15, true, 0x5d7ffd0c357e653cu, "3.15.0rc2"},
    {15, false, 0xd6283a3798bb7a65u, "3.15.0rc2"},
};

static bool table_known(const uint64_t *dbg, unsigned minor, const struct dbg_words *w, bool ft)
{
    uint64_t fp = table_fingerprint(dbg, w->words);
    for (size_t i = 0; i < sizeof known_tables / sizeof *known_tables; i++) {
        const struct known_table *k = &known_tables[i];
        if (k->minor == minor && k->free_threaded == ft && k->fingerprint == fp)
            return true;
    }
    return false;
}

/* Everything in one version's layout that must hold for the offsets to be believed: a field lies inside
 * its struct, and the object header is the size its build has. A failure means a table is wrong for
 * this interpreter (a patched build, a table bug): no stacks, rather than wrong ones. */
static bool layout_plausible(const struct ftp_layout *l, const uint64_t *dbg, const struct dbg_words *w, bool ft)
{
    uint64_t ts = word(dbg, w->ts_size), fr = word(dbg, w->fr_size), co = word(dbg, w->co_size);
    uint64_t tp = word(dbg, w->tp_size), str = word(dbg, w->str_size), bytes = word(dbg, w->bytes_size);
    return l->ob_size == (ft ? 32u : 16u) && l->ob_type + 8 <= l->ob_size &&
           l->rt_initialized == (uint64_t)w->words * 8 + 16 &&
           ts && ts < 65536 && l->ts_current_frame + 8 <= ts && l->ts_interp + 8 <= ts && l->ts_next + 8 <= ts &&
           l->is_threads_head + 8 <= word(dbg, w->is_size) && l->is_threads_main + 8 <= word(dbg, w->is_size) &&
           (!w->dbg_script_path_size ||
            (l->dbg_eval_breaker + 8 <= ts && l->dbg_remote_enabled + 4 <= word(dbg, w->is_size) &&
             l->dbg_remote_support + l->dbg_pending_call + 4 <= ts && l->dbg_script_path_size >= 64 &&
             l->dbg_remote_support + l->dbg_script_path + l->dbg_script_path_size <= ts)) &&
           l->ts_native_thread_id + 8 <= ts && l->ts_thread_id + 8 <= ts &&
           fr && fr < 1024 && l->fr_previous + 8 <= fr && l->fr_executable + 8 <= fr && l->fr_instr_ptr + 8 <= fr &&
           l->fr_owner < fr && l->fr_localsplus <= fr && (!l->fr_tlbc_index || l->fr_tlbc_index + 4 <= fr) &&
           co && co < 4096 && l->co_filename + 8 <= co && l->co_qualname + 8 <= co && l->co_linetable + 8 <= co &&
           l->co_firstlineno + 4 <= co && l->co_code_adaptive <= co && l->co_code_adaptive >= l->ob_size &&
           (!l->co_tlbc || l->co_tlbc + 8 <= co) &&
           tp && tp < 4096 && l->tp_name + 16 <= tp && l->tp_flags + 8 <= tp && l->tp_basicsize + 8 <= tp &&
           l->ht_cached_keys >= tp && l->ht_cached_keys < 4096 &&
           bytes && l->bytes_sval <= bytes && l->bytes_size + 8 <= bytes &&
           str && l->str_state + 4 <= str && l->str_length + 8 <= str && l->str_ascii_size < str &&
           l->str_compact_size > l->str_ascii_size && l->str_compact_size < 256 &&
           word(dbg, w->rt_size) > 0 && word(dbg, w->is_size) > 0 &&
           l->is_gc + l->gc_collecting + 4 <= word(dbg, w->is_size);
}

/* The offsets the interpreter's _Py_DebugOffsets table gives (its words `w` of `dbg`), and the few
 * derived from them. */
static void layout_from_table(struct ftp_layout *l, const uint64_t *dbg, const struct dbg_words *w, bool ft)
{
    l->rt_size = word(dbg, w->rt_size);
    l->rt_finalizing = word(dbg, w->rt_finalizing);
    l->rt_interpreters_head = word(dbg, w->rt_interpreters_head);
    /* _PyRuntimeState: debug_offsets, then int _initialized, preinitializing, preinitialized,
     * core_initialized, initialized, then PyThreadState *_finalizing (pycore_runtime.h in 3.13,
     * pycore_runtime_structs.h in 3.14 and 3.15): `initialized` is the int just before the padding that
     * aligns _finalizing. */
    l->rt_initialized = l->rt_finalizing >= 8 ? l->rt_finalizing - 8 : 0;
    l->is_size = word(dbg, w->is_size);
    l->is_gil_state = word(dbg, w->is_gil_state);
    /* gil_runtime_state_enabled is relative to the GIL state (_Py_Debug_gilruntimestate_enabled), unlike
     * its neighbours, which are offsets in the interpreter state. */
    l->gil_enabled = word(dbg, w->is_gil_enabled);
    /* interpreter_state.gc is an offset in the interpreter state, gc.collecting one in its GC state. */
    l->is_gc = word(dbg, w->is_gc);
    l->gc_collecting = word(dbg, w->gc_collecting);
    l->is_threads_head = word(dbg, w->is_threads_head);
    l->is_threads_main = word(dbg, w->is_threads_main);
    l->ts_size = word(dbg, w->ts_size);
    l->ts_next = word(dbg, w->ts_next);
    l->ts_current_frame = word(dbg, w->ts_current_frame);
    l->ts_interp = word(dbg, w->ts_interp);
    l->ts_native_thread_id = word(dbg, w->ts_native_thread_id);
    l->ts_thread_id = word(dbg, w->ts_thread_id);
    l->fr_previous = word(dbg, w->fr_previous);
    l->fr_executable = word(dbg, w->fr_executable);
    l->fr_instr_ptr = word(dbg, w->fr_instr_ptr);
    l->fr_localsplus = word(dbg, w->fr_localsplus);
    l->fr_owner = word(dbg, w->fr_owner);
    l->co_filename = word(dbg, w->co_filename);
    l->co_qualname = word(dbg, w->co_qualname);
    l->co_linetable = word(dbg, w->co_linetable);
    l->co_firstlineno = word(dbg, w->co_firstlineno);
    l->co_code_adaptive = word(dbg, w->co_code_adaptive);
    l->ob_size = word(dbg, w->ob_size);
    l->ob_type = word(dbg, w->ob_type);
    l->tp_name = word(dbg, w->tp_name);
    l->tp_flags = word(dbg, w->tp_flags);
    l->bytes_size = word(dbg, w->bytes_ob_size);
    l->bytes_sval = word(dbg, w->bytes_ob_sval);
    l->str_state = word(dbg, w->str_state);
    l->str_length = word(dbg, w->str_length);
    l->str_ascii_size = word(dbg, w->str_ascii_size);
    /* PEP 768 (3.14+): eval_breaker is in the thread state; the pending call and the script path are in
     * its remote_debugger_support; remote_debugging_enabled is in the interpreter state. */
    l->dbg_eval_breaker = word(dbg, w->dbg_eval_breaker);
    l->dbg_remote_support = word(dbg, w->dbg_remote_support);
    l->dbg_remote_enabled = word(dbg, w->dbg_remote_enabled);
    l->dbg_pending_call = word(dbg, w->dbg_pending_call);
    l->dbg_script_path = word(dbg, w->dbg_script_path);
    l->dbg_script_path_size = word(dbg, w->dbg_script_path_size);

    /* tp_basicsize follows tp_name in PyTypeObject (Include/cpython/object.h, all three versions);
     * 3.15 also says so in the offsets. */
    l->tp_basicsize = w->tp_basicsize ? word(dbg, w->tp_basicsize) : l->tp_name + 8;
    /* PyCompactUnicodeObject adds utf8_length and utf8 to PyASCIIObject (cpython/unicodeobject.h). */
    l->str_compact_size = w->str_compact_size ? word(dbg, w->str_compact_size) : l->str_ascii_size + 16;
    /* PyHeapTypeObject.ht_cached_keys: 864 bytes after the object header in 3.13 and 3.14 (the type object
     * and the as_* method tables before it are the same size in both, Include/cpython/object.h); 3.15's
     * new PyTypeObject._tp_iteritem moves it, and 3.15 gives it in the offsets. */
    l->ht_cached_keys = w->ht_cached_keys ? word(dbg, w->ht_cached_keys) : l->ob_size + 864;

    /* Per-thread bytecode of free-threaded 3.14+: a frame's instr_ptr points into
     * co_tlbc->entries[frame->tlbc_index], a _PyCodeArray {Py_ssize_t size; char *entries[]}
     * (Include/cpython/code.h:32-35; Include/internal/pycore_interpframe_structs.h:41-42). */
    if (ft && w->co_tlbc && w->fr_tlbc_index) {
        l->co_tlbc = word(dbg, w->co_tlbc);
        l->fr_tlbc_index = word(dbg, w->fr_tlbc_index);
    }
}

/* What the table does not give, from CPython's sources (one comment per fact, naming where it is). */
static void layout_from_sources(struct ftp_layout *l, unsigned minor, bool ft)
{
    /* Entry frames of _PyEval_EvalFrameDefault, which also end each C-level call of the eval loop:
     * 3.13 FRAME_OWNED_BY_CSTACK = 3 (Include/internal/pycore_frame.h:59); 3.14 marks them
     * FRAME_OWNED_BY_INTERPRETER = 3 (Python/ceval.c:1192) and keeps CSTACK = 4
     * (pycore_interpframe_structs.h:26-27); 3.15 drops CSTACK and its tstate->base_frame sentinel is
     * owner 3 too (Python/pystate.c:1568). So: owner >= 3 is never a Python function's frame. */
    l->frame_owner_entry = 3;
    /* f_executable: a PyObject * in 3.13 (pycore_frame.h:63); a tagged _PyStackRef from 3.14, with tag
     * bits 1 (free-threaded) or 3 (default build) in 3.14 (pycore_stackref.h:278, :461) and 3 in 3.15
     * (pycore_stackref.h:56). Objects are at least 8-aligned, so clearing the low 3 bits is exact. */
    l->executable_tag_mask = 7;

    /* PyASCIIObject.state (Include/cpython/unicodeobject.h): interned:2, kind:3, compact:1, ascii:1 in
     * 3.13 and in default builds; free-threaded 3.14 and 3.15 make interned a whole byte (it is read
     * atomically), which moves kind/compact/ascii to bits 8/11/12 ("abc": 0x1902 instead of 0x66). */
    bool whole_byte_interned = ft && minor >= 14;
    l->str_kind_shift = whole_byte_interned ? 8 : 2;
    l->str_compact_shift = whole_byte_interned ? 11 : 5;
    l->str_ascii_shift = whole_byte_interned ? 12 : 6;

    /* Free-threaded PyObject (Include/object.h): ob_tid 0, ob_flags 8, ob_mutex 10, ob_gc_bits 11, in
     * 3.13 (where ob_flags is _padding), 3.14 and 3.15. */
    l->ob_mutex = ft ? 10 : 0;
    /* _thread.lock {PyObject_HEAD; PyMutex lock} and, from 3.14, _thread.RLock {PyObject_HEAD;
     * _PyRecursiveMutex lock} whose first member is its PyMutex (Modules/_threadmodule.c; 3.14 :746,
     * :1010; 3.13's RLock is a PyThread_type_lock instead). */
    l->lock_mutex = l->ob_size;
    l->rlock_is_pymutex = minor >= 14;
    l->rlock_owner = minor >= 14 ? 8 : 0; /* _PyRecursiveMutex {PyMutex mutex; unsigned long long thread; ...} */

    /* Inline values and split keys, for a thread's name (self._name of its Thread): unchanged 3.13-3.15.
     * Include/object.h Py_TPFLAGS_INLINE_VALUES (1 << 2); Include/internal/pycore_dict.h
     * struct _dictkeysobject {dk_refcnt 0; dk_log2_size 8; dk_log2_index_bytes 9; dk_kind 10;
     * [dk_mutex 11, free-threaded]; dk_version 12; dk_usable 16; dk_nentries 24; dk_indices 32},
     * DICT_KEYS_SPLIT 2, PyDictUnicodeEntry {me_key, me_value} (16 bytes), and struct _dictvalues
     * {capacity, size, embedded, valid; values[]} placed at the object's tp_basicsize. */
    l->tp_flags_inline_values = 1u << 2;
    l->dk_log2_index_bytes = 9;
    l->dk_kind = 10;
    l->dk_nentries = 24;
    l->dk_indices = 32;
    l->dk_kind_split = 2;
    l->dk_entry_size = 16;
    l->values_valid = 3;
    l->values_array = 8;

    /* Python/parking_lot.c struct wait_entry {void *park_arg; uintptr_t addr; _PySemaphore sema; ...}
     * with a sem_t first in _PySemaphore (Include/internal/pycore_semaphore.h), unchanged 3.13-3.15;
     * and Python/lock.c struct mutex_entry {PyTime_t time_to_be_fair; int handed_off}. */
    l->park_addr_before_sem = 8;
    l->park_arg_before_sem = 16;
    l->mutex_entry_handed_off = 8;
    /* _PyMutex_LockTimed reads the monotonic clock once, before it spins, and sets time_to_be_fair to
     * that plus TIME_TO_BE_FAIR_NS = 1 ms (Python/lock.c:23 in 3.13-3.15): so a park tells when its
     * acquisition began, the spin included. */
    l->mutex_fair_ns = 1000000;

    /* Spinning before a park (Python/lock.c MAX_SPIN_COUNT): 40 yields, free-threaded builds only.
     * 3.13 and 3.14 never re-read the lock byte while spinning, so a PyMutex spin is exactly 40 yields;
     * 3.15 re-reads it every few yields (RELOAD_SPIN_MASK, lock.c:29-30,107-109) and often takes the
     * lock in fewer. */
    l->spin_max = ft ? 40 : 0;
    l->spin_rereads = minor >= 15;

    /* The type cache's seqlock guards a struct type_cache_entry {unsigned version; _PySeqLock sequence;
     * PyObject *name; PyObject *value} (free-threaded 3.13-3.15): `version` is the looked-up type's
     * PyTypeObject.tp_version_tag, the C API's 27th word after tp_flags (tp_doc ... tp_del between). */
    /* A new thread's first wait is for its starter, in Modules/_threadmodule.c thread_run, on
     * &boot->handle_ready of struct bootstate {PyThreadState *tstate; PyObject *func; args; kwargs;
     * ThreadHandle *handle; PyEvent handle_ready} (3.13-3.15), before `threading` has a frame on it;
     * func is the Thread's bound _bootstrap method (PyMethodObject {PyObject_HEAD; im_func; im_self}). */
    l->boot_handle_ready = 40;
    l->boot_func = 8;
    l->method_self = l->ob_type + 8 + 8;
    l->tc_entry_sequence = 4;
    l->tc_entry_name = 8;
    l->tp_version_tag = l->tp_flags + 8 + 26 * 8;
}

bool ftp_layout_load(struct ftp_layout *l, const uint64_t *dbg, uint64_t version, bool ft)
{
    memset(l, 0, sizeof *l);
    unsigned minor = (unsigned)(version >> 16) & 0xff;
    if ((version >> 24) != 3)
        return false;
    const struct dbg_words *w = words_of_minor(minor);
    /* The flavour is both in the table (word 2, hashed) and given: a table taken from the other build
     * never matches. */
    if (!w || (dbg[2] != 0) != ft || !table_known(dbg, minor, w, ft))
        return false;
    l->minor = (uint8_t)minor;
    layout_from_table(l, dbg, w, ft);
    layout_from_sources(l, minor, ft);

    if (!layout_plausible(l, dbg, w, ft)) {
        memset(l, 0, sizeof *l);
        return false;
    }
    return true;
}

static uint64_t u64_at(const uint8_t *object, uint64_t offset)
{
    uint64_t v;
    memcpy(&v, object + offset, sizeof v);
    return v;
}

/* A static type object that says what it is: its type is `type`, and tp_flags has the bit
 * (Include/object.h Py_TPFLAGS_*_SUBCLASS, 3.13-3.15) that only it and its subclasses carry. */
static bool type_object_is(const struct ftp_layout *l, const uint8_t *object, uintptr_t type_addr, uint64_t flag)
{
    return u64_at(object, l->ob_type) == type_addr && (u64_at(object, l->tp_flags) & flag);
}

bool ftp_layout_check_types(struct ftp_layout *l, const struct ftp_layout_types *t)
{
    const uint64_t type_subclass = 1ull << 31, bytes_subclass = 1ull << 27, unicode_subclass = 1ull << 28;
    bool ok = l->minor && t->type && t->code && t->str && t->bytes &&
              /* the object header (ob_type) and tp_flags */
              type_object_is(l, t->type, t->type_addr, type_subclass) &&
              type_object_is(l, t->str, t->type_addr, unicode_subclass) &&
              type_object_is(l, t->bytes, t->type_addr, bytes_subclass) && u64_at(t->code, l->ob_type) == t->type_addr &&
              /* tp_basicsize right after tp_name (not in the 3.13/3.14 tables): a code object's basic
               * size is where its bytecode starts, which the table does give */
              u64_at(t->code, l->tp_basicsize) == l->co_code_adaptive &&
              /* PyUnicodeObject is PyCompactUnicodeObject plus its data pointer: the compact size that
               * 3.13/3.14 do not give (ascii size + 16) */
              u64_at(t->str, l->tp_basicsize) == l->str_compact_size + 8 &&
              /* PyBytesObject's basic size counts the NUL of ob_sval */
              u64_at(t->bytes, l->tp_basicsize) == l->bytes_sval + 1 &&
              /* PyHeapTypeObject (type's basic size) ends a few fields after ht_cached_keys, which
               * 3.13/3.14 do not give (ob_size + 864): ht_module, _ht_tpname, ht_token, _spec_cache and
               * unique_id take 48 (3.13t) to 64 bytes (3.14t, 3.15t); twice that is the bound. */
              u64_at(t->type, l->tp_basicsize) >= l->ht_cached_keys + 8 &&
              u64_at(t->type, l->tp_basicsize) <= l->ht_cached_keys + 128;
    if (!ok)
        memset(l, 0, sizeof *l);
    return ok;
}
