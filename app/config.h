/*
 * config.h - the JSON config file (--config FILE; docs/configuration.md).
 * The file changes a srv_config already holding the defaults; the command
 * line comes after it. Every key known and of its type, every number in its
 * range, or exit status 2 with a message on stderr (nothing cast out of
 * range, nothing ignored).
 */
#ifndef PERPSIM_APP_CONFIG_H
#define PERPSIM_APP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "api/server.h"

/* What the file says beyond srv_config itself (in: the values so far). */
struct config_effects {
    bool demo;      /* "demo" */
    bool token_set; /* "adminToken" given */
    bool market_on; /* "market": false or an object */
};

/* Reads and applies the file at path. 0, or 2 with the message printed. */
int config_load(struct srv_config *c, const char *path, struct config_effects *fx);
/* The same for len bytes of text (path only names it in messages): the one
 * JSON object and nothing after it. */
int config_parse(struct srv_config *c, const char *text, size_t len, const char *path, struct config_effects *fx);

/* "HOST:PORT" into c->host and c->port; 0 or -1. */
int config_listen(struct srv_config *c, const char *v);
/* "default", "2021" or "off"; 0 or -1. */
int config_rate_profile(const char *v, enum rl_profile *p);
/* Prints "perpsim: " fmt (with arg) on stderr; returns 2, the exit status. */
int perpsim_fail(const char *fmt, const char *arg);

#endif
