/* The threading.Thread name of a thread, for its THREAD record: self._name of its Thread object, read
 * through the instance's inline values and its type's shared keys, with safe reads only (the object
 * may be another thread's, or gone by the thread's end). The interpreter's layout is python.c's. */
#include <string.h>

#include "python.h"
#include "thread_name.h"

#define L (&ftp_state.py.lay)

static bool read_ptr(uintptr_t addr, uintptr_t *out) { return ftp_safe_read(out, addr, sizeof *out); }

/* A str we may not read directly (another object's attribute): ASCII only, through safe reads. */
static size_t copy_ascii_safe(uintptr_t str, char *out, size_t cap)
{
    uint32_t state;
    int64_t length;
    if (!ftp_safe_read(&state, str + L->str_state, sizeof state) ||
        !ftp_safe_read(&length, str + L->str_length, sizeof length))
        return 0;
    if (!((state >> L->str_compact_shift) & 1) || !((state >> L->str_ascii_shift) & 1) || length <= 0) /* compact ASCII only */
        return 0;
    size_t n = (size_t)length < cap ? (size_t)length : cap;
    return ftp_safe_read(out, str + L->str_ascii_size, n) ? n : 0;
}

static bool str_equals(uintptr_t str, const char *want)
{
    char buf[32];
    size_t len = strlen(want);
    return copy_ascii_safe(str, buf, sizeof buf) == len && memcmp(buf, want, len) == 0;
}

/* self._name of a threading.Thread, through the instance's inline values and its type's shared keys. */
static size_t thread_object_name(uintptr_t self, char *out, size_t cap)
{
    uintptr_t type, keys, basicsize, flags, nentries, name_obj;
    uint8_t valid, log2_index_bytes, kind;
    if (!read_ptr(self + L->ob_type, &type) || !read_ptr(type + L->tp_flags, &flags) ||
        !(flags & L->tp_flags_inline_values) || !read_ptr(type + L->tp_basicsize, &basicsize) || basicsize > 4096 ||
        !read_ptr(type + L->ht_cached_keys, &keys) || !keys ||
        !ftp_safe_read(&valid, self + basicsize + L->values_valid, 1) || !valid ||
        !ftp_safe_read(&log2_index_bytes, keys + L->dk_log2_index_bytes, 1) || log2_index_bytes > 20 ||
        !ftp_safe_read(&kind, keys + L->dk_kind, 1) || kind != L->dk_kind_split ||
        !read_ptr(keys + L->dk_nentries, &nentries) || nentries > 256)
        return 0;
    uintptr_t entries = keys + L->dk_indices + ((uintptr_t)1 << log2_index_bytes);
    for (uintptr_t i = 0; i < nentries; i++) {
        uintptr_t key;
        if (!read_ptr(entries + i * L->dk_entry_size, &key))
            return 0;
        if (key && str_equals(key, "_name")) {
            if (!read_ptr(self + basicsize + L->values_array + i * 8, &name_obj) || !name_obj)
                return 0;
            return copy_ascii_safe(name_obj, out, cap);
        }
    }
    return 0;
}

size_t ftp_thread_name_read(struct ftp_thread *t, char *out, size_t cap)
{
    struct ftp_python *py = &ftp_state.py;
    if (!py->stacks || !__atomic_load_n(&py->ready, __ATOMIC_ACQUIRE))
        return 0;
    uintptr_t self = ftp_python_thread_object();
    if (self)
        return thread_object_name(self, out, cap);
    if (t->tid == ftp_state.pid && ftp_python_tstate()) {
        memcpy(out, "MainThread", 10 < cap ? 10 : cap);
        return 10 < cap ? 10 : cap;
    }
    /* Before its first frame, or at its end: the Thread object its bootstrap was for, if it is still
     * an object of the same type (safe reads: it may be gone by the thread's end). */
    uintptr_t type = 0;
    if (t->boot_thread && ftp_safe_read(&type, t->boot_thread + L->ob_type, sizeof type) && type == t->boot_thread_type)
        return thread_object_name(t->boot_thread, out, cap);
    return 0;
}
