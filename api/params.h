/*
 * params.h - a request's parameters, from wherever the client put them.
 *
 * BitMEX takes parameters from the query string, a JSON body or a form
 * body (application/x-www-form-urlencoded), on every verb including DELETE
 * (ccxt sends DELETE /order with a JSON body). prm_parse merges them into
 * one cJSON object:
 *   - query string first: '&'-separated name=value pairs, percent-decoded,
 *     '+' decoded as a space (Python requests) and %20 too (ccxt); a name
 *     without '=' gets ""; every value is a JSON string. A pair with an
 *     empty name is ignored; a repeated name keeps the last value.
 *   - then the body: a JSON object (when the content type is
 *     application/json or a "+json" type, any case, parameters allowed, or
 *     when the body starts with '{' or '[' after white space), or else a
 *     form body (values are strings, decoded like the query). A body key
 *     replaces a query key of the same name; a key repeated in a JSON body
 *     keeps its last value, as JSON.parse does.
 *   - an empty body (0 bytes or only white space) adds nothing.
 * Errors: a JSON body that does not parse or is not an object (an array,
 * a scalar), a body nested deeper than PRM_DEPTH_MAX, a NUL byte or the
 * escape \u0000 in it (cJSON would cut the string there): PRM_BAD_JSON;
 * bad percent-escapes, a NUL byte raw or decoded (%00) in the query or a
 * form body: PRM_BAD_QUERY.
 *
 * The getters accept a value in any of the forms clients send: a JSON
 * number or a decimal string ("100"), true/false or "true"/"false", a JSON
 * object/array or a string holding one (filter={"open":true} in a query).
 * JSON null counts as absent.
 */
#ifndef PERPSIM_API_PARAMS_H
#define PERPSIM_API_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Containers nested in one JSON text, the outer object counting 1. BitMEX
 * bodies nest at most 3 deep ({"orders":[{...}]}, /order/bulk); 8 leaves
 * room and keeps a hostile body from costing cJSON's recursion. */
#define PRM_DEPTH_MAX 8

enum prm_err {
    PRM_OK = 0,
    PRM_BAD_JSON,   /* body is not valid JSON / not an object / too deep */
    PRM_BAD_QUERY,  /* bad percent-escape or NUL in query or form body */
    PRM_NOMEM,
};

/* Builds the merged object into *out (caller frees with cJSON_Delete).
 * query: the part after '?', without it (may be NULL / qlen 0).
 * body/blen: raw body (may be NULL / 0). content_type may be NULL. */
enum prm_err prm_parse(const char *query, size_t qlen, const char *body, size_t blen,
                       const char *content_type, cJSON **out);
const char *prm_err_message(enum prm_err e); /* a BitMEX-style message */

/* Result of a getter. */
enum prm_get {
    PRM_ABSENT = 0, /* not there, or null */
    PRM_FOUND,      /* *out written */
    PRM_BAD_TYPE,   /* there, but not of a form this getter accepts */
    PRM_BAD_VALUE,  /* right form, impossible value (fractional count, NaN, overflow) */
};

/* Getters: name is looked up case-sensitively. A string whose text is not
 * of the getter's shape ("abc" for prm_int) is PRM_BAD_VALUE: the string
 * form is accepted, its content is not. PRM_BAD_TYPE is for JSON types the
 * getter never takes (an object for prm_int). */

/* A string (JSON string only; numbers are not turned into strings). */
enum prm_get prm_str(const cJSON *p, const char *name, const char **out);
/* A boolean: true/false, "true"/"false" (any case), 1/0, "1"/"0". Other
 * numbers and strings ("", "yes", 2) are PRM_BAD_VALUE. */
enum prm_get prm_bool(const cJSON *p, const char *name, bool *out);
/* An integer: a JSON number with no fractional part within +-2^53, or a
 * decimal integer string (optional sign, digits only) within int64.
 * "1.5", "1e2", " 1", "" and 100.5 are PRM_BAD_VALUE; -0 is 0. */
enum prm_get prm_int(const cJSON *p, const char *name, int64_t *out);
/* A fixed-point number with `scale` decimal digits (prices: 8): a finite
 * JSON number, or a decimal string ("35000.5", "1e3" refused). Refuses NaN,
 * infinities, more digits than the scale can hold exactly, overflow. A
 * JSON number is read through its shortest round-trip text
 * (tf_fixed_from_double): up to 15 significant digits it is exactly what
 * the client wrote; beyond, it may differ by half an ulp (relative 2^-53)
 * and must still be exact at the scale; a scaled magnitude above 2^53 is
 * refused (send such values as strings). -0 is 0. The sign is the
 * caller's to check. */
enum prm_get prm_fixed(const cJSON *p, const char *name, int scale, int64_t *out);
/* A JSON object or array, or a string that parses as one (depth and NUL
 * rules as for a body); *out is a new item the caller frees with
 * cJSON_Delete. A string that is not such a text is PRM_BAD_VALUE; so is a
 * failed allocation (the getters have no out-of-memory result). */
enum prm_get prm_json(const cJSON *p, const char *name, cJSON **out);

/* Percent-decodes src (len bytes) into dst (cap >= len + 1) and ends it
 * with a NUL; '+' becomes a space when plus_is_space. Returns the decoded
 * length, -1 on a bad escape ('%' not followed by two hex digits), a raw
 * or decoded NUL, or a short cap. */
long prm_decode(const char *src, size_t len, char *dst, size_t cap, bool plus_is_space);

#endif
