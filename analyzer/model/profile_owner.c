/* Owners: the name a user knows a contended object by, read from the source line that waited on it.
 * A lock is known by the variable its line takes (`with RENDER_LOCK:` → RENDER_LOCK), a dict or list
 * by the one its line writes (`CACHE[k] = v` → CACHE), an attribute of `self` by its class
 * (`with self.lock:` in Pool.get → Pool.lock). A standard-library lock taken inside threading.py is
 * named from the first frame outside it (`with self.not_empty:` in queue.py → queue.Queue.mutex, the
 * lock that Condition is built on). */
#include "profile_model.h"

#include <stdio.h>
#include <string.h>

#define OWNER_MAX 128

static bool owner_ident_char(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The dotted name that ends just before `e` ("self.cache" before "[k] = v"), or false. */
static bool owner_name_before(const char *line, const char *e, const char **b_out)
{
    const char *b = e;
    while (b > line && (owner_ident_char(b[-1]) || b[-1] == '.'))
        b--;
    if (b == e || *b == '.' || (*b >= '0' && *b <= '9') || e[-1] == '.')
        return false;
    if (b > line && (b[-1] == ')' || b[-1] == ']' || b[-1] == '"' || b[-1] == '\''))
        return false; /* `f(x).y[k]`: no name of its own */
    *b_out = b;
    return true;
}

/* The variable a lock's line takes: `with X:` / `with X as y:` / `with X, Y:` / `X.acquire(`. */
static bool owner_of_lock_line(const char *src, const char **b, const char **e)
{
    if (strncmp(src, "with ", 5) == 0 || strncmp(src, "async with ", 11) == 0) {
        *b = *e = strchr(src, ' ') + 1;
        while (owner_ident_char(**e) || **e == '.')
            (*e)++;
        return *e > *b && (**e == ':' || **e == ',' || **e == ' ');
    }
    const char *a = strstr(src, ".acquire(");
    if (!a)
        a = strstr(src, ".wait(");
    if (!a)
        a = strstr(src, ".wait_for(");
    *e = a;
    return a && owner_name_before(src, a, b);
}

/* The container an object's line reads or writes: the target of `X[...] =` / `X[...] op=` / `del
 * X[...]`, else the receiver of a container method (`X.append(`, `X.setdefault(`), else the first
 * subscripted name. */
static bool owner_of_object_line(const char *src, const char **b, const char **e)
{
    static const char *const methods[] = {".append(", ".extend(", ".insert(", ".pop(", ".popitem(", ".remove(",
                                          ".setdefault(", ".update(", ".get(", ".add(", ".discard(", ".clear(",
                                          ".items(", ".keys(", ".values(", ".copy(", ".sort(", ".index(",
                                          ".count(", NULL};
    const char *assign = NULL;
    for (const char *p = src; *p && !assign; p++)
        if (*p == '=' && p[1] != '=' && p > src && !strchr("=!<>", p[-1]))
            assign = p;
    const char *lhs_end = assign ? assign : src + strlen(src);
    const char *sub = memchr(src, '[', (size_t)(lhs_end - src));
    if (strncmp(src, "del ", 4) == 0 || (assign && sub))
        return (*e = strchr(src, '[')) && owner_name_before(src, *e, b);
    for (size_t i = 0; methods[i]; i++)
        if ((*e = strstr(src, methods[i])) && owner_name_before(src, *e, b))
            return true;
    return (*e = strchr(src, '[')) && owner_name_before(src, *e, b);
}

/* "Class" of qualname "Class.method" (the innermost class of a nested one), or NULL. */
static bool owner_class(const char *qualname, const char **b, size_t *len)
{
    const char *dot = qualname ? strrchr(qualname, '.') : NULL;
    if (!dot || strstr(qualname, "<locals>") > dot)
        return false;
    const char *start = dot;
    while (start > qualname && start[-1] != '.')
        start--;
    if (strcmp(start, "<locals>.") == 0 || start[0] == '<')
        return false;
    *b = start;
    *len = (size_t)(dot - start);
    return true;
}

/* The standard library's module for `file` ("queue" for .../lib/python3.14t/queue.py), or false. */
static bool owner_stdlib_module(struct prof_internal *in, const char *file, char *out, size_t cap)
{
    const char *dir = prof_stdlib_dir(in);
    size_t n = dir ? strlen(dir) : 0;
    if (!n || !file || strncmp(file, dir, n) != 0 || file[n] != '/' || !prof_ends_with(file, ".py"))
        return false;
    const char *rel = file + n + 1;
    if (strstr(rel, "site-packages/"))
        return false;
    size_t len = strlen(rel) - 3, o = 0;
    if (prof_ends_with(rel, "/__init__.py"))
        len -= 9;
    for (size_t i = 0; i < len && o + 1 < cap; i++)
        out[o++] = rel[i] == '/' ? '.' : rel[i];
    out[o] = 0;
    return o > 0;
}

/* In `file`, the lock a Condition attribute is built on: `self.not_empty = threading.Condition(
 * self.mutex)` makes `with self.not_empty:` take `mutex`. Returns that attribute, or NULL. */
static bool owner_condition_base(struct prof_internal *in, const char *file, const char *attr, size_t attr_len,
                                 const char **b, size_t *len)
{
    char needle[96];
    if (attr_len + 16 > sizeof(needle))
        return false;
    snprintf(needle, sizeof(needle), "self.%.*s = ", (int)attr_len, attr);
    const char *line = prof_source_find(in, file, needle);
    const char *c = line ? strstr(line, "Condition(self.") : NULL;
    if (!c)
        return false;
    *b = c + strlen("Condition(self.");
    const char *e = *b;
    while (owner_ident_char(*e))
        e++;
    *len = (size_t)(e - *b);
    return *e == ')' && *len > 0;
}

/* Names what `src` (the line of frame `f`) takes or writes, qualified by the frame's class for
 * `self.` attributes and by its module for the standard library's. */
static const char *owner_from_frame(struct prof_internal *in, const struct prof_frame *f, const char *src,
                                    bool object, bool through_condition)
{
    const char *b, *e;
    if (!src || !(object ? owner_of_object_line(src, &b, &e) : owner_of_lock_line(src, &b, &e)))
        return NULL;
    size_t len = (size_t)(e - b);
    if (len == 0 || len >= 64)
        return NULL;
    char out[OWNER_MAX], module[64] = "";
    const char *cls;
    size_t cls_len;
    if (owner_stdlib_module(in, f->file, module, sizeof(module)))
        strcat(module, ".");
    if (strncmp(b, "self.", 5) == 0 && owner_class(f->function, &cls, &cls_len)) {
        const char *attr = b + 5, *base;
        size_t attr_len = len - 5, base_len;
        /* A lock taken through a Condition is the lock under it: name that one. */
        if (through_condition && owner_condition_base(in, f->file, attr, attr_len, &base, &base_len))
            attr = base, attr_len = base_len;
        snprintf(out, sizeof(out), "%s%.*s.%.*s", module, (int)cls_len, cls, (int)attr_len, attr);
    } else if (strncmp(b, "self.", 5) == 0) {
        return NULL; /* an attribute of an instance whose class the frame does not say */
    } else {
        snprintf(out, sizeof(out), "%.*s", (int)len, b); /* a global or a local: the line's own name */
    }
    return prof_intern(in, out, strlen(out));
}

/* The owner one waiter site names, and the line that names it in *source when that is not the site's. */
static const char *owner_of_site(struct prof_internal *in, enum prof_kind kind, const struct prof_stack *st,
                                 const char **source)
{
    const struct prof_frame *f = prof_site_frame(st, kind);
    if (!f || f->native)
        return NULL;
    bool object = kind == PROF_KIND_CRITICAL_SECTION;
    size_t at = (size_t)(f - st->frames);
    const size_t site = at;
    /* A condition's wait, or a lock taken inside threading.py: the frame that asked for it is the first
     * outside threading.py (queue.py's `with self.not_empty:`, the program's `cv.wait()`). */
    if (kind == PROF_KIND_CONDITION) {
        for (size_t i = 0; i < st->depth; i++)
            if (!st->frames[i].native && prof_ends_with(st->frames[i].file, "/threading.py") &&
                i + 1 < st->depth && !prof_ends_with(st->frames[i + 1].file, "/threading.py")) {
                at = i + 1;
                break;
            }
    }
    while (at + 1 < st->depth && !st->frames[at].native && prof_ends_with(st->frames[at].file, "/threading.py"))
        at++;
    f = &st->frames[at];
    if (f->native)
        return NULL;
    const char *src = prof_source_text(in, f->file, f->line);
    /* A lock (not a condition's wait) taken by `with self.cv:` or reacquired in `self.cv.wait()` is
     * the lock that Condition is built on. */
    const char *owner = owner_from_frame(in, f, src, object, !object && kind != PROF_KIND_CONDITION);
    if (owner && source && at != site)
        *source = src; /* the line that names it, not threading.py's */
    return owner;
}

static bool owner_in_importlib(const struct prof_frame *f)
{
    return !f->native && f->file &&
           (strncmp(f->file, "<frozen importlib", 17) == 0 || prof_ends_with(f->file, "/importlib/__init__.py"));
}

/* The module a stack is importing, from the import statement under importlib's frames: `import X`,
 * `import X as y`, `from X import y` → X. NULL when the stack does not import or its line names no
 * module (`importlib.import_module(name)`). */
static const char *owner_of_import(struct prof_internal *in, const struct prof_stack *st)
{
    size_t i = 0;
    while (i < st->depth && !owner_in_importlib(&st->frames[i]))
        i++;
    while (i < st->depth && (st->frames[i].native || owner_in_importlib(&st->frames[i])))
        i++;
    if (i >= st->depth || i == 0)
        return NULL;
    const char *src = prof_source_text(in, st->frames[i].file, st->frames[i].line), *b;
    if (src && strncmp(src, "import ", 7) == 0)
        b = src + 7;
    else if (src && strncmp(src, "from ", 5) == 0)
        b = src + 5;
    else
        return NULL;
    const char *e = b;
    while (owner_ident_char(*e) || *e == '.')
        e++;
    return e > b && e - b < 64 ? prof_intern(in, b, (size_t)(e - b)) : NULL;
}

#define OWNER_SITES 4

/* "a, b, c, …": the distinct owners of a row's sites, the first OWNER_SITES - 1 of them. */
static const char *owner_join(struct prof_internal *in, const struct prof_lock *l, bool holders_too,
                              const char *(*of)(struct prof_internal *, enum prof_kind, const struct prof_stack *))
{
    const char *seen[OWNER_SITES];
    size_t n = 0, total = l->n_waiters + (holders_too ? l->n_holders : 0);
    bool more = false;
    for (size_t i = 0; i < total && !more; i++) {
        const struct prof_site *s = i < l->n_waiters ? &l->waiters[i] : &l->holders[i - l->n_waiters];
        const char *o = of(in, l->kind, s->stack);
        bool known = !o;
        for (size_t j = 0; j < n && !known; j++)
            known = seen[j] == o;
        if (known)
            continue;
        if (n == OWNER_SITES - 1)
            more = true;
        else
            seen[n++] = o;
    }
    if (n == 0)
        return NULL;
    char out[OWNER_MAX * 2];
    size_t len = 0;
    for (size_t j = 0; j < n && len < sizeof(out); j++)
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", j ? ", " : "", seen[j]);
    if (more && len < sizeof(out))
        len += (size_t)snprintf(out + len, sizeof(out) - len, ", \u2026");
    return prof_intern(in, out, len < sizeof(out) ? len : sizeof(out) - 1);
}

static const char *owner_of_waiter(struct prof_internal *in, enum prof_kind kind, const struct prof_stack *st)
{
    return owner_of_site(in, kind, st, NULL);
}

static const char *owner_of_importer(struct prof_internal *in, enum prof_kind kind, const struct prof_stack *st)
{
    (void)kind;
    return owner_of_import(in, st);
}

const char *prof_lock_owner(struct prof_internal *in, const struct prof_lock *l, const char **source)
{
    /* The row of waits for a GIL an import turned on: the modules the waiters and holders import. */
    if (l->kind == PROF_KIND_GIL && l->address == 0) {
        const char *mods = owner_join(in, l, true, owner_of_importer);
        char out[OWNER_MAX * 2 + 16];
        int n = snprintf(out, sizeof(out), "importing %s", mods ? mods : "a module");
        return prof_intern(in, out, n > 0 && (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
    }
    if (!l->n_waiters || l->kind == PROF_KIND_GIL || l->kind == PROF_KIND_STOP_THE_WORLD ||
        l->kind == PROF_KIND_THREAD_JOIN || l->kind == PROF_KIND_PYMUTEX || l->kind == PROF_KIND_OTHER)
        return NULL;
    if (l->address != 0) /* rows of many objects (every Condition of a file) name the ones they wait on */
        return owner_of_site(in, l->kind, l->waiters[0].stack, source);
    return owner_join(in, l, false, owner_of_waiter);
}
