#include "linetable.h"

#include <stdbool.h>

/* Entry codes of the 3.13 location table (Objects/locations.md in the CPython sources). */
enum {
    LT_ONE_LINE0 = 10,
    LT_ONE_LINE2 = 12,
    LT_NO_COLUMNS = 13,
    LT_LONG = 14,
    LT_NONE = 15,
};

#define LT_CODE_UNIT 2 /* bytes per instruction word */

/* A varint is little-endian 6-bit groups, bit 6 meaning "more follows". Bounded by the end of the
 * table and by 32 bits, since the tables come from a file we do not trust. */
static bool lt_read_varint(const uint8_t *p, const uint8_t *end, const uint8_t **next, uint32_t *val)
{
    uint32_t v = 0;
    unsigned shift = 0;
    for (;;) {
        if (p >= end || shift > 30)
            return false;
        uint8_t b = *p++;
        v |= (uint32_t)(b & 63) << shift;
        shift += 6;
        if (!(b & 64))
            break;
    }
    *next = p;
    *val = v;
    return true;
}

static bool lt_read_svarint(const uint8_t *p, const uint8_t *end, const uint8_t **next, int32_t *val)
{
    uint32_t u;
    if (!lt_read_varint(p, end, next, &u))
        return false;
    *val = (u & 1) ? -(int32_t)(u >> 1) : (int32_t)(u >> 1);
    return true;
}

int linetable_line(const uint8_t *table, size_t len, int firstlineno, uint32_t offset)
{
    const uint8_t *p = table, *end = table + len;
    int64_t line = firstlineno;
    uint64_t start = 0;

    while (p < end) {
        uint8_t first = *p;
        if (!(first & 128))
            return 0; /* every entry starts with the high bit set: the table is damaged */
        int code = (first >> 3) & 15;
        uint64_t stop = start + (uint64_t)((first & 7) + 1) * LT_CODE_UNIT;
        const uint8_t *q = p + 1;
        int32_t delta = 0;
        if (code == LT_NO_COLUMNS || code == LT_LONG) {
            if (!lt_read_svarint(q, end, &q, &delta))
                return 0;
        } else if (code >= LT_ONE_LINE0 && code <= LT_ONE_LINE2) {
            delta = code - LT_ONE_LINE0;
        }
        line += delta;
        if (offset >= start && offset < stop) {
            if (code == LT_NONE || line <= 0 || line > INT32_MAX)
                return 0;
            return (int)line;
        }
        start = stop;
        /* The rest of an entry (columns, end line) has no high bit set: skip to the next entry. */
        p = q;
        while (p < end && !(*p & 128))
            p++;
    }
    return 0;
}
