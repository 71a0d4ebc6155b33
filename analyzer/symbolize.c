/* Native symbolization of recorded return addresses with elfutils libdwfl.
 *
 * The recording's module map (path, load bias, executable range, build id) is replayed into an
 * offline Dwfl. A module is trusted only when its file still exists and carries the recorded build
 * id: a rebuilt or upgraded library would otherwise give confidently wrong names, so any doubt gives
 * "module+0xoffset" instead. Results are cached per pc because a report looks up the same few
 * thousand return addresses over and over. Not thread-safe: one symbolizer per analyzing thread. */
#include "symbolize.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Inline chains deeper than this are cut at the outer end; real code rarely nests past 10. */
#define SYM_MAX_CHAIN 32

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

    bool out_of_memory; /* from then on, lookups still answer but stop caching */
};

static const char sym_unknown[] = "[unknown]";

static uint64_t sym_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t sym_hash_pc(uint64_t pc)
{
    /* Return addresses share high bits and alignment; a multiplicative mix spreads the low ones. */
    pc ^= pc >> 33;
    pc *= 0xff51afd7ed558ccdull;
    pc ^= pc >> 33;
    return pc;
}

static bool sym_strings_grow(struct symbolizer *s)
{
    size_t cap = s->string_cap ? s->string_cap * 2 : 256;
    struct sym_intern_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < s->string_cap; i++) {
        if (!s->strings[i].str)
            continue;
        size_t j = s->strings[i].hash & (cap - 1);
        while (slots[j].str)
            j = (j + 1) & (cap - 1);
        slots[j] = s->strings[i];
    }
    free(s->strings);
    s->strings = slots;
    s->string_cap = cap;
    return true;
}

/* Frames hand out string pointers that must outlive the Dwfl's own buffers and be shared between
 * the many cache entries naming the same function, so every string is copied once, here. */
static const char *sym_intern(struct symbolizer *s, const char *str)
{
    if (!str)
        return NULL;
    if ((s->string_used + 1) * 4 > s->string_cap * 3 && !sym_strings_grow(s)) {
        s->out_of_memory = true;
        return sym_unknown;
    }
    size_t len = strlen(str);
    uint64_t h = sym_hash_bytes(str, len);
    size_t j = h & (s->string_cap - 1);
    while (s->strings[j].str) {
        if (s->strings[j].hash == h && strcmp(s->strings[j].str, str) == 0)
            return s->strings[j].str;
        j = (j + 1) & (s->string_cap - 1);
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        s->out_of_memory = true;
        return sym_unknown;
    }
    memcpy(copy, str, len + 1);
    s->strings[j].str = copy;
    s->strings[j].hash = h;
    s->string_used++;
    return copy;
}

static int sym_module_cmp(const void *a, const void *b)
{
    const struct sym_module_state *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static const struct sym_module_state *sym_find_module(const struct symbolizer *s, uint64_t pc)
{
    size_t lo = 0, hi = s->module_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->modules[mid].start <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Ranges may nest when a recording lists a module twice; the closest start wins. */
    for (size_t i = lo; i-- > 0;) {
        if (pc < s->modules[i].end)
            return &s->modules[i];
        if (lo - i > 4)
            break;
    }
    return NULL;
}

static bool sym_build_id_matches(Dwfl_Module *mod, const struct sym_module *rec)
{
    if (rec->build_id_len == 0)
        return true; /* nothing recorded to check against: trust the path */
    const unsigned char *bits;
    GElf_Addr vaddr;
    int len = dwfl_module_build_id(mod, &bits, &vaddr);
    return len > 0 && (size_t)len == rec->build_id_len && memcmp(bits, rec->build_id, (size_t)len) == 0;
}

struct symbolizer *symbolizer_new(const struct sym_module *modules, size_t n)
{
    struct symbolizer *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (!sym_strings_grow(s))
        goto fail;
    s->modules = calloc(n ? n : 1, sizeof *s->modules);
    if (!s->modules)
        goto fail;

    s->callbacks.find_elf = dwfl_build_id_find_elf;
    s->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
    s->callbacks.debuginfo_path = &s->debuginfo_path; /* NULL: the default search path */
    s->dwfl = dwfl_begin(&s->callbacks);
    if (s->dwfl)
        dwfl_report_begin(s->dwfl);

    for (size_t i = 0; i < n; i++) {
        const struct sym_module *rec = &modules[i];
        if (rec->end <= rec->start)
            continue;
        struct sym_module_state *m = &s->modules[s->module_count++];
        m->base = rec->base;
        m->start = rec->start;
        m->end = rec->end;
        m->path = sym_intern(s, rec->path ? rec->path : "");
        const char *slash = strrchr(m->path, '/');
        m->label = slash ? slash + 1 : m->path;
        if (!*m->label)
            m->label = "[anonymous]";
        /* Only real files: "[vdso]" and other pseudo names cannot be opened and are not worth a try. */
        if (!s->dwfl || m->path[0] != '/')
            continue;
        /* add_p_vaddr: the recorded base is the load bias (dlpi_addr), not the address of the first
         * segment; the two differ for objects whose first PT_LOAD has a non-zero p_vaddr. */
        Dwfl_Module *mod = dwfl_report_elf(s->dwfl, m->path, m->path, -1, rec->base, true);
        if (mod && sym_build_id_matches(mod, rec))
            m->dwmod = mod;
    }
    if (s->dwfl)
        dwfl_report_end(s->dwfl, NULL, NULL);
    qsort(s->modules, s->module_count, sizeof *s->modules, sym_module_cmp);
    return s;

fail:
    symbolizer_free(s);
    return NULL;
}

struct sym_chain {
    struct sym_frame frames[SYM_MAX_CHAIN];
    size_t count;
};

static void sym_chain_push(struct sym_chain *c, const char *function, const char *file, int line, bool inlined)
{
    if (c->count == SYM_MAX_CHAIN)
        return;
    c->frames[c->count++] = (struct sym_frame){ .function = function, .file = file, .line = line, .inlined = inlined };
}

static void sym_fallback(struct symbolizer *s, const struct sym_module_state *m, uint64_t pc, struct sym_chain *c)
{
    char name[512];
    snprintf(name, sizeof name, "%s+0x%" PRIx64, m->label, pc - m->base);
    sym_chain_push(c, sym_intern(s, name), m->path[0] ? m->path : NULL, 0, false);
}

/* The file named by an inlined subroutine's DW_AT_call_file, resolved in its CU's file table. */
static const char *sym_call_file(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    Dwarf_Word index;
    if (!dwarf_attr(die, DW_AT_call_file, &attr) || dwarf_formudata(&attr, &index) != 0)
        return NULL;
    Dwarf_Die cu;
    if (!dwarf_diecu(die, &cu, NULL, NULL))
        return NULL;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_getsrcfiles(&cu, &files, &nfiles) != 0 || index >= nfiles)
        return NULL;
    return dwarf_filesrc(files, index, NULL, NULL);
}

static int sym_call_line(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    Dwarf_Word line;
    if (!dwarf_attr(die, DW_AT_call_line, &attr) || dwarf_formudata(&attr, &line) != 0 || line > INT32_MAX)
        return 0;
    return (int)line;
}

/* Walks the concrete DIE tree from the innermost scope at pc out to its subprogram: each inlined
 * subroutine is a frame located where pc is (or where the next inner one was inlined), and its call
 * site locates the frame around it. Returns false when there is no DWARF for pc. */
static bool sym_inline_chain(struct symbolizer *s, Dwfl_Module *mod, uint64_t pc, const char *symbol,
                             const char *file, int line, struct sym_chain *c)
{
    Dwarf_Addr bias;
    Dwarf_Die *cudie = dwfl_module_addrdie(mod, pc, &bias);
    if (!cudie)
        return false;
    Dwarf_Die *scopes = NULL;
    int nscopes = dwarf_getscopes(cudie, pc - bias, &scopes);
    if (nscopes <= 0) {
        free(scopes);
        return false;
    }
    /* dwarf_getscopes continues an inlined instance with its abstract definition's scopes; the
     * concrete parents of the innermost scope are what tells who it was inlined into. */
    Dwarf_Die innermost = scopes[0];
    free(scopes);
    scopes = NULL;
    nscopes = dwarf_getscopes_die(&innermost, &scopes);
    if (nscopes <= 0) {
        free(scopes);
        return false;
    }

    bool reached_subprogram = false;
    for (int i = 0; i < nscopes && !reached_subprogram; i++) {
        Dwarf_Die *die = &scopes[i];
        int tag = dwarf_tag(die);
        if (tag == DW_TAG_inlined_subroutine) {
            const char *name = dwarf_diename(die);
            sym_chain_push(c, sym_intern(s, name ? name : "[inlined]"), sym_intern(s, file), line, true);
            file = sym_call_file(die);
            line = sym_call_line(die);
        } else if (tag == DW_TAG_subprogram) {
            /* The symbol table names what a linker and other tools call it (e.g. "foo.cold"). */
            const char *name = symbol ? symbol : dwarf_diename(die);
            sym_chain_push(c, sym_intern(s, name ? name : "[unnamed]"), sym_intern(s, file), line, false);
            reached_subprogram = true;
        }
    }
    free(scopes);
    if (!reached_subprogram) {
        c->count = 0;
        return false;
    }
    return true;
}

static void sym_resolve(struct symbolizer *s, uint64_t pc, struct sym_chain *c)
{
    const struct sym_module_state *m = sym_find_module(s, pc);
    if (!m) {
        sym_chain_push(c, sym_unknown, NULL, 0, false);
        return;
    }
    if (!m->dwmod) {
        sym_fallback(s, m, pc, c);
        return;
    }

    GElf_Off offset;
    GElf_Sym sym;
    const char *symbol = dwfl_module_addrinfo(m->dwmod, pc, &offset, &sym, NULL, NULL, NULL);

    const char *file = NULL;
    int line = 0;
    Dwfl_Line *lineinfo = dwfl_module_getsrc(m->dwmod, pc);
    if (lineinfo)
        file = dwfl_lineinfo(lineinfo, NULL, &line, NULL, NULL, NULL);

    if (sym_inline_chain(s, m->dwmod, pc, symbol, file, line, c))
        return;
    if (!symbol) {
        sym_fallback(s, m, pc, c);
        return;
    }
    sym_chain_push(c, sym_intern(s, symbol), sym_intern(s, file ? file : m->path), file ? line : 0, false);
}

static bool sym_cache_grow(struct symbolizer *s)
{
    size_t cap = s->cache_cap ? s->cache_cap * 2 : 1024;
    struct sym_cache_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < s->cache_cap; i++) {
        if (!s->cache[i].used)
            continue;
        size_t j = sym_hash_pc(s->cache[i].pc) & (cap - 1);
        while (slots[j].used)
            j = (j + 1) & (cap - 1);
        slots[j] = s->cache[i];
    }
    free(s->cache);
    s->cache = slots;
    s->cache_cap = cap;
    return true;
}

static void sym_cache_put(struct symbolizer *s, uint64_t pc, const struct sym_chain *c)
{
    if (s->out_of_memory)
        return;
    if ((s->cache_used + 1) * 4 > s->cache_cap * 3 && !sym_cache_grow(s))
        goto oom;
    if (s->frame_count + c->count > s->frame_cap) {
        size_t cap = s->frame_cap ? s->frame_cap * 2 : 1024;
        while (cap < s->frame_count + c->count)
            cap *= 2;
        if (cap > UINT32_MAX)
            goto oom;
        struct sym_frame *frames = realloc(s->frames, cap * sizeof *frames);
        if (!frames)
            goto oom;
        s->frames = frames;
        s->frame_cap = cap;
    }
    size_t j = sym_hash_pc(pc) & (s->cache_cap - 1);
    while (s->cache[j].used)
        j = (j + 1) & (s->cache_cap - 1);
    s->cache[j] = (struct sym_cache_slot){ .pc = pc, .first = (uint32_t)s->frame_count,
                                           .count = (uint16_t)c->count, .used = true };
    memcpy(&s->frames[s->frame_count], c->frames, c->count * sizeof *c->frames);
    s->frame_count += c->count;
    s->cache_used++;
    return;
oom:
    s->out_of_memory = true;
}

static const struct sym_cache_slot *sym_cache_get(const struct symbolizer *s, uint64_t pc)
{
    if (!s->cache_cap)
        return NULL;
    size_t j = sym_hash_pc(pc) & (s->cache_cap - 1);
    while (s->cache[j].used) {
        if (s->cache[j].pc == pc)
            return &s->cache[j];
        j = (j + 1) & (s->cache_cap - 1);
    }
    return NULL;
}

size_t symbolizer_lookup(struct symbolizer *s, uint64_t pc, struct sym_frame *out, size_t max)
{
    if (max == 0)
        return 0;
    if (!s) {
        out[0] = (struct sym_frame){ .function = sym_unknown };
        return 1;
    }
    const struct sym_cache_slot *hit = sym_cache_get(s, pc);
    if (hit) {
        size_t n = hit->count < max ? hit->count : max;
        memcpy(out, &s->frames[hit->first], n * sizeof *out);
        return n;
    }

    struct sym_chain chain = { .count = 0 };
    sym_resolve(s, pc, &chain);
    if (chain.count == 0)
        sym_chain_push(&chain, sym_unknown, NULL, 0, false);
    sym_cache_put(s, pc, &chain);

    size_t n = chain.count < max ? chain.count : max;
    memcpy(out, chain.frames, n * sizeof *out);
    return n;
}

void symbolizer_free(struct symbolizer *s)
{
    if (!s)
        return;
    if (s->dwfl)
        dwfl_end(s->dwfl);
    for (size_t i = 0; i < s->string_cap; i++)
        free(s->strings[i].str);
    free(s->strings);
    free(s->modules);
    free(s->cache);
    free(s->frames);
    free(s);
}
