/* Runs the recorder's layout layer (preload/layout.c) on a _Py_DebugOffsets table read from stdin (one
 * u64 per line, as dumped from a live interpreter) and prints what it made of it as one JSON line, so a
 * test can hold the table's word indices against sizes the interpreter shows from Python. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "recorder.h"

int main(void)
{
    static uint64_t words[512];
    size_t n = 0;
    while (n < sizeof words / sizeof *words && scanf("%" SCNu64, &words[n]) == 1)
        n++;
    struct ftp_layout l;
    bool known = n > 2 && ftp_layout_load(&l, words, words[1], words[2] != 0);
    if (!known) {
        printf("{\"known\": false}\n");
        return 0;
    }
    printf("{\"known\": true, \"minor\": %u, \"ob_size\": %" PRIu64 ", \"ob_type\": %" PRIu64
           ", \"tp_name\": %" PRIu64 ", \"tp_basicsize\": %" PRIu64 ", \"ht_cached_keys\": %" PRIu64
           ", \"str_ascii_size\": %" PRIu64 ", \"str_compact_size\": %" PRIu64 ", \"co_code_adaptive\": %" PRIu64
           ", \"bytes_sval\": %" PRIu64 ", \"ts_current_frame\": %" PRIu64 ", \"fr_owner\": %" PRIu64
           ", \"co_tlbc\": %" PRIu64 ", \"ob_mutex\": %" PRIu64 ", \"spin_max\": %u, \"str_kind_shift\": %u}\n",
           l.minor, l.ob_size, l.ob_type, l.tp_name, l.tp_basicsize, l.ht_cached_keys, l.str_ascii_size,
           l.str_compact_size, l.co_code_adaptive, l.bytes_sval, l.ts_current_frame, l.fr_owner, l.co_tlbc,
           l.ob_mutex, l.spin_max, l.str_kind_shift);
    return 0;
}
