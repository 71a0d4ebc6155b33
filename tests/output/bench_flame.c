/* Benchmark, not a test: how long each writer takes for one million samples.
 *   bench_flame [SAMPLES]
 * Scenario "shared": samples point at 2 000 stack arrays (1 000 distinct contents, each twice),
 * 24 frames deep, as an analyzer hands out one array per interned stack. Scenario "copied": every
 * sample has its own array (strings shared), 12 frames deep, the slow path of the frame tree. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "output_test.h"
#include "xorshift.h"

enum { FUNCTIONS = 300, FILES = 40, STACKS = 1000, DEPTH = 24, COPIED_DEPTH = 12, LOCKS = 12 };

static char function_names[FUNCTIONS][40], file_names[FILES][64], lock_names[LOCKS][48];
static const char *const kinds[] = {"lock", "critical_section", "pymutex", "condition"};

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng(void) { return xorshift64(&rng_state); }

static void fill_stack(struct out_frame *frames, size_t depth, uint64_t seed)
{
    /* Stacks share their outer frames (a few entry points), then diverge. */
    for (size_t d = 0; d < depth; d++) {
        uint64_t h = seed >> (d < 4 ? 60 : 0);
        h = h * 0x9e3779b97f4a7c15ull + d * 7919;
        size_t fn = (size_t)(h >> 17) % FUNCTIONS;
        frames[depth - 1 - d] = (struct out_frame){function_names[fn], file_names[fn % FILES],
                                                   (int)(10 + (h >> 40) % 500), fn % 17 == 0};
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int write_pprof(FILE *f, const struct out_sample *s, size_t n, const struct flame_options *opt)
{
    (void)opt;
    const struct pprof_meta meta = {0, 1000000000};
    return out_write_pprof_gz(f, s, n, &meta);
}

static void run(const char *scenario, const struct out_sample *samples, size_t n)
{
    static const struct {
        const char *name, *ext;
        ot_flame_writer writer;
    } writers[] = {
        {"folded", "folded", out_write_folded},
        {"svg", "svg", out_write_svg},
        {"html", "html", out_write_html},
        {"pprof", "pb.gz", write_pprof},
    };
    struct flame_options opt = {FLAME_WEIGHT_WAIT, "bench", NULL};
    for (size_t i = 0; i < sizeof writers / sizeof writers[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%s", scenario, writers[i].ext);
        double t0 = now();
        char *path = ot_write_flame(name, writers[i].writer, samples, n, &opt);
        double t1 = now();
        size_t len = 0;
        char *data = path ? ot_read_file(path, &len) : NULL;
        printf("%-7s %zu samples  %-6s %7.3f s  %9zu bytes\n", scenario, n, writers[i].name, t1 - t0, len);
        free(data);
        free(path);
    }
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    for (int i = 0; i < FUNCTIONS; i++)
        snprintf(function_names[i], sizeof function_names[i], "module%d.Class%d.method_%d", i % 9, i % 23, i);
    for (int i = 0; i < FILES; i++)
        snprintf(file_names[i], sizeof file_names[i], "/srv/app/pkg%d/module_%d.py", i % 5, i);
    for (int i = 0; i < LOCKS; i++)
        snprintf(lock_names[i], sizeof lock_names[i], "%s @0x7f00%04x", kinds[i % 4], i * 64);

    static struct out_frame stacks[2 * STACKS][DEPTH];
    for (int s = 0; s < STACKS; s++) {
        uint64_t seed = rng();
        fill_stack(stacks[s], DEPTH, seed);
        memcpy(stacks[STACKS + s], stacks[s], sizeof stacks[s]);
    }
    struct out_sample *samples = malloc(n * sizeof *samples);
    struct out_frame *copies = malloc(n * COPIED_DEPTH * sizeof *copies);
    if (!samples || !copies) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng();
        size_t stack = (size_t)(r % (2 * STACKS)), lock = (size_t)((r >> 20) % LOCKS);
        samples[i] = (struct out_sample){stacks[stack], DEPTH, lock_names[lock], kinds[lock % 4],
                                         1000 + (r >> 40) % 100000, 1};
    }
    run("shared", samples, n);
    for (size_t i = 0; i < n; i++) {
        memcpy(&copies[i * COPIED_DEPTH], samples[i].frames + DEPTH - COPIED_DEPTH, COPIED_DEPTH * sizeof *copies);
        samples[i].frames = &copies[i * COPIED_DEPTH];
        samples[i].depth = COPIED_DEPTH;
    }
    run("copied", samples, n);
    free(samples);
    free(copies);
    ot_cleanup();
    return 0;
}
