/* Folded output: one merged line per (lock, stack), root first, frames outermost to innermost,
 * weights by wait time or by count, separators and newlines in names neutralised. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "output_test.h"

static const char *const GET_LINE = "lock Cache._lock @0x1000;Thread.run (threading.py:990);"
                                    "Worker.run (worker.py:17);Cache.get (cache.py:42)";

static void test_wait_weight(void)
{
    const struct out_sample *samples;
    size_t n = ot_fixture(&samples, 7 * OT_MS);
    struct flame_options opt = {FLAME_WEIGHT_WAIT, "t", NULL};
    char *path = ot_write_flame("wait.folded", out_write_folded, samples, n, &opt);
    OT_CHECK(path != NULL);
    char *text = path ? ot_read_file(path, NULL) : NULL;
    OT_CHECK(text != NULL);
    if (!text)
        return;
    /* The two Cache.get samples have equal content: one line carries both. */
    char expected[512];
    snprintf(expected, sizeof expected, "%s %llu\n", GET_LINE, 600 * OT_MS);
    OT_CHECK(strstr(text, expected) != NULL);
    OT_CHECK(ot_count(text, "Cache.get") == 1);
    OT_CHECK(strstr(text, "lock Cache._lock @0x1000;Thread.run (threading.py:990);Worker.run (worker.py:19);"
                          "Cache.put (cache.py:55) 200000000\n") != NULL);
    OT_CHECK(strstr(text, "critical_section dict @0x2000;Thread.run (threading.py:990);Worker.run (worker.py:21);"
                          "Registry.lookup (registry.py:8);pthread_mutex_lock (libc.so.6) 200000000\n") != NULL);
    /* Names with ';' or a newline must not add frames or lines. */
    OT_CHECK(strstr(text, "lock <odd>&\"x\";enc\xef\xbf\xbd\xef\xbf\xbd(ode  (x.py:2);a:b c (x.py:1);"
                          "render</script><b>x</b> (t<e>mp.py:7) 7000000\n") != NULL);
    OT_CHECK(ot_count(text, "\n") == 4);
    /* Every line is "frames SPACE integer" with at least a lock and one frame. */
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        OT_CHECK(nl != NULL);
        if (!nl)
            break;
        *nl = '\0';
        char *space = strrchr(line, ' ');
        OT_CHECK(space && space[1] && strspn(space + 1, "0123456789") == strlen(space + 1));
        OT_CHECK(strchr(line, ';') != NULL);
        line = nl + 1;
    }
    free(text);
    free(path);
}

static void test_count_weight_and_order(void)
{
    const struct out_sample *samples;
    size_t n = ot_fixture(&samples, 0);
    struct flame_options opt = {FLAME_WEIGHT_COUNT, "t", NULL};
    char *first = ot_write_flame("count.folded", out_write_folded, samples, n, &opt);
    char *again = ot_write_flame("count-again.folded", out_write_folded, samples, n, &opt);
    char *a = first ? ot_read_file(first, NULL) : NULL, *b = again ? ot_read_file(again, NULL) : NULL;
    OT_CHECK(a && b);
    if (!a || !b)
        return;
    OT_CHECK(strcmp(a, b) == 0); /* deterministic */
    char expected[512];
    snprintf(expected, sizeof expected, "%s 30\n", GET_LINE);
    OT_CHECK(strstr(a, expected) != NULL);
    OT_CHECK(strstr(a, "pthread_mutex_lock (libc.so.6) 40\n") != NULL);
    /* Lines are sorted: Cache.get before Cache.put, locks in name order. */
    OT_CHECK(strstr(a, "Cache.get") < strstr(a, "Cache.put"));
    OT_CHECK(strstr(a, "critical_section") < strstr(a, "lock Cache"));
    free(a);
    free(b);
    free(first);
    free(again);
}

/* Two files with one base name keep enough of their paths to stay apart; a unique one keeps only
 * its base name. A sample with nothing under it yields no line. */
static void test_file_names(void)
{
    const struct out_frame a[] = {{"load", "/srv/pkg_a/__init__.py", 3, false}, {"main", "/srv/main.py", 1, false}};
    const struct out_frame b[] = {{"load", "/srv/pkg_b/__init__.py", 5, false}, {"main", "/srv/main.py", 1, false}};
    const struct out_frame c[] = {{"load", "/opt/other/pkg_b/__init__.py", 5, false}};
    const struct out_frame d[] = {{"mystery", NULL, 0, false}, {"native_fn", NULL, 12, true}};
    const struct out_sample samples[] = {
        {a, 2, "L", "lock", 10, 1},
        {b, 2, "L", "lock", 20, 1},
        {c, 1, "L", "lock", 30, 1},
        {d, 2, "L", "lock", 40, 1},
        {NULL, 0, "L", "lock", 0, 0},
    };
    char *path = ot_write_flame("names.folded", out_write_folded, samples, 5, NULL);
    char *text = path ? ot_read_file(path, NULL) : NULL;
    OT_CHECK(text != NULL);
    if (!text)
        return;
    OT_CHECK(strstr(text, "L;main (main.py:1);load (pkg_a/__init__.py:3) 10\n") != NULL);
    OT_CHECK(strstr(text, "L;main (main.py:1);load (srv/pkg_b/__init__.py:5) 20\n") != NULL);
    OT_CHECK(strstr(text, "L;load (other/pkg_b/__init__.py:5) 30\n") != NULL);
    OT_CHECK(strstr(text, "L;native_fn (?:12);mystery 40\n") != NULL);
    OT_CHECK(ot_count(text, "\n") == 4);
    free(text);
    free(path);
}

static void test_bad_input(void)
{
    const struct out_sample missing = {NULL, 2, "L", "lock", 1, 1};
    char *path;
    FILE *f = ot_create("bad.folded", &path);
    OT_CHECK(f != NULL);
    if (!f)
        return;
    OT_CHECK(out_write_folded(f, &missing, 1, NULL) == -EINVAL);
    OT_CHECK(out_write_folded(f, NULL, 3, NULL) == -EINVAL);
    OT_CHECK(out_write_folded(f, NULL, 0, NULL) == 0); /* nothing to write is not an error */
    fclose(f);
    free(path);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct keyed {
    char *key;
    uint64_t weight;
};

static int cmp_keyed(const void *a, const void *b)
{
    return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

/* Random stacks, some sharing arrays and some copies: the folded lines must be exactly the distinct
 * (lock, stack) pairs with their summed weights, whatever path the frame tree took to merge them. */
static void test_random_merge(void)
{
    enum { N = 4000, MAX_DEPTH = 5 };
    static const char *const functions[] = {"f0", "f1", "f2", "f3", "f4", "f5"};
    static const char *const locks[] = {"L0", "L1", "L2"};
    static struct out_frame frames[N][MAX_DEPTH];
    static struct out_sample samples[N];
    static struct keyed expected[N];
    uint64_t state = 42;
    for (int i = 0; i < N; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = state >> 16;
        size_t depth = 1 + r % MAX_DEPTH;
        if (i > 0 && r % 7 == 0) {
            samples[i] = samples[r % i]; /* the same array again */
            samples[i].wait_ns = 1 + r % 1000;
        } else {
            for (size_t d = 0; d < depth; d++)
                frames[i][d] = (struct out_frame){functions[(r >> (4 * d + 8)) % 3 + (d % 2) * 3], "/x/m.py",
                                                  (int)(1 + (r >> (4 * d + 10)) % 2), false};
            samples[i] = (struct out_sample){frames[i], depth, locks[(r >> 40) % 3], "lock", 1 + r % 1000, 1};
        }
    }
    /* The expected lines, built naively: one string per sample, sorted, equal ones summed. */
    for (int i = 0; i < N; i++) {
        char line[256];
        int len = snprintf(line, sizeof line, "%s", samples[i].lock);
        for (size_t d = samples[i].depth; d-- > 0;)
            len += snprintf(line + len, sizeof line - (size_t)len, ";%s (m.py:%d)", samples[i].frames[d].function,
                            samples[i].frames[d].line);
        expected[i] = (struct keyed){strdup(line), samples[i].wait_ns};
    }
    qsort(expected, N, sizeof *expected, cmp_keyed);
    char **want = calloc(N, sizeof *want);
    size_t wanted = 0;
    for (int i = 0; i < N;) {
        unsigned long long sum = 0;
        int j = i;
        for (; j < N && strcmp(expected[j].key, expected[i].key) == 0; j++)
            sum += expected[j].weight;
        if (asprintf(&want[wanted++], "%s %llu", expected[i].key, sum) < 0)
            return;
        i = j;
    }
    qsort(want, wanted, sizeof *want, cmp_str);
    OT_CHECK(wanted > 100 && wanted < N / 2); /* many distinct stacks, and many merges */

    char *path = ot_write_flame("random.folded", out_write_folded, samples, N, NULL);
    char *text = path ? ot_read_file(path, NULL) : NULL;
    OT_CHECK(text != NULL);
    if (text) {
        char **got = calloc(N + 1, sizeof *got);
        size_t lines = 0;
        for (char *line = strtok(text, "\n"); line && lines <= N; line = strtok(NULL, "\n"))
            got[lines++] = line;
        qsort(got, lines, sizeof *got, cmp_str);
        OT_CHECK(lines == wanted);
        for (size_t i = 0; i < lines && i < wanted; i++)
            OT_CHECK(strcmp(got[i], want[i]) == 0);
        free(got);
    }
    for (size_t i = 0; i < wanted; i++)
        free(want[i]);
    for (int i = 0; i < N; i++)
        free(expected[i].key);
    free(want);
    free(text);
    free(path);
}

/* A full disk is reported, by every writer, as the error it is. */
static void test_write_errors(void)
{
    FILE *full = fopen("/dev/full", "w");
    if (!full)
        return;
    const struct out_sample *samples;
    size_t n = ot_fixture(&samples, 0);
    const struct pprof_meta meta = {0, 0};
    OT_CHECK(out_write_folded(full, samples, n, NULL) == -ENOSPC);
    clearerr(full);
    OT_CHECK(out_write_svg(full, samples, n, NULL) == -ENOSPC);
    clearerr(full);
    OT_CHECK(out_write_html(full, samples, n, NULL) == -ENOSPC);
    clearerr(full);
    OT_CHECK(out_write_pprof_gz(full, samples, n, &meta) == -ENOSPC);
    fclose(full);
}

int main(void)
{
    test_wait_weight();
    test_count_weight_and_order();
    test_file_names();
    test_random_merge();
    test_bad_input();
    test_write_errors();
    ot_cleanup();
    if (ot_failures)
        fprintf(stderr, "%d check(s) failed\n", ot_failures);
    return ot_failures ? 1 : 0;
}
