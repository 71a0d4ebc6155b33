/* libFuzzer target: any byte string handed to the reader and every pass of the analyzer that reads a
 * recording must load or be refused cleanly: no crash, hang, leak or sanitizer report.
 *
 * The input is one recording, or several laid end to end: a new file starts at each later occurrence
 * of the magic (up to FUZZ_MAX_FILES), so the multi-file paths (file numbers, per-file definitions,
 * cross-file merging) are fuzzed too. Each loaded profile goes through what the subcommands do with
 * it: both reports, the samples of waiters and of holders into every flame graph writer and pprof,
 * the trace export (which reads the files a second time), and the live view `top` shows.
 *
 * Built by `meson setup -Dfuzz=true` with CC=clang; tests/analyzer/run-fuzz drives it. Built without
 * libFuzzer as fuzz_replay (FUZZ_REPLAY_MAIN), it runs each file named on its command line (each *.ftp
 * of a directory) once through every pass: the meson test fuzz-replay, on the crashes the fuzzer ever
 * found (tests/analyzer/fuzz-regressions/) and its seed corpus (tests/analyzer/fuzz-corpus/). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cmd_samples.h"
#include "live.h"
#include "output.h"
#include "profile.h"
#include "report.h"

#define FUZZ_MAX_FILES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool replay_all; /* fuzz_replay: every pass on every input */

static int fuzz_memfd(const uint8_t *data, size_t size)
{
    int fd = memfd_create("ftprof-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return fd;
}

static void fuzz_samples(FILE *sink, const struct profile *p, bool holders)
{
    struct cmd_samples s;
    if (cmd_samples_build(p, holders, true, &s) < 0)
        return;
    for (int weight = FLAME_WEIGHT_WAIT; weight <= FLAME_WEIGHT_COUNT; weight++) {
        struct flame_options opt = {.weight = (enum flame_weight)weight, .title = "t", .subtitle = "s"};
        out_write_folded(sink, s.samples, s.n, &opt);
        out_write_svg(sink, s.samples, s.n, &opt);
        out_write_html(sink, s.samples, s.n, &opt);
    }
    struct pprof_meta meta = {.time_nanos = (int64_t)p->start_realtime_ns, .duration_nanos = (int64_t)p->duration_ns};
    out_write_pprof_gz(sink, s.samples, s.n, &meta);
    cmd_samples_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    if (!sink)
        return 0;
    /* The reader works on files: give it some without touching the disk. */
    size_t starts[FUZZ_MAX_FILES + 1], n = 0;
    starts[n++] = 0;
    for (size_t at = 1; n < FUZZ_MAX_FILES && at + FTP_MAGIC_LEN <= size; at++)
        if (memcmp(data + at, FTP_MAGIC, FTP_MAGIC_LEN) == 0)
            starts[n++] = at;
    starts[n] = size;
    int fds[FUZZ_MAX_FILES];
    char names[FUZZ_MAX_FILES][64];
    char *paths[FUZZ_MAX_FILES];
    size_t opened = 0;
    for (size_t i = 0; i < n; i++) {
        fds[opened] = fuzz_memfd(data + starts[i], starts[i + 1] - starts[i]);
        if (fds[opened] < 0)
            continue;
        snprintf(names[opened], sizeof(names[opened]), "/proc/self/fd/%d", fds[opened]);
        paths[opened] = names[opened];
        opened++;
    }

    /* Every input is loaded; what is made of it takes turns by its length, so that each run stays
     * fast (the fuzzer's mutations change lengths all the time). The replay does all of it. */
    unsigned pass = replay_all ? 7u : 1u << (size % 3);
    struct profile p = {0};
    char err[256];
    size_t failed;
    if (opened && prof_load(&p, paths, opened, true, &failed, err, sizeof(err)) == 0) {
        if (pass & 1) {
            report_json(sink, &p, 0);
            struct report_text_options opt = {.top = 50, .sites = 5, .width = 100};
            report_text(sink, &p, &opt);
        }
        if (pass & 2) {
            fuzz_samples(sink, &p, false);
            fuzz_samples(sink, &p, true);
        }
        if (pass & 4)
            out_write_trace(sink, &p, err, sizeof(err));
    }
    prof_free(&p);

    /* `top` reads one file at a time. */
    if ((pass & 4) && opened) {
        struct live_frame f;
        if (live_load(&f, paths[0], 1000000000ull, err, sizeof(err)) == 0) {
            live_print_text(sink, &f, 100, 20, false);
            live_print_json(sink, &f, 20);
        }
        live_free(&f); /* what a failed load had made too */
    }

    for (size_t i = 0; i < opened; i++)
        close(fds[i]);
    return 0;
}

#ifdef FUZZ_REPLAY_MAIN
#include <dirent.h>
#include <sys/stat.h>

static int fuzz_replay_file(const char *path)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        perror(path);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *b = realloc(buf, cap);
            if (!b) {
                fprintf(stderr, "%s: out of memory\n", path);
                free(buf);
                fclose(in);
                return 1;
            }
            buf = b;
        }
        size_t got = fread(buf + len, 1, cap - len, in);
        if (got == 0)
            break;
        len += got;
    }
    fclose(in);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    printf("%s: %zu bytes, replayed\n", path, len);
    return 0;
}

/* fuzz_replay FILE|DIR...: each file (each *.ftp of a directory, in name order) once through the target
 * above. A crash or a sanitizer report ends it; a missing directory has nothing to replay. */
int main(int argc, char **argv)
{
    replay_all = true;
    size_t replayed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            struct dirent **names;
            int n = scandir(argv[i], &names, NULL, alphasort);
            if (n < 0) {
                perror(argv[i]);
                return 1;
            }
            for (int k = 0; k < n; k++) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
                struct stat fs;
                size_t len = strlen(names[k]->d_name);
                bool recording = len > 4 && strcmp(names[k]->d_name + len - 4, ".ftp") == 0;
                if (recording && stat(path, &fs) == 0 && S_ISREG(fs.st_mode)) {
                    if (fuzz_replay_file(path) != 0)
                        return 1;
                    replayed++;
                }
                free(names[k]);
            }
            free(names);
        } else {
            if (fuzz_replay_file(argv[i]) != 0)
                return 1;
            replayed++;
        }
    }
    printf("%zu inputs replayed\n", replayed);
    return 0;
}
#endif
