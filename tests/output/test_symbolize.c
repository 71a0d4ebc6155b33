/* The symbolizer against this very program: it records its own module map the way the recorder does
 * (dl_iterate_phdr: load bias, executable PT_LOAD range, NT_GNU_BUILD_ID), takes return addresses
 * inside known functions and checks names, source files and lines, inlined frames included. Then the
 * fallbacks: a stripped copy of this program (argv[1]), a build id that does not match, a missing file
 * and addresses outside every module must all give "module+0xoffset" or "[unknown]", never a name.
 * Built with -g -O1 so the inlined frame exists and line numbers stay close to the source. */
#include "symbolize.h"

#include <elf.h>
#include <limits.h>
#include <pthread.h>
#include <link.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

#if defined(__GNUC__) && !defined(__clang__)
#define SYM_TEST_NOINLINE __attribute__((noinline, noipa))
#else
#define SYM_TEST_NOINLINE __attribute__((noinline))
#endif


/* ---- the code whose addresses get symbolized; the *_line globals pin the expected lines ---- */

static volatile uint64_t symtest_sink;
static int symtest_middle_call_line, symtest_inlined_call_line, symtest_outer_call_line;

static const int symtest_leaf_line = __LINE__; SYM_TEST_NOINLINE static uintptr_t symtest_leaf(void) {
    uintptr_t ra = (uintptr_t)__builtin_return_address(0);
    __asm__ volatile("" ::: "memory");
    return ra;
}

SYM_TEST_NOINLINE static uintptr_t symtest_middle(void)
{
    uintptr_t ra = symtest_leaf(); symtest_middle_call_line = __LINE__;
    symtest_sink += ra; /* keeps the call above from becoming a tail call */
    return ra;
}

static inline __attribute__((always_inline)) uintptr_t symtest_inlined(int x)
{
    uintptr_t ra = symtest_leaf(); symtest_inlined_call_line = __LINE__;
    symtest_sink += (uint64_t)x;
    return ra;
}

SYM_TEST_NOINLINE static uintptr_t symtest_outer(int x)
{
    uintptr_t ra = symtest_inlined(x + 1); symtest_outer_call_line = __LINE__;
    symtest_sink += ra;
    return ra;
}

/* In the shared library test_symbolize_lib.c. */
uintptr_t symtest_lib_call(void);
extern int symtest_lib_inlined_line, symtest_lib_call_line;

/* ---- the module map, recorded as the recorder does it ---- */

struct symtest_map {
    struct sym_module modules[64];
    char paths[64][PATH_MAX];
    uint8_t build_ids[64][64];
    size_t count;
};

static size_t symtest_find_build_id(const struct dl_phdr_info *info, const ElfW(Phdr) *ph, uint8_t *out, size_t cap)
{
    const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
    const char *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
        const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)p;
        const char *name = p + sizeof *note;
        const uint8_t *desc = (const uint8_t *)name + ((note->n_namesz + 3) & ~3u);
        if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
            note->n_descsz <= cap) {
            memcpy(out, desc, note->n_descsz);
            return note->n_descsz;
        }
        p = (const char *)desc + ((note->n_descsz + 3) & ~3u);
    }
    return 0;
}

static int symtest_record_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct symtest_map *map = arg;
    if (map->count == sizeof map->modules / sizeof map->modules[0])
        return 1;
    struct sym_module *m = &map->modules[map->count];
    char *path = map->paths[map->count];
    if (info->dlpi_name && info->dlpi_name[0]) {
        snprintf(path, PATH_MAX, "%s", info->dlpi_name);
    } else {
        ssize_t n = readlink("/proc/self/exe", path, PATH_MAX - 1);
        path[n > 0 ? n : 0] = '\0';
    }
    *m = (struct sym_module){ .base = info->dlpi_addr, .path = path, .build_id = map->build_ids[map->count] };
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            m->start = info->dlpi_addr + ph->p_vaddr;
            m->end = m->start + ph->p_memsz;
        } else if (ph->p_type == PT_NOTE && m->build_id_len == 0) {
            m->build_id_len = symtest_find_build_id(info, ph, map->build_ids[map->count], sizeof map->build_ids[0]);
        }
    }
    if (m->end > m->start)
        map->count++;
    return 0;
}

static struct sym_module *symtest_module_of(struct symtest_map *map, uintptr_t pc)
{
    for (size_t i = 0; i < map->count; i++)
        if (pc >= map->modules[i].start && pc < map->modules[i].end)
            return &map->modules[i];
    return NULL;
}

static const char *symtest_basename(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

static void symtest_dump(const char *what, const struct sym_frame *f, size_t n)
{
    fprintf(stderr, "  %s:\n", what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "    #%zu %s (%s:%d)%s\n", i, f[i].function, f[i].file ? f[i].file : "-", f[i].line,
                f[i].inlined ? " [inlined]" : "");
}

/* The frame's file is this test's source file. */
static bool symtest_is_this_file(const struct sym_frame *f)
{
    return f->file && strcmp(symtest_basename(f->file), "test_symbolize.c") == 0;
}

static void symtest_expect_fallback(const char *what, const struct sym_frame *f, size_t n, const char *module,
                                    uint64_t offset)
{
    char expected[PATH_MAX + 32];
    snprintf(expected, sizeof expected, "%s+0x%llx", module, (unsigned long long)offset);
    CHECK(n == 1, "%s: %zu frames", what, n);
    CHECK(strcmp(f[0].function, expected) == 0, "%s: got '%s', expected '%s'", what, f[0].function, expected);
    CHECK(f[0].line == 0, "%s: line %d", what, f[0].line);
    CHECK(!f[0].inlined, "%s: marked inlined", what);
}

/* ---- the checks ---- */

static void symtest_debug_info(struct symtest_map *map, uintptr_t middle_ra, uintptr_t outer_ra, uintptr_t lib_ra)
{
    struct symbolizer *s = symbolizer_new(map->modules, map->count);
    CHECK(s != NULL, "symbolizer_new failed");
    if (!s)
        return;
    struct sym_frame f[16];

    /* A function's first instruction: its own name and the line it is defined on. */
    size_t n = symbolizer_lookup(s, (uintptr_t)&symtest_leaf, f, 16);
    CHECK(n == 1 && strcmp(f[0].function, "symtest_leaf") == 0, "leaf entry named '%s'", f[0].function);
    CHECK(symtest_is_this_file(&f[0]), "leaf entry file %s", f[0].file ? f[0].file : "NULL");
    CHECK(f[0].line >= symtest_leaf_line && f[0].line <= symtest_leaf_line + 1, "leaf entry line %d, defined at %d",
          f[0].line, symtest_leaf_line);
    if (failures)
        symtest_dump("leaf entry", f, n);

    /* A return address, as the recorder stores them: the caller, at the line of the call. */
    int before = failures;
    n = symbolizer_lookup(s, middle_ra - 1, f, 16);
    CHECK(n == 1, "middle: %zu frames", n);
    CHECK(strcmp(f[0].function, "symtest_middle") == 0, "middle named '%s'", f[0].function);
    CHECK(symtest_is_this_file(&f[0]), "middle file %s", f[0].file ? f[0].file : "NULL");
    CHECK(f[0].line == symtest_middle_call_line, "middle line %d, call at %d", f[0].line, symtest_middle_call_line);
    CHECK(!f[0].inlined, "middle marked inlined");
    if (failures != before)
        symtest_dump("middle", f, n);

    /* Inside inlined code: the inlined function first, at the line inside it, then the function it was
     * inlined into, at the call site. */
    before = failures;
    n = symbolizer_lookup(s, outer_ra - 1, f, 16);
    CHECK(n == 2, "outer: %zu frames", n);
    if (n == 2) {
        CHECK(strcmp(f[0].function, "symtest_inlined") == 0, "inner frame '%s'", f[0].function);
        CHECK(f[0].inlined, "inner frame not marked inlined");
        CHECK(symtest_is_this_file(&f[0]), "inner file %s", f[0].file ? f[0].file : "NULL");
        CHECK(f[0].line == symtest_inlined_call_line, "inner line %d, expected %d", f[0].line,
              symtest_inlined_call_line);
        CHECK(strcmp(f[1].function, "symtest_outer") == 0, "outer frame '%s'", f[1].function);
        CHECK(!f[1].inlined, "outer frame marked inlined");
        CHECK(symtest_is_this_file(&f[1]), "outer file %s", f[1].file ? f[1].file : "NULL");
        CHECK(f[1].line == symtest_outer_call_line, "outer line %d, call at %d", f[1].line, symtest_outer_call_line);
    }
    if (failures != before)
        symtest_dump("outer", f, n);

    /* The caller's max is respected: the innermost frames come first. */
    n = symbolizer_lookup(s, outer_ra - 1, f, 1);
    CHECK(n == 1 && strcmp(f[0].function, "symtest_inlined") == 0, "max=1 gave %zu frames, '%s'", n, f[0].function);

    /* Cached answers are the same answers, and the strings stay owned by the symbolizer. */
    struct sym_frame again[16];
    size_t m = symbolizer_lookup(s, middle_ra - 1, again, 16);
    CHECK(m == 1 && strcmp(again[0].function, "symtest_middle") == 0 && again[0].line == symtest_middle_call_line,
          "cached middle differs: '%s' line %d", again[0].function, again[0].line);

    /* The same inside a shared library with debug information, mapped at its own load bias. */
    before = failures;
    struct sym_module *lib = symtest_module_of(map, lib_ra);
    CHECK(lib && lib->base != 0 && strstr(lib->path, "libsymtest.so"), "libsymtest.so missing from the module map");
    n = symbolizer_lookup(s, lib_ra - 1, f, 16);
    CHECK(n == 2, "library: %zu frames", n);
    if (n == 2) {
        CHECK(strcmp(f[0].function, "symtest_lib_inlined") == 0 && f[0].inlined, "library inner frame '%s'",
              f[0].function);
        CHECK(f[0].file && strcmp(symtest_basename(f[0].file), "test_symbolize_lib.c") == 0 &&
                  f[0].line == symtest_lib_inlined_line,
              "library inner frame at %s:%d, expected line %d", f[0].file ? f[0].file : "NULL", f[0].line,
              symtest_lib_inlined_line);
        CHECK(strcmp(f[1].function, "symtest_lib_call") == 0 && !f[1].inlined, "library outer frame '%s'",
              f[1].function);
        CHECK(f[1].line == symtest_lib_call_line, "library outer line %d, call at %d", f[1].line,
              symtest_lib_call_line);
    }
    if (failures != before)
        symtest_dump("library", f, n);

    /* A shared library without debug information: named from its dynamic symbol table, located by
     * its module path, which checks the load bias of an object mapped away from zero. */
    uintptr_t getpid_pc = (uintptr_t)&getpid;
    struct sym_module *libc = symtest_module_of(map, getpid_pc);
    if (libc && libc->base != 0) {
        n = symbolizer_lookup(s, getpid_pc, f, 16);
        CHECK(strstr(f[n - 1].function, "getpid") != NULL, "libc getpid named '%s'", f[n - 1].function);
    }

    /* Addresses nobody mapped. */
    n = symbolizer_lookup(s, 0x10, f, 16);
    CHECK(n == 1 && strcmp(f[0].function, "[unknown]") == 0 && f[0].file == NULL && f[0].line == 0,
          "address 0x10 named '%s'", f[0].function);
    n = symbolizer_lookup(s, UINT64_MAX - 7, f, 16);
    CHECK(n == 1 && strcmp(f[0].function, "[unknown]") == 0, "top address named '%s'", f[0].function);

    /* What a hot report does: the same few addresses over and over. Printed, not asserted. */
    struct timespec t0, t1;
    enum { ROUNDS = 1000000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < ROUNDS; i++)
        symbolizer_lookup(s, (i & 1) ? outer_ra - 1 : middle_ra - 1, f, 16);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("cached lookup: %.1f ns\n", ns / ROUNDS);

    symbolizer_free(s);
}

/* ---- struct members by offset: a miniature of the interpreter's state ---- */

typedef struct { uint8_t _bits; } PyMutex;  /* named like the interpreter's, so the walk stops at it */
struct symtest_cache_entry { unsigned int version; void *value; };
struct symtest_types { int next_version; PyMutex mutex; struct symtest_cache_entry cache[16]; pthread_cond_t cond; };
typedef struct symtest_interp {
    void *next;
    struct symtest_types types;
    union { long as_long; struct { int low, high; } halves; } u;
    struct { PyMutex mutex; int count; }; /* an anonymous member adds no name */
    unsigned flag : 1;                     /* bit-fields are never named */
} SymtestInterp;
typedef const SymtestInterp SymtestConstInterp;
SymtestConstInterp symtest_interp_state = {0};

static void symtest_fallbacks(struct symtest_map *map, const char *stripped_path, uintptr_t middle_ra,
                              uintptr_t outer_ra)
{
    struct sym_module *self = symtest_module_of(map, (uintptr_t)&symtest_leaf);
    CHECK(self != NULL, "this program is not in its own module map");
    if (!self)
        return;
    struct sym_module saved = *self;
    struct sym_frame f[16];
    size_t n;

    /* The stripped copy: same build id, no symbols, no DWARF. */
    self->path = stripped_path;
    struct symbolizer *s = symbolizer_new(map->modules, map->count);
    n = symbolizer_lookup(s, middle_ra - 1, f, 16);
    symtest_expect_fallback("stripped middle", f, n, symtest_basename(stripped_path), middle_ra - 1 - self->base);
    CHECK(f[0].file && strcmp(f[0].file, stripped_path) == 0, "stripped file %s", f[0].file ? f[0].file : "NULL");
    n = symbolizer_lookup(s, outer_ra - 1, f, 16);
    symtest_expect_fallback("stripped inlined", f, n, symtest_basename(stripped_path), outer_ra - 1 - self->base);
    char field[64];
    CHECK(!symbolizer_field(s, (uintptr_t)&symtest_interp_state, "SymtestInterp", 0, field, sizeof field) && !field[0],
          "stripped: field '%s'", field);
    symbolizer_free(s);
    *self = saved;

    /* The right file, but not the build that ran: an offset, never a wrong name. */
    uint8_t bogus[64];
    memcpy(bogus, saved.build_id, saved.build_id_len);
    bogus[0] ^= 0xff;
    self->build_id = bogus;
    s = symbolizer_new(map->modules, map->count);
    n = symbolizer_lookup(s, middle_ra - 1, f, 16);
    symtest_expect_fallback("bogus build id", f, n, symtest_basename(saved.path), middle_ra - 1 - self->base);
    CHECK(!symbolizer_field(s, (uintptr_t)&symtest_interp_state, "SymtestInterp", 0, field, sizeof field) && !field[0],
          "bogus build id: field '%s'", field);
    symbolizer_free(s);
    *self = saved;

    /* A module whose file is gone, next to an address no module covers. */
    struct sym_module gone[] = {
        { .base = 0x100000, .start = 0x101000, .end = 0x102000, .path = "/nonexistent/ftprof-test/libgone.so" },
        { .base = 0x200000, .start = 0x201000, .end = 0x202000, .path = "[vdso]" },
    };
    s = symbolizer_new(gone, 2);
    n = symbolizer_lookup(s, 0x101234, f, 16);
    symtest_expect_fallback("missing file", f, n, "libgone.so", 0x1234);
    CHECK(f[0].file && strcmp(f[0].file, gone[0].path) == 0, "missing file's path %s", f[0].file ? f[0].file : "NULL");
    n = symbolizer_lookup(s, 0x201010, f, 16);
    symtest_expect_fallback("vdso", f, n, "[vdso]", 0x1010);
    n = symbolizer_lookup(s, 0x102000, f, 16);
    CHECK(n == 1 && strcmp(f[0].function, "[unknown]") == 0, "end of range named '%s'", f[0].function);
    symbolizer_free(s);

    /* No module map at all (a recording made without FTPROF_NATIVE). */
    s = symbolizer_new(NULL, 0);
    n = symbolizer_lookup(s, middle_ra - 1, f, 16);
    CHECK(n == 1 && strcmp(f[0].function, "[unknown]") == 0, "empty map named '%s'", f[0].function);
    symbolizer_free(s);
}

static void symtest_fields(struct symtest_map *map)
{
    struct symbolizer *s = symbolizer_new(map->modules, map->count);
    uintptr_t anchor = (uintptr_t)&symtest_interp_state;
    char out[128];
    static const struct { size_t offset; const char *path; } cases[] = {
        { offsetof(SymtestInterp, next), ".next" },
        { offsetof(SymtestInterp, types.mutex), ".types.mutex" },
        { offsetof(SymtestInterp, types.cache[5].value) + 3, ".types.cache[5].value" },
        { offsetof(SymtestInterp, u.halves.high), ".u.as_long" }, /* a union: its first member that covers it */
        { offsetof(SymtestInterp, mutex), ".mutex" },
        { offsetof(SymtestInterp, count), ".count" },
        { offsetof(SymtestInterp, types.cond) + 8, ".types.cond" }, /* libc's lock types are named whole too */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool ok = symbolizer_field(s, anchor, "SymtestInterp", cases[i].offset, out, sizeof out);
        CHECK(ok && strcmp(out, cases[i].path) == 0, "offset %zu: '%s', expected '%s'", cases[i].offset, out,
              cases[i].path);
    }
    /* By struct tag, through a const typedef, and the padding after types.mutex names the struct. */
    CHECK(symbolizer_field(s, anchor, "symtest_interp", offsetof(SymtestInterp, types.next_version), out, sizeof out) &&
          strcmp(out, ".types.next_version") == 0, "struct tag: '%s'", out);
    CHECK(symbolizer_field(s, anchor, "SymtestConstInterp", offsetof(SymtestInterp, types.mutex), out, sizeof out) &&
          strcmp(out, ".types.mutex") == 0, "const typedef: '%s'", out);
    CHECK(symbolizer_field(s, anchor, "SymtestInterp", offsetof(SymtestInterp, types.mutex) + 1, out, sizeof out) &&
          strcmp(out, ".types") == 0, "padding: '%s'", out);
    /* Whether the field is a lock: what a spin's register named is believed only if it is. */
    bool on_lock = false;
    CHECK(symbolizer_field_lock(s, anchor, "SymtestInterp", offsetof(SymtestInterp, types.mutex), out, sizeof out,
                                &on_lock) && on_lock, "types.mutex is a lock: '%s'", out);
    CHECK(symbolizer_field_lock(s, anchor, "SymtestInterp", offsetof(SymtestInterp, types.cache[5].value), out,
                                sizeof out, &on_lock) && !on_lock, "a cache entry's value is no lock: '%s'", out);
    CHECK(symbolizer_field_lock(s, anchor, "SymtestInterp", offsetof(SymtestInterp, types.mutex) + 1, out, sizeof out,
                                &on_lock) && !on_lock, "the padding after a lock is none: '%s'", out);
    /* Nothing to name: past the end, an unknown type, an address in no module, a tiny buffer. */
    CHECK(!symbolizer_field(s, anchor, "SymtestInterp", sizeof(SymtestInterp) + 8, out, sizeof out) && !out[0],
          "past the end: '%s'", out);
    CHECK(!symbolizer_field(s, anchor, "NoSuchType", 0, out, sizeof out) && !out[0], "unknown type: '%s'", out);
    CHECK(!symbolizer_field(s, 16, "SymtestInterp", 0, out, sizeof out), "address 16 is in a module");
    CHECK(symbolizer_field(s, anchor, "SymtestInterp", offsetof(SymtestInterp, types.cache[5].value), out, 8) &&
          strlen(out) == 7, "truncated: '%s'", out);
    symbolizer_free(s);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s STRIPPED_COPY_OF_THIS_PROGRAM\n", argv[0]);
        return 2;
    }
    static struct symtest_map map;
    dl_iterate_phdr(symtest_record_module, &map);

    uintptr_t middle_ra = symtest_middle();
    uintptr_t outer_ra = symtest_outer(41);
    uintptr_t lib_ra = symtest_lib_call();

    symtest_debug_info(&map, middle_ra, outer_ra, lib_ra);
    symtest_fallbacks(&map, argv[1], middle_ra, outer_ra);
    symtest_fields(&map);

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    puts("symbolize: all checks passed");
    return 0;
}
