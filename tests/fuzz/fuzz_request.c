/*
 * fuzz_request.c - a request's parameters as a client sends them: the
 * query string and the body (JSON or form) merged by prm_parse, then the
 * table query (count, start, reverse, columns, startTime/endTime and the
 * filter language) and the getters every route uses, and the filter
 * matched against a row. Input: byte 0 picks the content type, then the
 * query, a newline, the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/json.h"
#include "api/params.h"
#include "api/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const types[] = {"application/json", "application/x-www-form-urlencoded", NULL,
                                        "text/plain"};
    const char *ct = types[data[0] & 3];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(p, '\n', n);
    size_t qlen = nl ? (size_t)(nl - p) : n;
    const char *body = nl ? nl + 1 : NULL;
    size_t blen = nl ? n - qlen - 1 : 0;
    /* exact-size copies, so a read past either end is caught */
    char *q = malloc(qlen ? qlen : 1), *b = malloc(blen ? blen : 1);
    memcpy(q, p, qlen);
    if (blen)
        memcpy(b, body, blen);
    (void)json_utf8_valid(b, blen);
    cJSON *params = NULL;
    if (prm_parse(q, qlen, blen ? b : NULL, blen, ct, &params) == PRM_OK && params) {
        const char *s;
        int64_t v;
        bool f;
        cJSON *j = NULL;
        (void)prm_str(params, "symbol", &s);
        (void)prm_fixed(params, "price", 8, &v);
        (void)prm_fixed(params, "orderQty", 0, &v);
        (void)prm_int(params, "count", &v);
        (void)prm_bool(params, "reverse", &f);
        if (prm_json(params, "filter", &j) == PRM_FOUND)
            cJSON_Delete(j);
        struct q_opts o;
        if (q_parse(params, NULL, &o) == Q_OK) {
            cJSON *row = cJSON_Parse("{\"symbol\":\"XBTUSD\",\"side\":\"Buy\",\"price\":60000,"
                                     "\"orderQty\":100,\"ordStatus\":\"New\",\"execType\":\"Trade\","
                                     "\"timestamp\":\"2026-12-07T00:00:00.000Z\"}");
            if (row) {
                (void)q_match(&o, row, 1796601600000);
                struct q_collect c;
                if (q_collect_init(&c, &o)) {
                    (void)q_offer(&c, cJSON_Duplicate(row, 1), 1796601600000);
                    cJSON_Delete(q_collect_done(&c));
                }
                cJSON_Delete(row);
            }
            q_free(&o);
        }
        cJSON_Delete(params);
    }
    free(q);
    free(b);
    return 0;
}
