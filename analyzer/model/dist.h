/* Which installed distribution a file belongs to: the *.dist-info directories of the directories above
 * it (site-packages), whose RECORD lists every file the installer wrote, whose METADATA names the
 * distribution and its version, and whose WHEEL names the wheel's tags (absent: not installed from a
 * wheel, e.g. built from source by a tool that writes no WHEEL). A library vendored into a wheel
 * (numpy.libs/libscipy_openblas….so) belongs to the wheel's distribution. Read from the file system at
 * analysis time, so the environment must still be there. The one reader of dist-info: extension
 * modules (profile_ext.c), the objects that take native locks (profile_names.c), `ready --env`. */
#ifndef FTPROF_ANALYZER_DIST_H
#define FTPROF_ANALYZER_DIST_H

#include <stdbool.h>
#include <stddef.h>

struct dist_cache;

struct dist_owner {
    const char *name, *version; /* from METADATA (Name, Version), else the directory's name */
    const char *wheel_tag;      /* WHEEL's tags as a wheel's file name gives them ("cp314-cp314t-manylinux_2_17_x86_64.
                                   manylinux2014_x86_64"); NULL: no WHEEL file */
    const char *module;         /* the import name the file's place under site-packages gives, or NULL */
    const char *root;           /* the directory holding the .dist-info (site-packages) */
};

/* One distribution of a directory, for `ftprof ready --env`. */
struct dist_entry {
    char *name, *version, *wheel_tag;
    char **files; /* RECORD paths, relative to the directory */
    size_t n_files;
};

struct dist_cache *dist_cache_new(void);
void dist_cache_free(struct dist_cache *c);
/* The distribution whose RECORD lists `path` (absolute; strings owned by the cache, `module` until the
 * next call), trying it as given (normalized), then with its symbolic links resolved. The first
 * ancestor directory holding any *.dist-info is the one searched. False when no record lists it (a
 * system library, a file built in place, or not on this machine). */
bool dist_owner_of(struct dist_cache *c, const char *path, struct dist_owner *out);
/* A path with "." and ".." components and repeated slashes removed, as the dynamic loader may give it
 * ("…/numpy/_core/../../numpy.libs/x.so"), into out; false if it does not fit or is not absolute. */
bool dist_normalize(const char *path, char *out, size_t cap);
/* The distributions installed in directory `dir` (owned by the cache); their count. */
size_t dist_list(struct dist_cache *c, const char *dir, const struct dist_entry **out);
/* A wheel built on this machine from source (pip's own build, platform tag "linux_x86_64"): a wheel of
 * the package index for Linux is tagged manylinux or musllinux. */
bool dist_tag_built_here(const char *tag);
/* "pkg/sub/_mod.cpython-314t-x86_64-linux-gnu.so" -> "pkg.sub._mod" (malloc'd), or NULL when the path is
 * not an extension module's file. */
char *dist_module_name(const char *relpath);

#endif
