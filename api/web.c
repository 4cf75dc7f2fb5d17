/*
 * web.c - the web page's files, loaded once and served from memory (web.h).
 */
#define _GNU_SOURCE
#include "api/web.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct web {
    struct web_file *f;
    uint32_t n;
    size_t bytes;
};

static const char *ctype_of(const char *name)
{
    static const struct { const char *ext, *type; } t[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(dot, t[i].ext) == 0)
            return t[i].type;
    return "application/octet-stream";
}

/* Vite writes its built assets to /assets/ as NAME-HASH.EXT, the hash 8
 * characters of [A-Za-z0-9_-]: their bytes never change under that name.
 * Anything else (index.html, files copied from public/) may change. */
static bool hashed(const char *path)
{
    if (strncmp(path, "/assets/", 8) != 0 || strchr(path + 8, '/'))
        return false;
    const char *name = path + 8;
    const char *dot = strrchr(name, '.');
    if (!dot || dot - name < 10)
        return false;
    const char *h = dot - 8;
    if (h[-1] != '-')
        return false;
    for (int i = 0; i < 8; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int read_file(int dfd, const char *name, size_t max, unsigned char **out, size_t *len)
{
    /* O_NONBLOCK: a FIFO put in place of the file cannot hold start-up. */
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        int e = fstat(fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : EFBIG;
        close(fd);
        errno = e;
        return -1;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *p = malloc(n ? n : 1);
    size_t got = 0;
    while (p && got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) {
            if (r == 0)
                errno = EIO; /* shorter than it was a moment ago */
            free(p);
            p = NULL;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (!p)
        return -1;
    *out = p;
    *len = n;
    return 0;
}

/* The files under dfd (prefix: their request path so far), depth first. */
static int walk(struct web *w, int dfd, const char *prefix, int depth, char *err, size_t errcap)
{
    if (depth > 8) {
        snprintf(err, errcap, "%.300s: directories nested too deep", prefix);
        return -1;
    }
    int fd2 = dup(dfd);
    DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
    if (!d) {
        if (fd2 >= 0)
            close(fd2);
        snprintf(err, errcap, "%.300s: %s", prefix, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., and hidden files are not the page's */
        char path[1024];
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", prefix, e->d_name) >= sizeof(path))
            continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            if (sub < 0)
                continue;
            rc = walk(w, sub, path, depth + 1, err, errcap);
            close(sub);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue; /* links, devices: never served */
        if (w->n >= WEB_FILES_MAX) {
            snprintf(err, errcap, "more than %d files", WEB_FILES_MAX);
            rc = -1;
            break;
        }
        unsigned char *body;
        size_t len;
        if (read_file(dfd, e->d_name, WEB_BYTES_MAX - w->bytes, &body, &len) != 0) {
            snprintf(err, errcap, "%.300s: %s", path, errno == EFBIG ? "past the size limit" : strerror(errno));
            rc = -1;
            break;
        }
        char *p = strdup(path);
        if (!p) {
            free(body);
            snprintf(err, errcap, "out of memory");
            rc = -1;
            break;
        }
        w->f[w->n++] = (struct web_file){p, body, len, ctype_of(e->d_name), hashed(p)};
        w->bytes += len;
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct web_file *)a)->path, ((const struct web_file *)b)->path);
}

struct web *web_load(const char *dir, char *err, size_t errcap)
{
    struct web *w = calloc(1, sizeof(*w));
    if (w)
        w->f = calloc(WEB_FILES_MAX, sizeof(*w->f));
    if (!w || !w->f) {
        web_free(w);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errcap, "%s: %s", dir, strerror(errno));
        web_free(w);
        return NULL;
    }
    char e2[512] = "";
    int rc = walk(w, dfd, "", 0, e2, sizeof(e2));
    close(dfd);
    if (rc != 0) {
        snprintf(err, errcap, "%.300s: %.400s", dir, e2);
        web_free(w);
        return NULL;
    }
    qsort(w->f, w->n, sizeof(*w->f), by_path);
    if (!web_find(w, "/")) {
        snprintf(err, errcap, "%s: no index.html", dir);
        web_free(w);
        return NULL;
    }
    return w;
}

void web_free(struct web *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; w->f && i < w->n; i++) {
        free(w->f[i].path);
        free(w->f[i].body);
    }
    free(w->f);
    free(w);
}

const struct web_file *web_find(const struct web *w, const char *path)
{
    if (!w || !path)
        return NULL;
    struct web_file key = {(char *)(uintptr_t)(strcmp(path, "/") == 0 ? "/index.html" : path), NULL, 0, NULL,
                           false};
    return bsearch(&key, w->f, w->n, sizeof(*w->f), by_path);
}

uint32_t web_count(const struct web *w)
{
    return w ? w->n : 0;
}
