/* Preloaded next to the recorder, changes one word of the interpreter's _Py_DebugOffsets before the
 * recorder reads it, so a test can run a real interpreter whose table the recorder does not know.
 * ALTER_OFFSETS_WORD=N adds 8 to word N (CPython itself never reads its own table; debuggers and the
 * recorder do). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

__attribute__((constructor)) static void alter_offsets(void)
{
    const char *n = getenv("ALTER_OFFSETS_WORD");
    uint64_t *table = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (n && table && !memcmp(table, "xdebugpy", 8))
        table[atoi(n)] += 8;
}
