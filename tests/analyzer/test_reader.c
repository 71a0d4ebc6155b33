/* The reader on its own: every record of every chunk is visited, in order, from the mapped file; and a
 * file cut short by someone else while it is being walked ends the walk with RD_ERR_CUT_SHORT and its
 * one-line reason, not with a crash from the lost pages nor an exit: the process goes on (`top` must
 * restore the terminal), and a SIGBUS outside any walk still meets the default action. A twin of an open
 * file (rd_twin), walked in another thread while the file's own walk runs, sees the same records, and
 * its own walk ends with RD_ERR_CUT_SHORT in that thread when the file is cut short under it.
 *
 *   test_reader TMPDIR */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ftprof/format.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(UNDER_ASAN)
#define UNDER_ASAN 1
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
#include "reader.h"
#include "check.h"

#define CHUNK (64u << 10)
#define CHUNKS 16u
#define RECORD 64u


/* A recording of CHUNKS full chunks of RECORD-byte records, each carrying its own sequence number. */
static void write_recording(const char *path)
{
    struct ftp_file_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, FTP_MAGIC, FTP_MAGIC_LEN);
    h.version = h.min_reader_version = FTP_VERSION;
    h.header_size = FTP_HEADER_SIZE;
    h.chunk_size = CHUNK;
    h.chunk_count = h.chunks_used = CHUNKS;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, &h, sizeof h) != (ssize_t)sizeof h) {
        perror(path);
        exit(2);
    }
    static uint8_t chunk[CHUNK];
    uint32_t seq = 0;
    for (uint32_t c = 0; c < CHUNKS; c++) {
        for (uint32_t off = 0; off < CHUNK; off += RECORD) {
            struct ftp_record r = {.size = RECORD, .type = 0x7ffe};
            memcpy(chunk + off, &r, sizeof r);
            memcpy(chunk + off + sizeof r, &seq, sizeof seq);
            seq++;
        }
        if (write(fd, chunk, CHUNK) != (ssize_t)CHUNK) {
            perror(path);
            exit(2);
        }
    }
    close(fd);
}

struct walk {
    uint32_t next, bad;
    const char *cut; /* truncate this file when the walk reaches the second chunk */
};

static bool visit(void *ctx, uint32_t chunk, const struct ftp_record *rec)
{
    struct walk *w = ctx;
    uint32_t seq;
    memcpy(&seq, rec + 1, sizeof seq);
    w->bad += seq != w->next++;
    if (w->cut && chunk == 1) {
        if (truncate(w->cut, FTP_HEADER_SIZE) != 0)
            _exit(90);
        w->cut = NULL;
    }
    return true;
}

struct twin_walk {
    struct rd_file *f;
    struct walk w;
    int rc;
};

static void *twin_main(void *arg)
{
    struct twin_walk *t = arg;
    t->rc = rd_walk(t->f, visit, &t->w);
    return NULL;
}

/* The file's twin walked in a thread of its own (cut short at its second chunk if `cut`) while the
 * file itself is walked in this one (if `beside`). */
static void check_twin(const char *path, bool cut, bool beside)
{
    char err[256];
    struct rd_file f, twin;
    CHECK(rd_open(&f, path, err, sizeof err) == 0, "rd_open for the twin: %s", err);
    CHECK(rd_twin(&f, &twin) == 0, "rd_twin of a mapped file");
    struct twin_walk t = {.f = &twin, .w = {.cut = cut ? path : NULL}};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, twin_main, &t) == 0, "pthread_create");
    struct walk w = {0};
    int rc = beside ? rd_walk(&f, visit, &w) : 0;
    pthread_join(th, NULL);
    if (cut) {
        CHECK(t.rc == RD_ERR_CUT_SHORT, "a twin cut short mid-walk: its walk gave %d, want RD_ERR_CUT_SHORT", t.rc);
    } else {
        CHECK(t.rc == 0 && t.w.next == CHUNKS * (CHUNK / RECORD) && t.w.bad == 0,
              "the twin's walk: %d, %u records (%u out of order)", t.rc, t.w.next, t.w.bad);
        CHECK(rc == 0 && w.next == CHUNKS * (CHUNK / RECORD) && w.bad == 0,
              "the file's walk beside its twin's: %d, %u records (%u out of order)", rc, w.next, w.bad);
    }
    rd_close(&twin);
    rd_close(&f);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/test_reader.%ld.ftp", dir, (long)getpid());
    unlink(path);
    write_recording(path);

    struct rd_file f;
    int rc = rd_open(&f, path, err, sizeof err);
    CHECK(rc == 0, "rd_open: %s", err);
    struct walk w = {0};
    CHECK(rd_walk(&f, visit, &w) == 0, "rd_walk failed");
    CHECK(w.next == CHUNKS * (CHUNK / RECORD) && w.bad == 0, "visited %u records (%u out of order), want %u",
          w.next, w.bad, CHUNKS * (CHUNK / RECORD));
    /* The second walk (the analyzer reads definitions, then events) sees the same. */
    w = (struct walk){0};
    CHECK(rd_walk(&f, visit, &w) == 0 && w.next == CHUNKS * (CHUNK / RECORD) && w.bad == 0, "second walk");
    rd_close(&f);

    check_twin(path, false, true);
    check_twin(path, true, false);
    unlink(path);
    write_recording(path); /* whole again */

    /* Cut short by someone else mid-walk: the walk returns the error, in this process. */
    struct rd_file g;
    CHECK(rd_open(&g, path, err, sizeof err) == 0, "rd_open before the cut: %s", err);
    struct walk cut = {.cut = path};
    rc = rd_walk(&g, visit, &cut);
    CHECK(rc == RD_ERR_CUT_SHORT, "a file cut short mid-walk: rd_walk gave %d, want RD_ERR_CUT_SHORT", rc);
    CHECK(cut.next > CHUNK / RECORD && cut.next < CHUNKS * (CHUNK / RECORD), "stopped after %u records", cut.next);
    const char *why = rd_error_text(rc);
    CHECK(strstr(why, "cut short") && !strchr(why, '\n'), "one line, got: %s", why);
    rd_close(&g);

    /* The guard is down after the walk: a SIGBUS elsewhere (here a page of another file, past its
     * end) still kills the process by the default action, in a child. */
    pid_t child = fork();
    if (child == 0) {
        int fd = open(path, O_RDONLY);
        const volatile uint8_t *m = fd < 0 ? NULL : mmap(NULL, 2 * CHUNK, PROT_READ, MAP_SHARED, fd, 0);
        if (!m || m == MAP_FAILED)
            _exit(91);
        _exit(m[CHUNK] == 0 ? 92 : 93); /* past the end of the cut file */
    }
    int status = 0;
    waitpid(child, &status, 0);
#if UNDER_ASAN
    /* AddressSanitizer takes SIGBUS itself (handle_sigbus): it reports the fault and exits 1. */
    bool died = WIFEXITED(status) && WEXITSTATUS(status) == 1;
#else
    bool died = WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS;
#endif
    CHECK(died, "a SIGBUS outside a walk: child %s %d, want SIGBUS",
          WIFEXITED(status) ? "exited" : "killed by signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));

    unlink(path);
    if (failures)
        return 1;
    printf("reader: ok\n");
    return 0;
}
