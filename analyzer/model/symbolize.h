/* Native symbolization with elfutils libdwfl, from the module map the recorder wrote (paths, load
 * biases, build ids). Never fails a lookup: without debug information a frame reads "module+0xoffset". */
#ifndef FTPROF_ANALYZER_SYMBOLIZE_H
#define FTPROF_ANALYZER_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sym_module {
    uint64_t base;          /* load bias */
    uint64_t start, end;    /* executable mapping range in the recorded process */
    const char *path;
    const uint8_t *build_id;
    size_t build_id_len;
};

struct sym_frame {
    const char *function;   /* owned by the symbolizer; valid until symbolizer_free() */
    const char *file;       /* source file, or the module path when unknown; may be NULL */
    int line;               /* 0 when unknown */
    bool inlined;           /* this frame was inlined into the next one */
};

struct symbolizer;

struct symbolizer *symbolizer_new(const struct sym_module *modules, size_t n);
/* Frames for the code at `pc` (pass return address - 1 for callers), innermost inlined frame first.
 * Returns how many were written (at least 1, at most max). Results are cached per pc. */
size_t symbolizer_lookup(struct symbolizer *s, uint64_t pc, struct sym_frame *out, size_t max);
/* Names the member at byte `offset` of the C type `type_name` (a struct or typedef in the debug
 * information of the recorded module that holds address `anchor`), as ".a.b[3].c" into out.
 * Stops at the interpreter's lock types (PyMutex and the like) rather than naming their bits.
 * Returns false, leaving out empty, without matching debug information or such a member. */
bool symbolizer_field(struct symbolizer *s, uint64_t anchor, const char *type_name, uint64_t offset, char *out,
                      size_t cap);
/* The same, and whether the field is (inside) one of the interpreter's or libc's lock types (PyMutex,
 * _PySeqLock, pthread_mutex_t...): a named address that is no lock says so here. */
bool symbolizer_field_lock(struct symbolizer *s, uint64_t anchor, const char *type_name, uint64_t offset, char *out,
                           size_t cap, bool *on_lock);
void symbolizer_free(struct symbolizer *s);

#endif
