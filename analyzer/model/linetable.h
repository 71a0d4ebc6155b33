/* Line numbers from a CPython 3.13 location table (co_linetable), so the recorder can store raw
 * bytecode offsets and leave the decoding to the analyzer. */
#ifndef FTPROF_ANALYZER_LINETABLE_H
#define FTPROF_ANALYZER_LINETABLE_H

#include <stddef.h>
#include <stdint.h>

/* The source line of the instruction at byte offset `offset` (from the first instruction), or 0 when
 * the table has no line for it (no-location entries, offsets past the table, damaged tables). */
int linetable_line(const uint8_t *table, size_t len, int firstlineno, uint32_t offset);

#endif
