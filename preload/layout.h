/* CPython's memory layout per minor version (layout.c): the one place that knows an interpreter's
 * offsets. Shared by the recorder, which reads its own process, and the analyzer, which reads another
 * one's (ftprof attach, the holders' stacks in ftprof top): both compile layout.c, so the two never
 * disagree about a layout. Needs nothing but the C library. */
#ifndef FTPROF_LAYOUT_H
#define FTPROF_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#ifndef FTP_HIDDEN
#define FTP_HIDDEN __attribute__((visibility("hidden")))
#endif

/* One CPython minor version's memory layout: _Py_DebugOffsets values and the facts they do not carry
 * (layout.c fills it; nothing else in the recorder knows a CPython offset). */
struct ftp_layout {
    uint8_t minor;                /* 13, 14, 15; 0: unknown, no stacks */
    uint64_t rt_size, rt_finalizing, rt_interpreters_head;
    uint64_t rt_initialized; /* _PyRuntimeState.initialized: Py_Initialize() has finished */
    uint64_t is_size, is_gil_state, gil_enabled; /* gil_enabled: inside the GIL state */
    uint64_t is_gc, gc_collecting; /* the interpreter's GC state, and its `collecting` flag inside it */
    uint64_t is_threads_head, is_threads_main; /* the interpreter's thread states (main: 3.14+) */
    uint64_t ts_size, ts_next, ts_current_frame, ts_interp, ts_native_thread_id;
    uint64_t ts_thread_id; /* its pthread_self(): what a 3.14+ RLock names as owner */
    /* PEP 768 (3.14+, else 0): the thread state's eval_breaker and remote_debugger_support, the pending
     * call and script path inside the latter, the path's size; remote_enabled is in the interpreter. */
    uint64_t dbg_eval_breaker, dbg_remote_support, dbg_remote_enabled, dbg_pending_call, dbg_script_path,
        dbg_script_path_size;
    uint64_t fr_previous, fr_executable, fr_instr_ptr, fr_owner, fr_localsplus, fr_tlbc_index;
    uint64_t co_filename, co_qualname, co_linetable, co_firstlineno, co_code_adaptive, co_tlbc;
    uint64_t ob_size, ob_type, tp_name, tp_flags, tp_basicsize, ht_cached_keys;
    uint64_t bytes_size, bytes_sval;
    uint64_t str_length, str_state, str_ascii_size, str_compact_size;
    uint8_t frame_owner_entry;    /* owners >= this are eval-loop entry frames, not functions */
    uintptr_t executable_tag_mask;
    uint8_t str_kind_shift, str_compact_shift, str_ascii_shift;
    uint64_t ob_mutex;            /* the per-object lock in a free-threaded PyObject (0: none) */
    uint64_t lock_mutex;          /* the PyMutex inside _thread.lock (and 3.14+ _thread.RLock) */
    bool rlock_is_pymutex;        /* 3.14+: RLock parks on its PyMutex; 3.13: a PyThread semaphore */
    uint64_t rlock_owner;         /* 3.14+: the owner's thread ident, from the RLock's PyMutex (0: none) */
    uint64_t tp_flags_inline_values;
    uint8_t dk_log2_index_bytes, dk_kind, dk_nentries, dk_indices, dk_kind_split, dk_entry_size;
    uint8_t values_valid, values_array;
    uint8_t park_addr_before_sem, park_arg_before_sem, mutex_entry_handed_off;
    uint64_t mutex_fair_ns;       /* mutex_entry.time_to_be_fair is the acquisition's start plus this */
    uint8_t spin_max;             /* yields before a PyMutex parks (0: the build does not spin) */
    bool spin_rereads;            /* 3.15: the spinner re-reads the lock and may take it early */
    uint8_t tc_entry_sequence, tc_entry_name; /* a type cache entry's seqlock and name (version at 0) */
    uint64_t tp_version_tag;      /* PyTypeObject.tp_version_tag */
    uint8_t boot_handle_ready, boot_func, method_self; /* a new thread's bootstrap state (layout.c) */
};
/* Fills `l` for the interpreter whose _Py_DebugOffsets are at `dbg`; false (and `l` zeroed) for a
 * minor version we do not know, a table that is not one we know (its fingerprint), or offsets that do
 * not add up. */
FTP_HIDDEN bool ftp_layout_load(struct ftp_layout *l, const uint64_t *dbg, uint64_t version, bool free_threaded);
/* The fingerprint ftp_layout_load looks up for this table, and the table's length in words for its minor
 * version (both 0: a minor version without a word table). */
FTP_HIDDEN uint64_t ftp_layout_fingerprint(const uint64_t *dbg, uint64_t version, unsigned *length);
/* The interpreter's static type objects, as read in place (or copied, by a test: type_addr then says
 * where PyType_Type was). */
struct ftp_layout_types {
    const uint8_t *type, *code, *str, *bytes; /* PyType_Type, PyCode_Type, PyUnicode_Type, PyBytes_Type */
    uintptr_t type_addr;
};
/* Checks the facts a loaded layout assumes and the tables do not carry against those type objects;
 * false (and `l` zeroed) when one does not hold. */
FTP_HIDDEN bool ftp_layout_check_types(struct ftp_layout *l, const struct ftp_layout_types *types);


#endif
