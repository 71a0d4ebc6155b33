/* The reader on its own: every record of every chunk is visited, in order, from the mapped file; and a
 * file cut short by someone else while it is being walked ends the walk with the one-line error and the
 * documented exit code (3, cannot read), not with a crash from the lost pages.
 *
 *   test_reader TMPDIR */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcodes.h"
#include "ftprof/format.h"
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

    /* Cut short by another process mid-walk: the child reports it and exits 3. */
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        struct rd_file g;
        if (rd_open(&g, path, err, sizeof err) != 0)
            _exit(91);
        struct walk cut = {.cut = path};
        rd_walk(&g, visit, &cut);
        _exit(92); /* the pages past the cut were read without a fault: not what this test is about */
    }
    close(pipefd[1]);
    char msg[512] = {0};
    size_t got = 0;
    ssize_t n;
    while ((n = read(pipefd[0], msg + got, sizeof msg - 1 - got)) > 0)
        got += (size_t)n;
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == FTPROF_EXIT_CANNOT_READ,
          "a file cut short mid-walk: child %s %d, want exit %d", WIFEXITED(status) ? "exited" : "killed by signal",
          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), FTPROF_EXIT_CANNOT_READ);
    CHECK(strstr(msg, path) && strstr(msg, "cut short") && strchr(msg, '\n') == msg + strlen(msg) - 1,
          "one line naming the file, got: %s", msg);
    unlink(path);
    if (failures)
        return 1;
    printf("reader: ok\n");
    return 0;
}
