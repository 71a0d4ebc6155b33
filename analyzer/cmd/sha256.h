/* SHA-256 (FIPS 180-4), for the digest `ftprof attach` hands the target: the attach script checks the
 * recorder it is about to load against it. */
#ifndef FTPROF_SHA256_H
#define FTPROF_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* The digest as 64 lowercase hex digits and a NUL. */
void sha256_hex(struct sha256 *s, char hex[65]);
/* The digest of what fd reads from its current offset to its end, as hex: 0 or -errno. */
int sha256_fd_hex(int fd, char hex[65]);

#endif
