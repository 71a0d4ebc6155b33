/* Installed distributions of files, from *.dist-info/RECORD (profile_dist.h). */
#include "profile_dist.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIST_LINE_MAX 4096

bool prof_dist_normalize(const char *path, char *out, size_t cap)
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

/* A RECORD line's first field (the path): up to the first comma, or a double-quoted CSV field. */
static bool dist_record_path_is(const char *line, const char *rel)
{
    if (line[0] != '"') {
        size_t n = strcspn(line, ",\r\n");
        return strlen(rel) == n && memcmp(line, rel, n) == 0;
    }
    const char *p = line + 1, *r = rel;
    for (; *p; p++, r++) {
        if (*p == '"' && p[1] == '"')
            p++; /* an escaped quote */
        else if (*p == '"')
            break;
        if (*r != *p)
            return false;
    }
    return *p == '"' && *r == 0;
}

static bool dist_record_lists(const char *record, const char *rel)
{
    FILE *f = fopen(record, "r");
    if (!f)
        return false;
    char line[DIST_LINE_MAX];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = dist_record_path_is(line, rel);
    fclose(f);
    return found;
}

/* The value of the header `key` ("Name: ") in an email-style metadata file, into out. */
static void dist_header(const char *file, const char *key, char *out, size_t cap)
{
    FILE *f = fopen(file, "r");
    char line[DIST_LINE_MAX];
    size_t klen = strlen(key);
    while (f && fgets(line, sizeof(line), f) && line[0] != '\n' && line[0] != '\r') {
        if (strncmp(line, key, klen) == 0) {
            snprintf(out, cap, "%.*s", (int)strcspn(line + klen, "\r\n"), line + klen);
            break;
        }
    }
    if (f)
        fclose(f);
}

/* WHEEL's Tag lines as one tag: platforms joined with '.' while python and ABI stay the same (as the
 * wheel's file name has them), else the first tag. */
static void dist_wheel_tag(const char *file, char *out, size_t cap)
{
    FILE *f = fopen(file, "r");
    char line[DIST_LINE_MAX];
    size_t n = 0, prefix = 0;
    out[0] = 0;
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "Tag: ", 5) != 0)
            continue;
        char *tag = line + 5;
        tag[strcspn(tag, "\r\n")] = 0;
        char *plat = strrchr(tag, '-');
        if (!plat)
            continue;
        size_t tag_prefix = (size_t)(plat - tag) + 1; /* "cp314-cp314t-" */
        if (n == 0) {
            n = (size_t)snprintf(out, cap, "%s", tag);
            prefix = tag_prefix;
        } else if (tag_prefix == prefix && strncmp(out, tag, prefix) == 0 && n + strlen(plat + 1) + 2 < cap) {
            n += (size_t)snprintf(out + n, cap - n, ".%s", plat + 1);
        }
    }
    if (f)
        fclose(f);
}

static void dist_fill(const char *dir, const char *info, struct prof_dist *out)
{
    char file[PATH_MAX];
    memset(out, 0, sizeof(*out));
    snprintf(file, sizeof(file), "%s/%s/METADATA", dir, info);
    dist_header(file, "Name: ", out->name, sizeof(out->name));
    dist_header(file, "Version: ", out->version, sizeof(out->version));
    if (!out->name[0] || !out->version[0]) {
        /* No METADATA: the directory's name says NAME-VERSION.dist-info. */
        size_t len = strlen(info) - strlen(".dist-info");
        const char *dash = memchr(info, '-', len);
        if (dash) {
            snprintf(out->name, sizeof(out->name), "%.*s", (int)(dash - info), info);
            snprintf(out->version, sizeof(out->version), "%.*s", (int)(len - (size_t)(dash - info) - 1), dash + 1);
        }
    }
    snprintf(file, sizeof(file), "%s/%s/WHEEL", dir, info);
    dist_wheel_tag(file, out->wheel_tag, sizeof(out->wheel_tag));
}

static bool dist_is_info_dir(const char *name)
{
    size_t n = strlen(name), s = strlen(".dist-info");
    return n > s && strcmp(name + n - s, ".dist-info") == 0;
}

/* In the first ancestor of `path` that holds any *.dist-info, the one whose RECORD lists it. */
static bool dist_search(const char *path, struct prof_dist *out)
{
    char dir[PATH_MAX], record[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *slash = strrchr(dir, '/'); slash && slash > dir; slash = strrchr(dir, '/')) {
        *slash = 0;
        DIR *d = opendir(dir);
        if (!d)
            continue;
        bool any = false, found = false;
        const char *rel = path + strlen(dir) + 1;
        struct dirent *e;
        while (!found && (e = readdir(d))) {
            if (!dist_is_info_dir(e->d_name))
                continue;
            any = true;
            if ((size_t)snprintf(record, sizeof(record), "%s/%s/RECORD", dir, e->d_name) >= sizeof(record))
                continue;
            if (dist_record_lists(record, rel)) {
                dist_fill(dir, e->d_name, out);
                found = true;
            }
        }
        closedir(d);
        if (any)
            return found;
    }
    return false;
}

bool prof_dist_of_file(const char *path, struct prof_dist *out)
{
    char norm[PATH_MAX], real[PATH_MAX];
    if (!prof_dist_normalize(path, norm, sizeof(norm)))
        return false;
    if (dist_search(norm, out))
        return true;
    return realpath(norm, real) && strcmp(real, norm) != 0 && dist_search(real, out);
}
