/* A shared library for the symbolizer test: DWARF-described code, inlined frame included, in an object
 * loaded away from address zero, so the load bias has to be applied for names and lines to come out. */
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__)
#define SYMLIB_NOINLINE __attribute__((noinline, noipa))
#else
#define SYMLIB_NOINLINE __attribute__((noinline))
#endif

int symtest_lib_inlined_line, symtest_lib_call_line;
static volatile uint64_t symtest_lib_sink;

SYMLIB_NOINLINE static uintptr_t symtest_lib_leaf(void)
{
    uintptr_t ra = (uintptr_t)__builtin_return_address(0);
    __asm__ volatile("" ::: "memory");
    return ra;
}

static inline __attribute__((always_inline)) uintptr_t symtest_lib_inlined(void)
{
    uintptr_t ra = symtest_lib_leaf(); symtest_lib_inlined_line = __LINE__;
    symtest_lib_sink += ra;
    return ra;
}

/* Returns a return address inside symtest_lib_inlined, itself inlined into this function. */
SYMLIB_NOINLINE uintptr_t symtest_lib_call(void)
{
    uintptr_t ra = symtest_lib_inlined(); symtest_lib_call_line = __LINE__;
    symtest_lib_sink += ra;
    return ra;
}
