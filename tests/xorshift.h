/* The C tests' pseudo-random numbers: xorshift64 (Marsaglia), the same sequence on every machine for a
 * given seed, so a failure can be replayed. */
#ifndef FTPROF_TESTS_XORSHIFT_H
#define FTPROF_TESTS_XORSHIFT_H

#include <stdint.h>

static inline uint64_t xorshift64(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

#endif
