/*
 * web.h - the web page's files (web/, built with npm), served at / by the
 * same server and port as the API.
 *
 * The built directory is read once at start into memory: each file's
 * bytes, its content type by extension, and whether its name carries a
 * content hash (Vite's assets/NAME-HASH.EXT, cached for a year) or not
 * (index.html, revalidated each time). Only the files found then are ever
 * served: a request names one of them exactly, so nothing outside the
 * directory (no "..", no link followed out of it) can be reached, and a
 * file changed on disk afterwards is not seen until the next start.
 */
#ifndef PERPSIM_API_WEB_H
#define PERPSIM_API_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEB_FILES_MAX 512
#define WEB_BYTES_MAX (64u << 20)

struct web_file {
    char *path;        /* "/index.html", "/assets/index-3f2a.js" */
    unsigned char *body;
    size_t len;
    const char *ctype;
    bool immutable;    /* a hashed asset: Cache-Control immutable */
};

struct web;

/* Loads every regular file under dir (at most WEB_FILES_MAX files and
 * WEB_BYTES_MAX bytes). NULL with a message when dir cannot be read, is
 * too large, or has no index.html. */
struct web *web_load(const char *dir, char *err, size_t errcap);
void web_free(struct web *w);
/* The file for a request path ("/" is "/index.html"), or NULL. */
const struct web_file *web_find(const struct web *w, const char *path);
uint32_t web_count(const struct web *w);

#endif
