/* The model's shared primitives: kind names and the frame that says where a site is. */
#include "profile_model.h"

#include <string.h>

static const char *const prof_kind_names[PROF_KIND_COUNT] = {
    [PROF_KIND_LOCK] = "lock",
    [PROF_KIND_RLOCK] = "rlock",
    [PROF_KIND_CRITICAL_SECTION] = "critical_section",
    [PROF_KIND_PYMUTEX] = "pymutex",
    [PROF_KIND_STOP_THE_WORLD] = "stop_the_world",
    [PROF_KIND_GIL] = "gil",
    [PROF_KIND_CONDITION] = "condition",
    [PROF_KIND_THREAD_JOIN] = "thread_join",
    [PROF_KIND_PTHREAD_MUTEX] = "pthread_mutex",
    [PROF_KIND_PTHREAD_RWLOCK] = "pthread_rwlock",
    [PROF_KIND_OTHER] = "other",
};

const char *prof_kind_name(enum prof_kind k)
{
    return (unsigned)k < PROF_KIND_COUNT ? prof_kind_names[k] : "other";
}

bool prof_kind_is_contention(enum prof_kind k)
{
    return k != PROF_KIND_CONDITION && k != PROF_KIND_THREAD_JOIN;
}

static bool prof_is_sync_module(const char *file)
{
    static const char *const mods[] = {"/threading.py", "/queue.py"};
    if (!file)
        return false;
    size_t n = strlen(file);
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
        size_t m = strlen(mods[i]);
        if (n >= m && strcmp(file + n - m, mods[i]) == 0)
            return true;
        if (strcmp(file, mods[i] + 1) == 0)
            return true;
    }
    return false;
}

const struct prof_frame *prof_site_frame(const struct prof_stack *st, enum prof_kind kind)
{
    if (!st || st->depth == 0)
        return NULL;
    bool skip_sync = kind == PROF_KIND_CONDITION || kind == PROF_KIND_THREAD_JOIN;
    const struct prof_frame *first_py = NULL;
    for (size_t i = 0; i < st->depth; i++) {
        const struct prof_frame *f = &st->frames[i];
        if (f->native)
            continue;
        if (!first_py)
            first_py = f;
        if (!skip_sync || !prof_is_sync_module(f->file))
            return f;
    }
    return first_py ? first_py : &st->frames[0];
}

bool prof_ends_with(const char *s, const char *suffix)
{
    if (!s)
        return false;
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}
