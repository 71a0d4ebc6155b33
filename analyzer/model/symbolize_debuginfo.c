/* Where the symbolizer looks for debug information: where distributions put it. Next to the file
 * (.gnu_debuglink), by build-id under /usr/lib/debug and under the lib/debug directory of the prefix
 * the library lives in (PREFIX/lib/libpython3.14t.so -> PREFIX/lib/debug/.build-id/NN/REST.debug), or
 * under FTPROF_DEBUG_DIRS instead of those two, and last from debuginfod servers when DEBUGINFOD_URLS
 * is set (libdw asks them; answers are cached by libdebuginfod). None of it is required: without it
 * names fall back to "symbol+0xoffset". */
#include "symbolize_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Appends ":dir" to the path being built, once, when dir holds a .build-id tree (or always, for
 * dirs the user named). Returns false when the path is full. */
static bool sym_path_add(char *path, size_t cap, const char *dir, size_t dir_len, bool only_with_build_ids)
{
    char probe[4096];
    if (dir_len == 0 || dir[0] != '/' || dir_len + sizeof "/.build-id" > sizeof probe)
        return true;
    memcpy(probe, dir, dir_len);
    probe[dir_len] = '\0';
    for (const char *at = strstr(path, probe); at; at = strstr(at + 1, probe))
        if (at > path && at[-1] == ':' && (at[dir_len] == ':' || at[dir_len] == '\0'))
            return true; /* already there */
    if (only_with_build_ids) {
        struct stat st;
        memcpy(probe + dir_len, "/.build-id", sizeof "/.build-id");
        if (stat(probe, &st) != 0 || !S_ISDIR(st.st_mode))
            return true;
        probe[dir_len] = '\0';
    }
    size_t used = strlen(path);
    if (used + 1 + dir_len + 1 > cap)
        return false;
    path[used] = ':';
    memcpy(path + used + 1, probe, dir_len + 1);
    return true;
}

/* libdwfl's search path: ":.debug" (the file's own directory and its .debug/, for .gnu_debuglink), then
 * the directories searched by build-id: FTPROF_DEBUG_DIRS when set (instead of the defaults), else
 * /usr/lib/debug and every PREFIX/lib/debug (or lib64/debug) above a recorded module that has a
 * .build-id tree, the layout of distributions' debug packages. */
char *sym_debuginfo_path(const struct sym_module *modules, size_t n)
{
    const size_t cap = 16384;
    char *path = malloc(cap);
    if (!path)
        return NULL;
    strcpy(path, ":.debug");
    const char *user = getenv("FTPROF_DEBUG_DIRS");
    if (user) {
        for (const char *p = user; *p;) {
            size_t len = strcspn(p, ":");
            sym_path_add(path, cap, p, len, false);
            p += len + (p[len] == ':');
        }
        return path;
    }
    sym_path_add(path, cap, "/usr/lib/debug", strlen("/usr/lib/debug"), false);
    char dir[4096];
    for (size_t i = 0; i < n; i++) {
        const char *file = modules[i].path;
        if (!file || file[0] != '/' || strlen(file) >= sizeof dir - sizeof "/debug")
            continue;
        /* Each ancestor named lib or lib64, e.g. /opt/py/lib of /opt/py/lib/python3.14t/x.so. */
        for (const char *slash = strchr(file + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
            size_t len = (size_t)(slash - file);
            const char *base = slash;
            while (base > file && base[-1] != '/')
                base--;
            size_t base_len = (size_t)(slash - base);
            if (!((base_len == 3 && memcmp(base, "lib", 3) == 0) || (base_len == 5 && memcmp(base, "lib64", 5) == 0)))
                continue;
            memcpy(dir, file, len);
            memcpy(dir + len, "/debug", sizeof "/debug");
            if (!sym_path_add(path, cap, dir, len + strlen("/debug"), true))
                return path;
        }
    }
    return path;
}

/* debuginfod is never required: a server that is slow or unreachable (Debian's configuration names a
 * public one) must not hold a report for libdebuginfod's default 90 s per file. */
void sym_limit_debuginfod(void)
{
    if (!getenv("DEBUGINFOD_URLS"))
        return;
    setenv("DEBUGINFOD_TIMEOUT", "5", 0);
    setenv("DEBUGINFOD_MAXTIME", "30", 0);
}
