/*
 * fuzz_journal.c - a journal frame's payload as the reader meets it after
 * damage: core_cmd_decode must refuse or decode without reading outside
 * the bytes, and what it decodes must encode back to the same bytes (a
 * mismatch aborts: a finding).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    struct core_cmd_buf *b = malloc(sizeof(*b));
    if (core_cmd_decode(p, size, b) == 0) {
        struct rbuf r = {0};
        core_cmd_encode(&b->cmd, &r);
        if (!r.bad && (r.len != size || memcmp(r.p, p, size) != 0))
            abort();
        rbuf_free(&r);
    }
    free(b);
    free(p);
    return 0;
}
