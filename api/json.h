/*
 * json.h - the JSON text of a reply, byte for byte what cJSON's
 * cJSON_PrintUnformatted() gives, about three times faster.
 */
#ifndef PERPSIM_API_JSON_H
#define PERPSIM_API_JSON_H

#include <cjson/cJSON.h>

/* malloc'd text; NULL where cJSON_PrintUnformatted() gives NULL (out of
 * memory, a value cJSON cannot print). Checked builds compare every text
 * with cJSON's own and abort on a difference. */
char *json_print(const cJSON *body);

#include <stdbool.h>
#include <stddef.h>

/* Whether s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF). Every reply must be valid JSON, so
 * text that is not is refused on the way in (an order's text, a clOrdID)
 * or scrubbed where it is echoed (an error message naming a bad key). */
bool json_utf8_valid(const char *s, size_t n);
/* Replaces each byte of s that is not part of a well-formed sequence with
 * '?', in place. */
void json_utf8_scrub(char *s);

#endif
