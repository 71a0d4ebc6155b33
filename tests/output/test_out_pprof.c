/* pprof export: the gzip'd Profile decodes with protobuf-c into the mutex-profile shape (sample
 * types, period, labels, one location per frame, one function per name and file, innermost first),
 * and `go tool pprof` reads it with the expected functions, proportions and line numbers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "output_test.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile Profile;

static const char *str(const Profile *p, int64_t i)
{
    return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i] : "<bad index>";
}

static const Perftools__Profiles__Function *function_of(const Profile *p, uint64_t location_id, int64_t *line)
{
    for (size_t i = 0; i < p->n_location; i++) {
        if (p->location[i]->id != location_id || p->location[i]->n_line != 1)
            continue;
        *line = p->location[i]->line[0]->line;
        for (size_t f = 0; f < p->n_function; f++)
            if (p->function[f]->id == p->location[i]->line[0]->function_id)
                return p->function[f];
    }
    return NULL;
}

static const char *label(const Profile *p, const Perftools__Profiles__Sample *s, const char *key)
{
    for (size_t i = 0; i < s->n_label; i++)
        if (strcmp(str(p, s->label[i]->key), key) == 0)
            return str(p, s->label[i]->str);
    return NULL;
}

static Profile *read_profile(const char *path)
{
    size_t len;
    char *gz = ot_read_file(path, &len);
    if (!gz || len < 18 || (unsigned char)gz[0] != 0x1f || (unsigned char)gz[1] != 0x8b) {
        free(gz);
        return NULL;
    }
    size_t cap = 1 << 20;
    unsigned char *raw = malloc(cap);
    z_stream z = {0};
    z.next_in = (Bytef *)gz;
    z.avail_in = (uInt)len;
    int zrc = inflateInit2(&z, 15 + 16) == Z_OK ? Z_OK : Z_DATA_ERROR;
    while (zrc == Z_OK && raw) {
        if (z.total_out == cap) {
            unsigned char *grown = realloc(raw, cap * 2);
            if (!grown)
                break;
            raw = grown;
            cap *= 2;
        }
        z.next_out = raw + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        zrc = inflate(&z, Z_NO_FLUSH);
    }
    Profile *p = zrc == Z_STREAM_END ? perftools__profiles__profile__unpack(NULL, z.total_out, raw) : NULL;
    inflateEnd(&z);
    free(raw);
    free(gz);
    return p;
}

static void check_decoded(const char *path)
{
    Profile *p = read_profile(path);
    OT_CHECK(p != NULL);
    if (!p)
        return;
    OT_CHECK(p->n_string_table > 0 && strcmp(p->string_table[0], "") == 0);
    OT_CHECK(p->n_sample_type == 2);
    if (p->n_sample_type == 2) {
        OT_CHECK(strcmp(str(p, p->sample_type[0]->type), "contentions") == 0);
        OT_CHECK(strcmp(str(p, p->sample_type[0]->unit), "count") == 0);
        OT_CHECK(strcmp(str(p, p->sample_type[1]->type), "delay") == 0);
        OT_CHECK(strcmp(str(p, p->sample_type[1]->unit), "nanoseconds") == 0);
    }
    OT_CHECK(p->period_type && strcmp(str(p, p->period_type->type), "contentions") == 0 &&
             strcmp(str(p, p->period_type->unit), "count") == 0);
    OT_CHECK(p->period == 1);
    OT_CHECK(p->time_nanos == 1700000000123456789LL && p->duration_nanos == 2500000000LL);
    /* One location per distinct frame: Worker.run at three lines is three locations of one function. */
    OT_CHECK(p->n_location == 8);
    OT_CHECK(p->n_function == 6);
    /* Equal stacks merged: Cache.get, Cache.put, Registry.lookup. */
    OT_CHECK(p->n_sample == 3);
    int seen = 0;
    for (size_t i = 0; i < p->n_sample; i++) {
        const Perftools__Profiles__Sample *s = p->sample[i];
        OT_CHECK(s->n_value == 2 && s->n_location_id >= 3);
        if (s->n_value != 2 || s->n_location_id < 3)
            continue;
        int64_t line = 0, outer_line = 0;
        const Perftools__Profiles__Function *inner = function_of(p, s->location_id[0], &line);
        const Perftools__Profiles__Function *outer = function_of(p, s->location_id[s->n_location_id - 1], &outer_line);
        OT_CHECK(inner && outer);
        if (!inner || !outer)
            continue;
        OT_CHECK(strcmp(str(p, outer->name), "Thread.run") == 0 && outer_line == 990);
        OT_CHECK(strcmp(str(p, outer->filename), "/usr/lib/python3.13t/threading.py") == 0);
        OT_CHECK(outer->system_name == outer->name);
        const char *name = str(p, inner->name);
        if (strcmp(name, "Cache.get") == 0) {
            seen |= 1;
            OT_CHECK(line == 42 && s->value[0] == 30 && s->value[1] == 600 * (int64_t)OT_MS);
            OT_CHECK(strcmp(label(p, s, "lock"), "lock Cache._lock @0x1000") == 0);
            OT_CHECK(strcmp(label(p, s, "kind"), "lock") == 0);
        } else if (strcmp(name, "Cache.put") == 0) {
            seen |= 2;
            OT_CHECK(line == 55 && s->value[0] == 10 && s->value[1] == 200 * (int64_t)OT_MS);
        } else if (strcmp(name, "pthread_mutex_lock") == 0) {
            seen |= 4;
            OT_CHECK(s->n_location_id == 4 && s->value[0] == 40);
            OT_CHECK(strcmp(str(p, inner->filename), "/usr/lib/x86_64-linux-gnu/libc.so.6") == 0);
            OT_CHECK(strcmp(label(p, s, "lock"), "critical_section dict @0x2000") == 0);
            OT_CHECK(strcmp(label(p, s, "kind"), "critical_section") == 0);
            int64_t l2;
            const Perftools__Profiles__Function *caller = function_of(p, s->location_id[1], &l2);
            OT_CHECK(caller && strcmp(str(p, caller->name), "Registry.lookup") == 0 && l2 == 8);
        }
    }
    OT_CHECK(seen == 7);
    perftools__profiles__profile__free_unpacked(p, NULL);
}

/* The line of `output` that mentions `what`, copied into buf; NULL if none. */
static const char *line_with(const char *output, const char *what, char *buf, size_t cap)
{
    const char *hit = output ? strstr(output, what) : NULL;
    if (!hit)
        return NULL;
    const char *start = hit;
    while (start > output && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (len >= cap)
        len = cap - 1;
    memcpy(buf, start, len);
    buf[len] = '\0';
    return buf;
}

static char *go_pprof(const char *args, const char *path)
{
    char command[2048];
    const char *dir = ot_tmpdir();
    int status;
    /* A private HOME and cache, no network, no toolchain download: the tool ships with go. */
    snprintf(command, sizeof command,
             "HOME='%s' GOCACHE='%s/gocache' GOPATH='%s/gopath' GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local "
             "PPROF_TMPDIR='%s' timeout 120 go tool pprof %s '%s' 2>&1",
             dir, dir, dir, dir, args, path);
    char *out = ot_run(command, &status);
    if (status != 0) {
        fprintf(stderr, "go tool pprof %s failed:\n%s\n", args, out ? out : "");
        free(out);
        return NULL;
    }
    return out;
}

static void check_with_go(const char *path)
{
    char buf[512];
    char *top = go_pprof("-top -sample_index=delay", path);
    OT_CHECK(top != NULL);
    /* flat: Cache.get 600 ms of 1 s, Cache.put and the native lock call 200 ms each; cum: Worker.run
     * and Thread.run are on every stack. */
    OT_CHECK(line_with(top, "Cache.get", buf, sizeof buf) && strstr(buf, "60.00%"));
    OT_CHECK(line_with(top, "Cache.put", buf, sizeof buf) && strstr(buf, "20.00%"));
    OT_CHECK(line_with(top, "pthread_mutex_lock", buf, sizeof buf) && strstr(buf, "20.00%"));
    OT_CHECK(line_with(top, "Worker.run", buf, sizeof buf) && strstr(buf, "100%"));
    OT_CHECK(line_with(top, "Type: delay", buf, sizeof buf) != NULL);
    free(top);

    char *count = go_pprof("-top -sample_index=contentions", path);
    /* by contentions: 40 of 80 in pthread_mutex_lock, 30 in Cache.get */
    OT_CHECK(line_with(count, "pthread_mutex_lock", buf, sizeof buf) && strstr(buf, "50.00%"));
    OT_CHECK(line_with(count, "Cache.get", buf, sizeof buf) && strstr(buf, "37.50%"));
    free(count);

    char *traces = go_pprof("-traces -sample_index=delay", path);
    OT_CHECK(traces && strstr(traces, "Cache.get") && strstr(traces, "Registry.lookup"));
    free(traces);

    char *raw = go_pprof("-raw", path);
    OT_CHECK(raw != NULL);
    OT_CHECK(line_with(raw, "Cache.get", buf, sizeof buf) && strstr(buf, "cache.py:42"));
    OT_CHECK(line_with(raw, "Cache.put", buf, sizeof buf) && strstr(buf, "cache.py:55"));
    OT_CHECK(line_with(raw, "Registry.lookup", buf, sizeof buf) && strstr(buf, "registry.py:8"));
    OT_CHECK(strstr(raw, "worker.py:17") && strstr(raw, "worker.py:19") && strstr(raw, "worker.py:21"));
    free(raw);

    char *tags = go_pprof("-tags", path);
    OT_CHECK(tags && strstr(tags, "critical_section dict @0x2000") && strstr(tags, "lock Cache._lock @0x1000"));
    OT_CHECK(tags && strstr(tags, "kind:"));
    free(tags);
}

int main(void)
{
    const struct out_sample *samples;
    size_t n = ot_fixture(&samples, 0);
    const struct pprof_meta meta = {1700000000123456789LL, 2500000000LL};
    char *path;
    FILE *f = ot_create("fixture.pb.gz", &path);
    OT_CHECK(f != NULL);
    if (!f)
        return 1;
    OT_CHECK(out_write_pprof_gz(f, samples, n, &meta) == 0);
    OT_CHECK(fclose(f) == 0);
    check_decoded(path);

    const struct out_sample missing = {NULL, 1, "L", "lock", 1, 1};
    char *bad_path;
    FILE *bad = ot_create("bad.pb.gz", &bad_path);
    OT_CHECK(bad && out_write_pprof_gz(bad, &missing, 1, &meta) == -EINVAL);
    if (bad)
        fclose(bad);
    free(bad_path);

    /* No samples is still a valid profile, with its types and the empty string. */
    char *empty_path;
    FILE *empty = ot_create("empty.pb.gz", &empty_path);
    OT_CHECK(empty && out_write_pprof_gz(empty, NULL, 0, NULL) == 0);
    if (empty)
        fclose(empty);
    Profile *p = read_profile(empty_path);
    OT_CHECK(p && p->n_sample == 0 && p->n_sample_type == 2 && p->n_string_table > 0 &&
             strcmp(p->string_table[0], "") == 0);
    if (p)
        perftools__profiles__profile__free_unpacked(p, NULL);
    free(empty_path);

    int rc = 0;
    if (ot_have_program("go"))
        check_with_go(path);
    else
        rc = OT_SKIP, fprintf(stderr, "go not found: not read back with go tool pprof\n");
    free(path);
    ot_cleanup();
    if (ot_failures) {
        fprintf(stderr, "%d check(s) failed\n", ot_failures);
        return 1;
    }
    return rc;
}
