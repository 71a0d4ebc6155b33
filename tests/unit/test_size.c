/* FTPROF_BUFFER's parser (include/ftprof/size.h), shared by the recorder and `ftprof attach`: the sizes it
 * takes, the limits it clamps to and what it refuses. */
#include <stdint.h>

#include "ftprof/size.h"
#include "check.h"

static void expect(const char *text, enum ftp_size_result want, uint64_t bytes)
{
    uint64_t got = 12345;
    enum ftp_size_result r = ftp_parse_size(text, &got);
    CHECK(r == want, "%s: result %d, expected %d", text, (int)r, (int)want);
    if (want != FTP_SIZE_NOT_A_SIZE)
        CHECK(got == bytes, "%s: %llu bytes, expected %llu", text, (unsigned long long)got, (unsigned long long)bytes);
}

int main(void)
{
    expect("64M", FTP_SIZE_OK, 64ull << 20);
    expect("256k", FTP_SIZE_OK, 256ull << 10);
    expect("1G", FTP_SIZE_OK, 1ull << 30);
    expect("100G", FTP_SIZE_OK, 100ull << 30);
    expect("1T", FTP_SIZE_OK, 1ull << 40); /* the largest, said in its own unit */
    expect("1024G", FTP_SIZE_OK, 1ull << 40);
    expect("64MiB", FTP_SIZE_OK, 64ull << 20);
    expect("64MB", FTP_SIZE_OK, 64ull << 20);
    expect("65536", FTP_SIZE_OK, 65536);
    expect("2T", FTP_SIZE_TOO_LARGE, FTP_BUFFER_MAX);
    expect("1025G", FTP_SIZE_TOO_LARGE, FTP_BUFFER_MAX);
    expect("99999999999999999999999", FTP_SIZE_TOO_LARGE, FTP_BUFFER_MAX);
    expect("1K", FTP_SIZE_TOO_SMALL, FTP_BUFFER_MIN);
    expect("100", FTP_SIZE_TOO_SMALL, FTP_BUFFER_MIN);
    const char *junk[] = {"", "M", "0", "0M", "-1M", "1.5G", "64 M", "64X", "64Mi", "lots", "1e6"};
    for (unsigned i = 0; i < sizeof junk / sizeof *junk; i++)
        expect(junk[i], FTP_SIZE_NOT_A_SIZE, 0);
    return failures != 0;
}
