/* Which installed Python distribution a file belongs to, from the environment's packaging records: the
 * `NAME-VERSION.dist-info/RECORD` (paths relative to the directory holding the .dist-info, usually
 * site-packages) that lists the file, with the distribution's name and version from its METADATA and
 * how it was built from its WHEEL. A library vendored into a wheel (numpy.libs/libscipy_openblas….so)
 * belongs to the wheel's distribution. Read on the machine that runs the analyzer. */
#ifndef FTPROF_ANALYZER_PROFILE_DIST_H
#define FTPROF_ANALYZER_PROFILE_DIST_H

#include <stdbool.h>
#include <stddef.h>

struct prof_dist {
    char name[128];      /* METADATA's Name: "numpy" */
    char version[64];    /* METADATA's Version: "2.3.4" */
    char wheel_tag[160]; /* WHEEL's Tag lines as a wheel's file name compresses them:
                            "cp314-cp314t-manylinux_2_27_x86_64.manylinux_2_28_x86_64"; "" without WHEEL */
};

/* A path with "." and ".." components and repeated slashes removed, as the dynamic loader may give it
 * ("…/numpy/_core/../../numpy.libs/x.so"), into out; false if it does not fit or is not absolute. */
bool prof_dist_normalize(const char *path, char *out, size_t cap);

/* The distribution whose RECORD lists `path` (absolute), trying it as given (normalized), then with its
 * symbolic links resolved. The first ancestor directory holding any *.dist-info is the one searched.
 * False when no record lists it (a system library, a file built in place, or not on this machine). */
bool prof_dist_of_file(const char *path, struct prof_dist *out);

#endif
