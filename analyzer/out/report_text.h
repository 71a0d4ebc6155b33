/* The text report's insides, shared by its two files: report_text.c (the banners, the lock sections)
 * and report_text_time.c (where the threads' time went: the split, the verdict, the thread table). */
#ifndef FTPROF_ANALYZER_REPORT_TEXT_H
#define FTPROF_ANALYZER_REPORT_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "report.h"

#define RT_BOLD "\033[1m"
#define RT_DIM "\033[2m"
#define RT_YELLOW "\033[33m"
#define RT_RED "\033[31m"
#define RT_RESET "\033[0m"

struct rt {
    FILE *out;
    const struct report_text_options *opt;
    struct profile *p;
};

static inline const char *rt_c(const struct rt *r, const char *code) { return r->opt->color ? code : ""; }

/* "1,234,567" */
void rt_count(char *buf, size_t len, uint64_t v);
/* Display width of UTF-8 text, counting code points (the names we print have no wide characters). */
size_t rt_width(const char *s);
/* `s` wrapped at spaces to `cols` columns, lines after the first indented by `indent`. */
void rt_put_wrapped(FILE *out, const char *s, size_t cols, size_t indent);
/* Right-aligns UTF-8 text in `cols` columns (printf pads by bytes, not by characters). */
void rt_right(FILE *out, const char *s, size_t cols);

/* report_text_time.c: "Where the threads' time went" (in `ftprof run`'s compact summary too: its split
 * and verdict, without the thread table). */
void rt_time(struct rt *r);

#endif
