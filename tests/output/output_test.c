#include "output_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int ot_failures;
static char ot_dir[256];

const char *ot_tmpdir(void)
{
    if (!ot_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(ot_dir, sizeof ot_dir, "%s/ftprof-out-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(ot_dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return ot_dir;
}

void ot_cleanup(void)
{
    if (!ot_dir[0])
        return;
    const char *keep = getenv("FTPROF_KEEP");
    if (keep && strcmp(keep, "1") == 0) {
        fprintf(stderr, "test files kept in %s\n", ot_dir);
        return;
    }
    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", ot_dir);
    if (system(command) != 0)
        fprintf(stderr, "could not remove %s\n", ot_dir);
}

FILE *ot_create(const char *name, char **path)
{
    if (asprintf(path, "%s/%s", ot_tmpdir(), name) < 0)
        return NULL;
    int fd = open(*path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", *path, strerror(errno));
        return NULL;
    }
    return fdopen(fd, "w");
}

/* Everything left to read from f, NUL-terminated (NULL when memory runs out); its size in *len when len
 * is set. */
static char *ot_read_all(FILE *f, size_t *len)
{
    char *data = NULL;
    size_t size = 0, capacity = 0;
    for (;;) {
        if (capacity - size < 65536) {
            capacity = capacity ? capacity * 2 : 131072;
            char *grown = realloc(data, capacity + 1);
            if (!grown) {
                free(data);
                return NULL;
            }
            data = grown;
        }
        size_t got = fread(data + size, 1, capacity - size, f);
        size += got;
        if (got == 0)
            break;
    }
    data[size] = '\0';
    if (len)
        *len = size;
    return data;
}

char *ot_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = f ? ot_read_all(f, len) : NULL;
    if (f)
        fclose(f);
    return data;
}

char *ot_run(const char *command, int *status)
{
    FILE *p = popen(command, "r");
    if (!p)
        return NULL;
    char *data = ot_read_all(p, NULL);
    int rc = pclose(p);
    if (status)
        *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return data;
}

size_t ot_count(const char *haystack, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += len)
        n++;
    return n;
}

bool ot_have_program(const char *name)
{
    char command[256];
    snprintf(command, sizeof command, "command -v '%s' >/dev/null 2>&1", name);
    return system(command) == 0;
}

char *ot_write_flame(const char *name, ot_flame_writer writer, const struct out_sample *samples, size_t n,
                     const struct flame_options *opt)
{
    char *path;
    FILE *f = ot_create(name, &path);
    if (!f)
        return NULL;
    int rc = writer(f, samples, n, opt);
    if (fclose(f) != 0 && rc == 0)
        rc = -EIO;
    if (rc != 0) {
        fprintf(stderr, "writing %s failed: %s\n", path, strerror(-rc));
        free(path);
        return NULL;
    }
    return path;
}

size_t ot_fixture(const struct out_sample **samples, uint64_t odd_wait_ns)
{
    static const struct out_frame get[] = {
        {"Cache.get", "/srv/app/cache.py", 42, false},
        {"Worker.run", "/srv/app/worker.py", 17, false},
        {"Thread.run", "/usr/lib/python3.13t/threading.py", 990, false},
    };
    /* The same stack again with its own copies of every string, as a reader might produce it. */
    static char get_fn[] = "Cache.get", cache_py[] = "/srv/app/cache.py", run_fn[] = "Worker.run",
                worker_py[] = "/srv/app/worker.py", thread_fn[] = "Thread.run",
                threading_py[] = "/usr/lib/python3.13t/threading.py", cache_lock_again[] = "lock Cache._lock @0x1000";
    static const struct out_frame get_again[] = {
        {get_fn, cache_py, 42, false},
        {run_fn, worker_py, 17, false},
        {thread_fn, threading_py, 990, false},
    };
    static const struct out_frame put[] = {
        {"Cache.put", "/srv/app/cache.py", 55, false},
        {"Worker.run", "/srv/app/worker.py", 19, false},
        {"Thread.run", "/usr/lib/python3.13t/threading.py", 990, false},
    };
    static const struct out_frame lookup[] = {
        {"pthread_mutex_lock", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, true},
        {"Registry.lookup", "/srv/app/registry.py", 8, false},
        {"Worker.run", "/srv/app/worker.py", 21, false},
        {"Thread.run", "/usr/lib/python3.13t/threading.py", 990, false},
    };
    static const struct out_frame odd[] = {
        {"render</script><b>x</b>", "/srv/app/t<e>mp.py", 7, false},
        {"a;b\nc", "/srv/app/x.py", 1, false},
        {"enc\xff\xc3(ode\x01", "/srv/app/x.py", 2, false}, /* not UTF-8, and a control character */
    };
    static struct out_sample fixture[5];
    const char *cache_lock = "lock Cache._lock @0x1000";
    fixture[0] = (struct out_sample){get, 3, cache_lock, "lock", 500 * OT_MS, 25};
    fixture[1] = (struct out_sample){get_again, 3, cache_lock_again, "lock", 100 * OT_MS, 5};
    fixture[2] = (struct out_sample){put, 3, cache_lock, "lock", 200 * OT_MS, 10};
    fixture[3] = (struct out_sample){lookup, 4, "critical_section dict @0x2000", "critical_section", 200 * OT_MS, 40};
    fixture[4] = (struct out_sample){odd, 3, "lock <odd>&\"x\"", "lock", odd_wait_ns, 1};
    *samples = fixture;
    return odd_wait_ns > 0 ? 5 : 4;
}
