/* Runs the recorder's layout layer (preload/layout.c) on a _Py_DebugOffsets table read from stdin and
 * prints what it made of it as one JSON line, so a test can hold the table's word indices against sizes
 * the interpreter shows from Python, and feed it altered tables. tools/layout-fingerprint uses it too.
 *
 * stdin, as dumped from a live interpreter:
 *   line 1: the table, u64 words from word 0 (the cookie), space-separated;
 *   line 2 (optional): where PyType_Type is, then the bytes of PyType_Type, PyCode_Type, PyUnicode_Type
 *           and PyBytes_Type in hex: the layout is then also checked against them
 *           (ftp_layout_check_types), as the recorder does in the interpreter.
 * stdout: {"known": false, "fingerprint": "0x...", "words": N} or {"known": true, "fingerprint": ...,
 * "words": N, <layout>}; N is the table's length for its minor version (0: no word table). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recorder.h"

#define MAX_WORDS 512
#define MAX_OBJECT 4096

static uint64_t words[MAX_WORDS];
static uint8_t objects[4][MAX_OBJECT]; /* zero past what was given */

/* One hex token of `line` (advanced past it) into `out`; false if there is none. */
static bool read_hex_object(char **line, uint8_t *out)
{
    char *s = *line + strspn(*line, " \t");
    size_t len = strspn(s, "0123456789abcdefABCDEF");
    if (!len || len % 2 || len / 2 > MAX_OBJECT)
        return false;
    for (size_t i = 0; i < len / 2; i++) {
        char byte[3] = {s[2 * i], s[2 * i + 1], 0};
        out[i] = (uint8_t)strtoul(byte, NULL, 16);
    }
    *line = s + len;
    return true;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    size_t n = 0;
    if (getline(&line, &cap, stdin) > 0)
        for (char *s = line, *end; n < MAX_WORDS; s = end) {
            words[n] = strtoull(s, &end, 10);
            if (end == s)
                break;
            n++;
        }
    struct ftp_layout_types types = {0};
    bool with_types = false;
    if (getline(&line, &cap, stdin) > 0) {
        char *s = line, *end;
        types.type_addr = (uintptr_t)strtoull(s, &end, 10);
        s = end;
        with_types = end != line && read_hex_object(&s, objects[0]) && read_hex_object(&s, objects[1]) &&
                     read_hex_object(&s, objects[2]) && read_hex_object(&s, objects[3]);
        if (!with_types) {
            fprintf(stderr, "layout_dump: line 2 is not: type address, then 4 objects in hex\n");
            return 2;
        }
        types.type = objects[0], types.code = objects[1], types.str = objects[2], types.bytes = objects[3];
    }
    free(line);
    if (n < 3) {
        fprintf(stderr, "layout_dump: line 1 holds %zu words, not a table\n", n);
        return 2;
    }
    struct ftp_layout l;
    unsigned length;
    uint64_t fingerprint = ftp_layout_fingerprint(words, words[1], &length);
    bool known = ftp_layout_load(&l, words, words[1], words[2] != 0);
    if (known && with_types)
        known = ftp_layout_check_types(&l, &types);
    if (!known) {
        printf("{\"known\": false, \"fingerprint\": \"0x%016" PRIx64 "\", \"words\": %u}\n", fingerprint, length);
        return 0;
    }
    printf("{\"known\": true, \"fingerprint\": \"0x%016" PRIx64 "\", \"words\": %u, \"types_checked\": %s, \"minor\": %u"
           ", \"ob_size\": %" PRIu64 ", \"ob_type\": %" PRIu64 ", \"tp_name\": %" PRIu64 ", \"tp_flags\": %" PRIu64
           ", \"tp_basicsize\": %" PRIu64 ", \"ht_cached_keys\": %" PRIu64 ", \"str_state\": %" PRIu64
           ", \"str_length\": %" PRIu64 ", \"str_ascii_size\": %" PRIu64 ", \"str_compact_size\": %" PRIu64
           ", \"co_code_adaptive\": %" PRIu64 ", \"bytes_sval\": %" PRIu64 ", \"is_gc\": %" PRIu64
           ", \"gc_collecting\": %" PRIu64 ", \"ts_current_frame\": %" PRIu64 ", \"fr_owner\": %" PRIu64
           ", \"co_tlbc\": %" PRIu64 ", \"ob_mutex\": %" PRIu64 ", \"spin_max\": %u, \"str_kind_shift\": %u}\n",
           fingerprint, length, with_types ? "true" : "false", l.minor, l.ob_size, l.ob_type, l.tp_name, l.tp_flags,
           l.tp_basicsize, l.ht_cached_keys, l.str_state, l.str_length, l.str_ascii_size, l.str_compact_size,
           l.co_code_adaptive, l.bytes_sval, l.is_gc, l.gc_collecting, l.ts_current_frame, l.fr_owner, l.co_tlbc,
           l.ob_mutex, l.spin_max, l.str_kind_shift);
    return 0;
}
