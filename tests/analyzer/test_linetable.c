/* The location-table decoder against co_lines() of real code objects (fixtures/linetables.txt, made
 * by gen_linetable_fixture.py with CPython 3.13t): every instruction offset must map to CPython's line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linetable.h"

static size_t hex_decode(const char *hex, uint8_t *out, size_t max)
{
    size_t n = 0;
    if (strcmp(hex, "-") == 0)
        return 0;
    for (; hex[0] && hex[1] && n < max; hex += 2) {
        unsigned v;
        if (sscanf(hex, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_linetable FIXTURE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    static char line[65536];
    static uint8_t table[32768];
    char qualname[512] = "", hex[65536];
    size_t table_len = 0;
    int firstlineno = 0, codes = 0, checked = 0, failures = 0;
    while (fgets(line, sizeof(line), f)) {
        char file[256];
        unsigned start, end;
        int expect;
        if (strncmp(line, "code ", 5) == 0) {
            if (sscanf(line, "code %511s %255s %d %65535s", qualname, file, &firstlineno, hex) != 4) {
                fprintf(stderr, "bad fixture line: %s", line);
                return 2;
            }
            table_len = hex_decode(hex, table, sizeof(table));
            codes++;
        } else if (sscanf(line, "lines %u %u %d", &start, &end, &expect) == 3) {
            for (unsigned off = start; off < end; off += 2) {
                int got = linetable_line(table, table_len, firstlineno, off);
                checked++;
                if (got != expect) {
                    fprintf(stderr, "FAIL %s offset %u: line %d, CPython says %d\n", qualname, off, got, expect);
                    failures++;
                }
            }
        }
    }
    fclose(f);
    /* Past the end of the code there is no line; a damaged table yields no line instead of garbage. */
    uint8_t damaged[] = {0x7f, 0x01};
    if (linetable_line(damaged, sizeof(damaged), 10, 0) != 0) {
        fprintf(stderr, "FAIL damaged table gave a line\n");
        failures++;
    }
    uint8_t cut[] = {0x80 | (14 << 3)}; /* a long-form entry cut before its line delta */
    if (linetable_line(cut, sizeof(cut), 10, 0) != 0) {
        fprintf(stderr, "FAIL truncated long entry gave a line\n");
        failures++;
    }
    printf("%d code objects, %d offsets checked, %d failures\n", codes, checked, failures);
    if (codes < 20 || checked < 500) {
        fprintf(stderr, "FAIL fixture too small\n");
        return 1;
    }
    return failures ? 1 : 0;
}
