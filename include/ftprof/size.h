/* FTPROF_BUFFER's one parser, shared by the recorder (preload/init.c) and `ftprof attach`, so that a size
 * means the same everywhere and is refused with the same words. Pure code: no allocation, no libc state
 * (the recorder runs it in its constructor, before the program's own code). */
#ifndef FTPROF_SIZE_H
#define FTPROF_SIZE_H

#include <stdbool.h>
#include <stdint.h>

#define FTP_BUFFER_MIN (16ull << 10)  /* a header page, the in-flight table and a few chunks */
#define FTP_BUFFER_MAX (1ull << 40)   /* 1T: the file is sparse (blocks are reserved as chunks are used),
                                         but its chunk count and the mapping stay within reason */
#define FTP_BUFFER_DEFAULT (64ull << 20)
/* The limits as the messages say them. */
#define FTP_BUFFER_LIMITS_TEXT "between 16K and 1T"

enum ftp_size_result {
    FTP_SIZE_OK,
    FTP_SIZE_NOT_A_SIZE, /* not a number with an optional K/M/G/T (KiB... and KB... alike: powers of two) */
    FTP_SIZE_TOO_SMALL,  /* *out is FTP_BUFFER_MIN */
    FTP_SIZE_TOO_LARGE,  /* *out is FTP_BUFFER_MAX */
};

/* Parses "64M", "256K", "1G", "1T", "65536" into bytes. */
static inline enum ftp_size_result ftp_parse_size(const char *s, uint64_t *out)
{
    const char *p = s;
    uint64_t n = 0;
    int digits = 0;
    bool big = false;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (n > (UINT64_MAX - 9) / 10)
            big = true;
        else
            n = n * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case 'K': case 'k': shift = 10; p++; break;
    case 'M': case 'm': shift = 20; p++; break;
    case 'G': case 'g': shift = 30; p++; break;
    case 'T': case 't': shift = 40; p++; break;
    default: break;
    }
    if (shift && p[0] == 'i' && p[1] == 'B')
        p += 2;
    else if (shift && p[0] == 'B')
        p++;
    if (!digits || *p || n == 0)
        return FTP_SIZE_NOT_A_SIZE;
    if (big || n > (FTP_BUFFER_MAX >> shift)) {
        *out = FTP_BUFFER_MAX;
        return FTP_SIZE_TOO_LARGE;
    }
    n <<= shift;
    if (n < FTP_BUFFER_MIN) {
        *out = FTP_BUFFER_MIN;
        return FTP_SIZE_TOO_SMALL;
    }
    *out = n;
    return FTP_SIZE_OK;
}

#endif /* FTPROF_SIZE_H */
