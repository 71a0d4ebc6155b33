/* libFuzzer target: any byte string handed to the reader and profile model, then to both report
 * writers, must load or be refused cleanly: no crash, hang, leak or sanitizer report.
 * Built by `meson setup -Dfuzz=true` with CC=clang; tests/analyzer/run-fuzz drives it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "profile.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    /* The reader works on files: give it one without touching the disk. */
    int fd = memfd_create("ftprof-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char *paths[] = {path};
    struct profile p;
    char err[256];
    size_t failed;
    if (prof_load(&p, paths, 1, true, &failed, err, sizeof(err)) == 0 && sink) {
        report_json(sink, &p, 0);
        struct report_text_options opt = {.top = 50, .sites = 5, .width = 100};
        report_text(sink, &p, &opt);
    }
    prof_free(&p);
    close(fd);
    return 0;
}
