/* Members by offset: which field of the interpreter's state a PyMutex is.
 * The recorder knows only "_PyRuntime + 0x4b678"; CPython's DWARF knows that this is
 * _main_interpreter.types.mutex (the type cache's lock). Walking the struct's members by their
 * offsets and sizes turns one into the other. */
#include "symbolize_internal.h"

#include <dwarf.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool sym_type_of(Dwarf_Die *die, Dwarf_Die *type)
{
    Dwarf_Attribute attr;
    return dwarf_attr_integrate(die, DW_AT_type, &attr) && dwarf_formref_die(&attr, type);
}

/* The interpreter's and libc's lock types: named as a whole, never by their bits. */
static bool sym_is_lock_type(const char *name)
{
    static const char *const locks[] = {"PyMutex", "_PyRecursiveMutex", "_PyRWMutex", "_PySeqLock",
                                        "_PyOnceFlag", "PyEvent", "_PyRawMutex", "pthread_mutex_t",
                                        "pthread_cond_t", "pthread_rwlock_t", "sem_t"};
    for (size_t i = 0; name && i < sizeof locks / sizeof locks[0]; i++)
        if (strcmp(name, locks[i]) == 0)
            return true;
    return false;
}

/* Follows typedefs and qualifiers to the type that has a layout; *lock tells whether a name met on
 * the way is one of the interpreter's lock types. */
static bool sym_peel(Dwarf_Die *type, bool *lock)
{
    *lock = false;
    for (int i = 0; i < 16; i++) {
        *lock = *lock || sym_is_lock_type(dwarf_diename(type));
        int tag = dwarf_tag(type);
        if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type &&
            tag != DW_TAG_atomic_type && tag != DW_TAG_restrict_type)
            return true;
        Dwarf_Die next;
        if (!sym_type_of(type, &next))
            return false; /* const void and the like: nothing to walk */
        *type = next;
    }
    return false;
}

static void sym_append(char *out, size_t cap, size_t *len, const char *fmt, const char *name, uint64_t index)
{
    if (*len >= cap)
        return;
    int n = name ? snprintf(out + *len, cap - *len, fmt, name) : snprintf(out + *len, cap - *len, fmt, index);
    *len = n < 0 || (size_t)n >= cap - *len ? cap - 1 : *len + (size_t)n;
}

/* Appends the path to the member at `offset` inside `type`. A member that cannot be refined further
 * (a scalar, padding, a lock type, a bit-field) ends the path; true once something was named. */
static bool sym_member_path(Dwarf_Die type, uint64_t offset, int depth, char *out, size_t cap, size_t *len,
                            bool *on_lock)
{
    bool lock;
    if (depth > 32 || !sym_peel(&type, &lock))
        return depth > 0;
    if (depth > 0 && lock) {
        *on_lock = true;
        return true;
    }
    int tag = dwarf_tag(&type);
    if (tag == DW_TAG_structure_type || tag == DW_TAG_union_type) {
        Dwarf_Die member;
        if (dwarf_child(&type, &member) != 0)
            return depth > 0;
        do {
            if (dwarf_tag(&member) != DW_TAG_member || dwarf_hasattr(&member, DW_AT_data_bit_offset) ||
                dwarf_hasattr(&member, DW_AT_bit_size))
                continue;
            Dwarf_Word at = 0, size;
            Dwarf_Attribute attr;
            /* No location: a union member, at 0. A location expression instead of a constant only
             * occurs with virtual bases, which C does not have. */
            if (dwarf_attr_integrate(&member, DW_AT_data_member_location, &attr) && dwarf_formudata(&attr, &at) != 0)
                continue;
            Dwarf_Die member_type;
            if (!sym_type_of(&member, &member_type) || dwarf_aggregate_size(&member_type, &size) != 0)
                continue;
            if (offset < at || offset - at >= size)
                continue;
            const char *name = dwarf_diename(&member);
            if (name) /* anonymous structs and unions add no name of their own */
                sym_append(out, cap, len, ".%s", name, 0);
            return sym_member_path(member_type, offset - at, depth + 1, out, cap, len, on_lock);
        } while (dwarf_siblingof(&member, &member) == 0);
        return depth > 0;
    }
    if (tag == DW_TAG_array_type) {
        Dwarf_Die element, child;
        Dwarf_Word element_size;
        int dimensions = 0;
        if (dwarf_child(&type, &child) == 0)
            do
                dimensions += dwarf_tag(&child) == DW_TAG_subrange_type;
            while (dwarf_siblingof(&child, &child) == 0);
        /* Only one-dimensional arrays are indexed: the interpreter's state has no others. */
        if (dimensions != 1 || !sym_type_of(&type, &element) || dwarf_aggregate_size(&element, &element_size) != 0 ||
            element_size == 0)
            return depth > 0;
        sym_append(out, cap, len, "[%" PRIu64 "]", NULL, offset / element_size);
        return sym_member_path(element, offset % element_size, depth + 1, out, cap, len, on_lock);
    }
    return depth > 0;
}

/* A complete definition of the struct or typedef `name` in any of the module's CUs. */
static bool sym_find_type(Dwfl_Module *mod, const char *name, Dwarf_Die *out)
{
    Dwarf_Die *cu = NULL;
    Dwarf_Addr bias;
    while ((cu = dwfl_module_nextcu(mod, cu, &bias)) != NULL) {
        Dwarf_Die die;
        if (dwarf_child(cu, &die) != 0)
            continue;
        do {
            int tag = dwarf_tag(&die);
            const char *die_name = dwarf_diename(&die);
            if ((tag != DW_TAG_typedef && tag != DW_TAG_structure_type) || !die_name || strcmp(die_name, name) != 0)
                continue;
            Dwarf_Die type = die;
            bool lock;
            /* A CU that only declares the struct (an incomplete type) has no members to walk. */
            if (!sym_peel(&type, &lock) || dwarf_hasattr(&type, DW_AT_declaration))
                continue;
            *out = die;
            return true;
        } while (dwarf_siblingof(&die, &die) == 0);
    }
    return false;
}

bool symbolizer_field(struct symbolizer *s, uint64_t anchor, const char *type_name, uint64_t offset, char *out,
                      size_t cap)
{
    bool on_lock;
    return symbolizer_field_lock(s, anchor, type_name, offset, out, cap, &on_lock);
}

bool symbolizer_field_lock(struct symbolizer *s, uint64_t anchor, const char *type_name, uint64_t offset, char *out,
                           size_t cap, bool *on_lock)
{
    *on_lock = false;
    if (cap == 0)
        return false;
    out[0] = 0;
    if (!s || !s->dwfl || !anchor || !type_name)
        return false;
    Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, anchor);
    bool trusted = false; /* only a module whose build id matched the recording */
    for (size_t i = 0; mod && i < s->module_count && !trusted; i++)
        trusted = s->modules[i].dwmod == mod;
    if (!trusted)
        return false;
    const char *name = sym_intern(s, type_name);
    if (name == sym_unknown)
        return false; /* out of memory */
    struct sym_type_slot *slot = NULL;
    for (size_t i = 0; i < s->type_count && !slot; i++)
        if (s->types[i].mod == mod && s->types[i].name == name)
            slot = &s->types[i];
    Dwarf_Die type;
    bool found;
    if (slot) {
        found = slot->found;
        type = slot->die;
    } else {
        found = sym_find_type(mod, type_name, &type);
        if (s->type_count < SYM_TYPE_SLOTS)
            s->types[s->type_count++] = (struct sym_type_slot){mod, name, found, type};
    }
    if (!found)
        return false;
    size_t len = 0;
    if (!sym_member_path(type, offset, 0, out, cap, &len, on_lock)) {
        out[0] = 0;
        return false;
    }
    return true;
}
