/* Native symbolization of recorded return addresses with elfutils libdwfl.
 *
 * The recording's module map (path, load bias, executable range, build id) is replayed into an
 * offline Dwfl. A module is trusted only when its file still exists and carries the recorded build
 * id: a rebuilt or upgraded library would otherwise give confidently wrong names, so any doubt gives
 * "module+0xoffset" instead. Results are cached per pc because a report looks up the same few
 * thousand return addresses over and over. Not thread-safe: one symbolizer per analyzing thread.
 *
 * Inlined frames come from the concrete DIE tree. Searching it from the CU's root for every address
 * costs about a millisecond per pc in a CU the size of CPython's ceval.c, so each CU's functions are
 * indexed once by address range and only the one function's subtree is walked per pc.
 *
 * Where debug information is looked for: symbolize_debuginfo.c. Which field of a struct an address is
 * (an interpreter mutex by its member path): symbolize_field.c. */
#include "symbolize.h"
#include "symbolize_internal.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char sym_unknown[] = "[unknown]";

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
const char *sym_intern(struct symbolizer *s, const char *str)
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

    s->debuginfo_path = sym_debuginfo_path(modules, n); /* NULL: libdwfl's default search path */
    sym_limit_debuginfod();
    s->callbacks.find_elf = dwfl_build_id_find_elf;
    s->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
    s->callbacks.debuginfo_path = &s->debuginfo_path;
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
        /* Only real files: "[vdso]" and other pseudo names cannot be opened and are not worth a try,
         * and a path from a damaged recording that names a FIFO or a device would block or act. */
        struct stat st;
        if (!s->dwfl || m->path[0] != '/' || stat(m->path, &st) != 0 || !S_ISREG(st.st_mode))
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

static int sym_range_cmp(const void *a, const void *b)
{
    const struct sym_func_range *x = a, *y = b;
    return x->low < y->low ? -1 : x->low > y->low;
}

static bool sym_index_push(struct sym_cu_index *idx, size_t *cap, Dwarf_Addr low, Dwarf_Addr high, const Dwarf_Die *die)
{
    if (idx->count == *cap) {
        size_t n = *cap ? *cap * 2 : 64;
        struct sym_func_range *r = realloc(idx->ranges, n * sizeof *r);
        if (!r)
            return false;
        idx->ranges = r;
        *cap = n;
    }
    idx->ranges[idx->count++] = (struct sym_func_range){ .low = low, .high = high, .die = *die };
    return true;
}

/* Functions with code: subprograms at CU level, or inside namespaces for C++ objects. */
static bool sym_index_scope(struct sym_cu_index *idx, size_t *cap, Dwarf_Die *parent, int depth)
{
    Dwarf_Die child;
    if (dwarf_child(parent, &child) != 0)
        return true;
    do {
        int tag = dwarf_tag(&child);
        if (tag == DW_TAG_subprogram) {
            Dwarf_Addr base, low, high;
            ptrdiff_t off = 0;
            while ((off = dwarf_ranges(&child, off, &base, &low, &high)) > 0)
                if (high > low && !sym_index_push(idx, cap, low, high, &child))
                    return false;
        } else if (tag == DW_TAG_namespace && depth < 8) {
            if (!sym_index_scope(idx, cap, &child, depth + 1))
                return false;
        }
    } while (dwarf_siblingof(&child, &child) == 0);
    return true;
}

static uint64_t sym_hash_cu(const Dwfl_Module *mod, Dwarf_Off off)
{
    return sym_hash_pc((uint64_t)(uintptr_t)mod * 31 + off);
}

static bool sym_cus_grow(struct symbolizer *s)
{
    size_t cap = s->cu_cap ? s->cu_cap * 2 : 64;
    struct sym_cu_index **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < s->cu_cap; i++) {
        struct sym_cu_index *cu = s->cus[i];
        if (!cu)
            continue;
        size_t j = sym_hash_cu(cu->mod, cu->cu_offset) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = cu;
    }
    free(s->cus);
    s->cus = slots;
    s->cu_cap = cap;
    return true;
}

static const struct sym_cu_index *sym_cu_index_of(struct symbolizer *s, Dwfl_Module *mod, Dwarf_Die *cudie)
{
    Dwarf_Off off = dwarf_dieoffset(cudie);
    if (s->cu_cap) {
        for (size_t j = sym_hash_cu(mod, off) & (s->cu_cap - 1); s->cus[j]; j = (j + 1) & (s->cu_cap - 1))
            if (s->cus[j]->mod == mod && s->cus[j]->cu_offset == off)
                return s->cus[j];
    }
    if ((s->cu_used + 1) * 4 > s->cu_cap * 3 && !sym_cus_grow(s))
        return NULL;
    struct sym_cu_index *cu = calloc(1, sizeof *cu);
    if (!cu)
        return NULL;
    cu->mod = mod;
    cu->cu_offset = off;
    size_t cap = 0;
    if (!sym_index_scope(cu, &cap, cudie, 0)) {
        free(cu->ranges);
        free(cu);
        return NULL;
    }
    qsort(cu->ranges, cu->count, sizeof *cu->ranges, sym_range_cmp);
    size_t j = sym_hash_cu(mod, off) & (s->cu_cap - 1);
    while (s->cus[j])
        j = (j + 1) & (s->cu_cap - 1);
    s->cus[j] = cu;
    s->cu_used++;
    return cu;
}

static const struct sym_func_range *sym_function_at(const struct sym_cu_index *cu, Dwarf_Addr addr)
{
    size_t lo = 0, hi = cu->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cu->ranges[mid].low <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Ranges do not overlap in compiler output; a short look back covers odd producers. */
    for (size_t i = lo; i-- > 0 && lo - i <= 4;)
        if (addr < cu->ranges[i].high)
            return &cu->ranges[i];
    return NULL;
}

/* The scopes at addr inside a function, outermost (the function itself) first. */
static int sym_scopes_at(Dwarf_Die *function, Dwarf_Addr addr, Dwarf_Die *path, int max)
{
    int depth = 0;
    path[depth++] = *function;
    while (depth < max) {
        Dwarf_Die child;
        bool found = false;
        if (dwarf_child(&path[depth - 1], &child) == 0) {
            do {
                int tag = dwarf_tag(&child);
                if ((tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block || tag == DW_TAG_try_block ||
                     tag == DW_TAG_catch_block) && dwarf_haspc(&child, addr) > 0) {
                    path[depth++] = child;
                    found = true;
                    break;
                }
            } while (dwarf_siblingof(&child, &child) == 0);
        }
        if (!found)
            break;
    }
    return depth;
}

/* Frames from DWARF: each inlined subroutine around pc is a frame located where pc is (or where the
 * next inner one was inlined), and its call site locates the frame around it; the function itself is
 * the outermost frame. Returns false when there is no DWARF function at pc. */
static bool sym_dwarf_frames(struct symbolizer *s, Dwfl_Module *mod, uint64_t pc, const char *file, int line,
                             struct sym_chain *c)
{
    Dwarf_Addr bias;
    Dwarf_Die *cudie = dwfl_module_addrdie(mod, pc, &bias);
    if (!cudie)
        return false;
    const struct sym_cu_index *cu = sym_cu_index_of(s, mod, cudie);
    const struct sym_func_range *fn = cu ? sym_function_at(cu, pc - bias) : NULL;
    if (!fn)
        return false;

    Dwarf_Die function = fn->die;
    Dwarf_Die path[SYM_MAX_SCOPES];
    int depth = sym_scopes_at(&function, pc - bias, path, SYM_MAX_SCOPES);
    for (int i = depth - 1; i > 0; i--) {
        if (dwarf_tag(&path[i]) != DW_TAG_inlined_subroutine)
            continue;
        const char *name = dwarf_diename(&path[i]);
        sym_chain_push(c, sym_intern(s, name ? name : "[inlined]"), sym_intern(s, file), line, true);
        file = sym_call_file(&path[i]);
        line = sym_call_line(&path[i]);
    }
    /* The source name: "foo" rather than the symbol of a compiler-made part such as "foo.cold". */
    const char *name = dwarf_diename(&path[0]);
    if (!name) {
        GElf_Off offset;
        GElf_Sym sym;
        name = dwfl_module_addrinfo(mod, pc, &offset, &sym, NULL, NULL, NULL);
    }
    sym_chain_push(c, sym_intern(s, name ? name : "[unnamed]"), sym_intern(s, file), line, false);
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

    const char *file = NULL;
    int line = 0;
    Dwfl_Line *lineinfo = dwfl_module_getsrc(m->dwmod, pc);
    if (lineinfo)
        file = dwfl_lineinfo(lineinfo, NULL, &line, NULL, NULL, NULL);

    if (sym_dwarf_frames(s, m->dwmod, pc, file, line, c))
        return;

    GElf_Off offset;
    GElf_Sym sym;
    const char *symbol = dwfl_module_addrinfo(m->dwmod, pc, &offset, &sym, NULL, NULL, NULL);
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
    for (size_t i = 0; i < s->cu_cap; i++) {
        if (s->cus[i])
            free(s->cus[i]->ranges);
        free(s->cus[i]);
    }
    free(s->cus);
    free(s->modules);
    free(s->cache);
    free(s->frames);
    free(s->debuginfo_path);
    free(s);
}
