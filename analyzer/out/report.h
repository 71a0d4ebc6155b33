/* The report of `ftprof report`: a terminal table and a stable JSON document (see
 * tests/analyzer/report.schema.json). */
#ifndef FTPROF_ANALYZER_REPORT_H
#define FTPROF_ANALYZER_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "profile.h"

struct report_text_options {
    size_t top;        /* locks per section */
    size_t sites;      /* waiter / holder sites under each lock */
    unsigned width;    /* terminal columns */
    bool color;
    bool compact;      /* one line per lock, no sites (used by `ftprof run`) */
    size_t threads;    /* threads in the time table (SIZE_MAX: all; 0: no table) */
    size_t depth;      /* frames per site, from the waiting frame outward (0 or 1: that frame alone) */
    double fold_below; /* rows under this share of their section folded into one line by kind (0: none) */
};

/* 0 or -errno. */
int report_text(FILE *out, struct profile *p, const struct report_text_options *opt);
/* `top` = 0 means every lock. 0 or -errno. */
int report_json(FILE *out, const struct profile *p, size_t top);
struct json_t; /* jansson's */
/* The same with the keys of the JSON object `extra` (or NULL) added at the top level. */
int report_json_with(FILE *out, const struct profile *p, size_t top, struct json_t *extra);

/* A JSON string (a new reference) of text from a recording, which need not be UTF-8 (a damaged or
 * hand-made one): bytes outside ASCII become '?' then, rather than the value being lost. JSON null
 * for NULL. */
struct json_t *report_json_str(const char *s);
/* The "extensions" array of `report --json` (and `ready --json`): a new reference. */
struct json_t *report_json_extensions(const struct profile *p);
/* The extension modules in short (`report`): a line per module not declaring support and a count of the
 * rest; nothing when the recording has none. 0 or -errno. */
int report_text_extensions(FILE *out, const struct profile *p, bool color);
/* "at app.py:35" (the program's line that led to the import, "(via pkg.py:8)" when a package's own
 * line imported it), or where it is not known: "before the recording started", "from an unknown place". */
void report_ext_where(char *buf, size_t len, const struct prof_extension *e);
/* "declares support", "declares nothing (keeps the GIL)", "unknown", "unknown on this build". */
const char *report_ext_declared(const struct prof_extension *e);

/* "1.23 s", "4.56 ms", "12.3 µs", "850 ns" */
void report_format_ns(char *buf, size_t len, uint64_t ns);

#endif
