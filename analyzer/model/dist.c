/* Installed distributions from their .dist-info directories (dist.h). Only the RECORD lines of
 * compiled objects are kept (extension modules, and shared libraries vendored beside them): the
 * questions asked are about those. */
#include "dist.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIST_LINE_MAX 4096

struct dist_dir {
    char *path;
    struct dist_entry *entries;
    size_t n;
};

struct dist_cache {
    struct dist_dir *dirs;
    size_t n, cap;
    char *module; /* the last answer's module name */
};

struct dist_cache *dist_cache_new(void) { return calloc(1, sizeof(struct dist_cache)); }

static void entry_free(struct dist_entry *e)
{
    free(e->name);
    free(e->version);
    free(e->wheel_tag);
    for (size_t i = 0; i < e->n_files; i++)
        free(e->files[i]);
    free(e->files);
}

void dist_cache_free(struct dist_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = 0; k < c->dirs[i].n; k++)
            entry_free(&c->dirs[i].entries[k]);
        free(c->dirs[i].entries);
        free(c->dirs[i].path);
    }
    free(c->dirs);
    free(c->module);
    free(c);
}

static bool is_compiled(const char *p, size_t n)
{
    return (n > 3 && !memcmp(p + n - 3, ".so", 3)) || (n > 4 && !memcmp(p + n - 4, ".pyd", 4));
}

/* A compiled module, or a shared library with its version after the suffix ("libgfortran.so.5"). */
static bool is_object(const char *p, size_t n)
{
    const char *base = p + n;
    while (base > p && base[-1] != '/')
        base--;
    return memmem(base, (size_t)(p + n - base), ".so.", 4) || is_compiled(p, n);
}

/* "Key: value" header lines of METADATA (until the first blank line). */
static char *header_value(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[1024];
    size_t klen = strlen(key);
    char *out = NULL;
    while (!out && fgets(line, sizeof line, f) && line[0] != '\n' && line[0] != '\r') {
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            char *v = line + klen + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\r\n")] = 0;
            out = strdup(v);
        }
    }
    fclose(f);
    return out;
}

/* WHEEL's Tag lines as a wheel file name writes them: "cp314-cp314t-manylinux_2_17_x86_64.manylinux2014_x86_64". */
static char *wheel_tags(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[512], *out = NULL, prefix[256] = "";
    size_t len = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Tag:", 4))
            continue;
        char *v = line + 4;
        v += strspn(v, " \t");
        v[strcspn(v, "\r\n")] = 0;
        char *second = strchr(v, '-'), *third = second ? strchr(second + 1, '-') : NULL;
        const char *add = v;
        const char *sep = out ? ", " : "";
        if (third && out && (size_t)(third - v) == strlen(prefix) && !strncmp(v, prefix, strlen(prefix))) {
            add = third + 1; /* same python and ABI tags: one more platform */
            sep = ".";
        } else if (third && !out) {
            snprintf(prefix, sizeof prefix, "%.*s", (int)(third - v), v);
        }
        size_t n = strlen(sep) + strlen(add);
        char *grown = realloc(out, len + n + 1);
        if (!grown)
            break;
        out = grown;
        memcpy(out + len, sep, strlen(sep));
        memcpy(out + len + strlen(sep), add, strlen(add) + 1);
        len += n;
    }
    fclose(f);
    return out;
}

/* A RECORD line's first field (the path), into out: up to the first comma, or a double-quoted CSV
 * field with its "" unescaped. Its length, or 0 when it does not fit. */
static size_t record_path(const char *line, char *out, size_t cap)
{
    size_t n = 0;
    if (line[0] != '"') {
        n = strcspn(line, ",\r\n");
        if (n >= cap)
            return 0;
        memcpy(out, line, n);
    } else {
        for (const char *p = line + 1; *p && !(*p == '"' && p[1] != '"'); p++) {
            if (*p == '"')
                p++; /* an escaped quote */
            if (n + 1 >= cap)
                return 0;
            out[n++] = *p;
        }
    }
    out[n] = 0;
    return n;
}

/* RECORD's compiled objects. */
static void read_record(const char *path, struct dist_entry *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL, rel[DIST_LINE_MAX];
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        size_t n = record_path(line, rel, sizeof rel);
        if (!n || !is_object(rel, n))
            continue;
        char **grown = realloc(e->files, (e->n_files + 1) * sizeof *grown);
        if (!grown)
            break;
        e->files = grown;
        e->files[e->n_files] = strndup(rel, n);
        if (e->files[e->n_files])
            e->n_files++;
    }
    free(line);
    fclose(f);
}

static void load_entry(const char *dir, const char *name, struct dist_entry *e)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/METADATA", dir, name);
    e->name = header_value(p, "Name");
    e->version = header_value(p, "Version");
    if (!e->name) { /* no METADATA: the directory's name says NAME-VERSION.dist-info */
        size_t n = strlen(name) - strlen(".dist-info");
        const char *dash = memchr(name, '-', n);
        e->name = strndup(name, dash ? (size_t)(dash - name) : n);
        if (dash && !e->version)
            e->version = strndup(dash + 1, n - (size_t)(dash - name) - 1);
    }
    snprintf(p, sizeof p, "%s/%s/WHEEL", dir, name);
    e->wheel_tag = wheel_tags(p);
    snprintf(p, sizeof p, "%s/%s/RECORD", dir, name);
    read_record(p, e);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct dist_entry *x = a, *y = b;
    return strcasecmp(x->name ? x->name : "", y->name ? y->name : "");
}

static struct dist_dir *dir_load(struct dist_cache *c, const char *dir)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->dirs[i].path, dir))
            return &c->dirs[i];
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 8;
        struct dist_dir *g = realloc(c->dirs, ncap * sizeof *g);
        if (!g)
            return NULL;
        c->dirs = g;
        c->cap = ncap;
    }
    struct dist_dir *d = &c->dirs[c->n];
    memset(d, 0, sizeof *d);
    d->path = strdup(dir);
    if (!d->path)
        return NULL;
    c->n++;
    DIR *dh = opendir(dir);
    if (!dh)
        return d;
    struct dirent *de;
    while ((de = readdir(dh))) {
        size_t n = strlen(de->d_name);
        if (n <= 10 || strcmp(de->d_name + n - 10, ".dist-info"))
            continue;
        struct dist_entry *g = realloc(d->entries, (d->n + 1) * sizeof *g);
        if (!g)
            break;
        d->entries = g;
        memset(&d->entries[d->n], 0, sizeof *g);
        load_entry(dir, de->d_name, &d->entries[d->n]);
        d->n++;
    }
    closedir(dh);
    if (d->n > 1) /* (qsort of no array: undefined, even for 0 entries) */
        qsort(d->entries, d->n, sizeof *d->entries, entry_cmp);
    return d;
}

size_t dist_list(struct dist_cache *c, const char *dir, const struct dist_entry **out)
{
    struct dist_dir *d = dir_load(c, dir);
    *out = d ? d->entries : NULL;
    return d ? d->n : 0;
}

bool dist_tag_built_here(const char *tag)
{
    const char *plat = strrchr(tag, '-');
    return plat && !strncmp(plat + 1, "linux_", 6);
}

char *dist_module_name(const char *rel)
{
    size_t n = strlen(rel);
    if (!is_compiled(rel, n))
        return NULL;
    const char *file = strrchr(rel, '/');
    file = file ? file + 1 : rel;
    size_t stem = (size_t)(file - rel) + strcspn(file, ".");
    char *m = strndup(rel, stem);
    for (char *p = m; p && *p; p++)
        if (*p == '/')
            *p = '.';
    return m;
}

bool dist_normalize(const char *path, char *out, size_t cap)
{
    if (!path || path[0] != '/' || cap < 2)
        return false;
    size_t n = 0;
    out[n++] = '/';
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 1 && out[n - 1] == '/') /* drop the last component */
                n--;
            while (n > 1 && out[n - 1] != '/')
                n--;
        } else if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (n + len + 2 > cap)
                return false;
            if (out[n - 1] != '/')
                out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p = e;
    }
    out[n] = 0;
    return true;
}

/* In the first ancestor of `path` (normalized) that holds any *.dist-info, the one whose RECORD lists it. */
static bool owner_search(struct dist_cache *c, const char *path, struct dist_owner *out)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir)
        return false;
    for (char *slash = strrchr(dir, '/'); slash && slash > dir; slash = strrchr(dir, '/')) {
        *slash = 0;
        struct dist_dir *d = dir_load(c, dir);
        if (!d || d->n == 0)
            continue;
        const char *rel = path + strlen(dir) + 1;
        for (size_t i = 0; i < d->n; i++)
            for (size_t k = 0; k < d->entries[i].n_files; k++) {
                if (strcmp(d->entries[i].files[k], rel))
                    continue;
                free(c->module);
                c->module = dist_module_name(rel);
                *out = (struct dist_owner){d->entries[i].name, d->entries[i].version, d->entries[i].wheel_tag,
                                           c->module, d->path};
                return true;
            }
        return false;
    }
    return false;
}

bool dist_owner_of(struct dist_cache *c, const char *path, struct dist_owner *out)
{
    char norm[PATH_MAX], real[PATH_MAX];
    if (!dist_normalize(path, norm, sizeof norm))
        return false;
    if (owner_search(c, norm, out))
        return true;
    return realpath(norm, real) && strcmp(real, norm) != 0 && owner_search(c, real, out);
}
