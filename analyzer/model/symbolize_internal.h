/* The symbolizer's insides, shared by its files: symbolize.c (modules, lookups, inlined frames, the
 * caches), symbolize_debuginfo.c (where debug information is looked for) and symbolize_field.c (which
 * member of a struct an address is). */
#ifndef FTPROF_ANALYZER_SYMBOLIZE_INTERNAL_H
#define FTPROF_ANALYZER_SYMBOLIZE_INTERNAL_H

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symbolize.h"

/* Inline chains deeper than this are cut at the outer end; real code rarely nests past 10. */
#define SYM_MAX_CHAIN 32
/* Nesting of scopes (inlined subroutines and lexical blocks) followed inside one function. */
#define SYM_MAX_SCOPES 128

struct sym_module_state {
    uint64_t base, start, end;
    const char *path;      /* interned; "" when the recorder had no name */
    const char *label;     /* basename of path, the "module" of "module+0xoffset" */
    Dwfl_Module *dwmod;    /* NULL: file missing, unreadable or not the recorded build */
};

struct sym_cache_slot {
    uint64_t pc;
    uint32_t first;        /* index into frames */
    uint16_t count;
    bool used;
};

/* One address range of a function defined in a CU (a function may have several, e.g. a .cold part). */
struct sym_func_range {
    Dwarf_Addr low, high;
    Dwarf_Die die;
};

/* The functions of one CU, sorted by low address; built on the first pc that falls in the CU. */
struct sym_cu_index {
    Dwfl_Module *mod;
    Dwarf_Off cu_offset;
    struct sym_func_range *ranges;
    size_t count;
};

/* A C type found by name in one module's DWARF (or known to be missing there). */
struct sym_type_slot {
    Dwfl_Module *mod;
    const char *name; /* interned */
    bool found;
    Dwarf_Die die;
};
#define SYM_TYPE_SLOTS 8

struct sym_intern_slot {
    char *str;
    uint64_t hash;
};

struct symbolizer {
    Dwfl *dwfl;
    Dwfl_Callbacks callbacks;
    char *debuginfo_path;

    struct sym_module_state *modules; /* sorted by start */
    size_t module_count;

    struct sym_cache_slot *cache;
    size_t cache_cap, cache_used; /* cap is a power of two */

    struct sym_frame *frames;
    size_t frame_count, frame_cap;

    struct sym_intern_slot *strings;
    size_t string_cap, string_used;

    struct sym_cu_index **cus; /* open addressing on (module, CU offset) */
    size_t cu_cap, cu_used;

    struct sym_type_slot types[SYM_TYPE_SLOTS]; /* symbolizer_field's type lookups, found or not */
    size_t type_count;

    bool out_of_memory; /* from then on, lookups still answer but stop caching */
};

/* The function name of a frame nothing could be said about; also what sym_intern answers out of memory. */
extern const char sym_unknown[];

/* A copy of str owned by the symbolizer, the same pointer for equal strings (sym_unknown when out of
 * memory). */
const char *sym_intern(struct symbolizer *s, const char *str);

/* symbolize_debuginfo.c: libdwfl's search path for the recorded modules (malloc'ed; NULL: libdwfl's
 * default), and debuginfod's time limits when DEBUGINFOD_URLS is set. */
char *sym_debuginfo_path(const struct sym_module *modules, size_t n);
void sym_limit_debuginfod(void);

#endif
