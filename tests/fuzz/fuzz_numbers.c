/*
 * fuzz_numbers.c - the timestamps and numbers a client writes: ISO 8601
 * and epoch times, fixed-point prices at every scale, quantities, and
 * percent-decoding; each time that parses must format and parse back to
 * itself (a mismatch aborts: a finding).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/params.h"
#include "api/timefmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    memcpy(s, data, size);
    ms_t t;
    if (tf_parse_time(s, size, &t) == TF_OK) {
        char buf[TF_ISO_BUF];
        ms_t back;
        if (tf_format_ms(t, buf, sizeof(buf)) == TF_OK &&
            (tf_parse_time(buf, strlen(buf), &back) != TF_OK || back != t))
            abort();
    }
    int64_t v;
    for (int scale = 0; scale <= 8; scale++)
        (void)tf_parse_fixed(s, size, scale, &v);
    (void)tf_parse_qty(s, size, &v);
    char out[256];
    (void)prm_decode(s, size, out, sizeof(out), true);
    (void)prm_decode(s, size, out, sizeof(out), false);
    free(s);
    return 0;
}
