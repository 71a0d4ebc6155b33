/* The C tests' one assertion: CHECK(cond, fmt, ...) reports "FAIL file:line: cond: message" and counts
 * it in `failures`, and the test goes on (each test's main returns non-zero when failures > 0). */
#ifndef FTPROF_TESTS_CHECK_H
#define FTPROF_TESTS_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
            failures++;                                                                                    \
        }                                                                                                  \
    } while (0)

#endif
