/* Source lines: the text of file:line for the frames a report shows, read once per file. */
#include "profile_model.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *prof_stdlib_dir(struct prof_internal *in)
{
    if (!in->stdlib_looked) {
        in->stdlib_looked = true;
        for (size_t i = 0; i < in->n_codes && !in->stdlib_dir[0]; i++) {
            const char *f = in->codes[i].filename;
            size_t n = f ? strlen(f) : 0;
            if (f && f[0] == '/' && prof_ends_with(f, "/threading.py") && n - 13 < sizeof(in->stdlib_dir))
                snprintf(in->stdlib_dir, sizeof(in->stdlib_dir), "%.*s", (int)(n - 13), f);
        }
    }
    return in->stdlib_dir[0] ? in->stdlib_dir : NULL;
}

/* "<frozen posixpath>" names a standard-library module frozen into the interpreter, as Python's own
 * tracebacks do; its source still sits in the standard library's directory, which is where the
 * recording's threading.py came from. Returns the path of that source, or NULL. */
static const char *prof_frozen_source(struct prof_internal *in, const char *file, char *out, size_t cap)
{
    static const char prefix[] = "<frozen ";
    size_t len = strlen(file);
    if (strncmp(file, prefix, sizeof(prefix) - 1) != 0 || len < sizeof(prefix) + 1 || file[len - 1] != '>')
        return NULL;
    prof_stdlib_dir(in);
    const char *module = file + sizeof(prefix) - 1;
    size_t mlen = len - (sizeof(prefix) - 1) - 1;
    if (!in->stdlib_dir[0] || mlen == 0 || mlen > 128)
        return NULL;
    char rel[160];
    for (size_t i = 0; i < mlen; i++) {
        char c = module[i];
        if (!(c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return NULL; /* a module name, nothing else (no '/', no '..' path) */
        rel[i] = c == '.' ? '/' : c;
    }
    rel[mlen] = 0;
    int n = snprintf(out, cap, "%s/%s.py", in->stdlib_dir, rel);
    return n > 0 && (size_t)n < cap ? out : NULL;
}

static struct psource *prof_source(struct prof_internal *in, const char *file)
{
    bool ins;
    uint64_t *slot = prof_put(in, &in->sources_map, (uint64_t)(uintptr_t)file, 0, &ins);
    if (!slot)
        return NULL;
    if (!ins)
        return *slot ? &in->sources[*slot - 1] : NULL;
    char frozen[PATH_MAX];
    const char *real = prof_frozen_source(in, file, frozen, sizeof(frozen));
    if (file[0] == '<' && !real)
        return NULL; /* "<string>", "<stdin>": no file to read */
    /* The path comes from the recording: open regular files only (a device can act on being opened). */
    struct stat st;
    if (stat(real ? real : file, &st) != 0 || !S_ISREG(st.st_mode))
        return NULL;
    int fd = open(real ? real : file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return NULL;
    char *data = NULL;
    size_t len = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= PROF_SOURCE_MAX) {
        data = malloc((size_t)st.st_size + 1);
        if (data) {
            while (len < (size_t)st.st_size) {
                ssize_t r = read(fd, data + len, (size_t)st.st_size - len);
                if (r <= 0)
                    break;
                len += (size_t)r;
            }
            data[len] = 0;
        }
    }
    close(fd);
    if (!data)
        return NULL;
    struct psource *src = PUSH(in, sources);
    if (!src) {
        free(data);
        return NULL;
    }
    src->data = data;
    src->len = len;
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += data[i] == '\n';
    src->starts = malloc(n * sizeof(*src->starts));
    if (!src->starts) {
        in->n_sources--;
        free(data);
        in->oom = true;
        return NULL;
    }
    src->starts[0] = 0;
    src->n_lines = 1;
    for (size_t i = 0; i < len; i++)
        if (data[i] == '\n')
            src->starts[src->n_lines++] = i + 1;
    *slot = in->n_sources;
    return src;
}

const char *prof_source_text(struct prof_internal *in, const char *file, int line)
{
    if (!file || line <= 0)
        return NULL;
    struct psource *src = prof_source(in, file);
    if (!src || (size_t)line > src->n_lines)
        return NULL;
    const char *b = src->data + src->starts[line - 1];
    const char *e = memchr(b, '\n', (size_t)(src->data + src->len - b));
    if (!e)
        e = src->data + src->len;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    return prof_intern(in, b, (size_t)(e - b));
}

const char *prof_source_find(struct prof_internal *in, const char *file, const char *needle)
{
    struct psource *src = file ? prof_source(in, file) : NULL;
    const char *hit = src ? strstr(src->data, needle) : NULL;
    if (!hit)
        return NULL;
    size_t at = (size_t)(hit - src->data), line = 0;
    while (line + 1 < src->n_lines && src->starts[line + 1] <= at)
        line++;
    return prof_source_text(in, file, (int)line + 1);
}

const char *prof_source_line(struct profile *p, const char *file, int line)
{
    return prof_source_text(p->in, file, line);
}
