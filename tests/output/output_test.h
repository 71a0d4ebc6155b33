/* Helpers shared by the output writer tests: temporary files created the way the analyzer creates
 * its outputs, whole-file reads, and running external readers (go tool pprof, chromium). */
#ifndef FTPROF_TESTS_OUTPUT_TEST_H
#define FTPROF_TESTS_OUTPUT_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "output.h"

#define OT_SKIP 77

#define OT_CHECK(cond)                                                                                       \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                         \
            ot_failures++;                                                                                   \
        }                                                                                                    \
    } while (0)

extern int ot_failures;

/* A fresh private directory for this test's files (removed by ot_cleanup unless FTPROF_KEEP=1). */
const char *ot_tmpdir(void);
void ot_cleanup(void);
/* Creates `name` in the test directory exclusively and opens it for writing; its path in *path. */
FILE *ot_create(const char *name, char **path);
/* Whole file as a NUL-terminated string (NULL if unreadable); size in *len when len is set. */
char *ot_read_file(const char *path, size_t *len);
/* Runs a shell command, returns its stdout (NULL if it could not run) and exit status in *status. */
char *ot_run(const char *command, int *status);
/* Number of non-overlapping occurrences of needle in haystack. */
size_t ot_count(const char *haystack, const char *needle);
/* Whether an executable of that name is on PATH. */
bool ot_have_program(const char *name);
/* Writes samples with the given writer into `name`; returns the path (malloc'd) or NULL. */
typedef int (*ot_flame_writer)(FILE *, const struct out_sample *, size_t, const struct flame_options *);
char *ot_write_flame(const char *name, ot_flame_writer writer, const struct out_sample *samples, size_t n,
                     const struct flame_options *opt);

/* The shared workload, 1 s of waits in all:
 *   "lock Cache._lock @0x1000" (lock): Thread.run > Worker.run > Cache.get   600 ms, 30 contentions
 *                                        (given as two samples of equal content, 500 + 100 ms)
 *                                      Thread.run > Worker.run > Cache.put   200 ms, 10
 *   "critical_section dict @0x2000":     Thread.run > Worker.run > Registry.lookup > pthread_mutex_lock
 *                                        (native, libc.so.6)                 200 ms, 40
 * With odd_wait_ns > 0 a fifth sample on a lock named `lock <odd>&"x"` has frames whose names hold
 * "</script>", markup, ';', a newline, bytes
 * that are not UTF-8 and a control character. Returns the sample count. */
size_t ot_fixture(const struct out_sample **samples, uint64_t odd_wait_ns);
#define OT_MS 1000000ull

#endif
