/*
 * journal.c - segments, frames, group commit, and reading them back
 * (journal.h).
 */
#define _GNU_SOURCE
#include "journal/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define SEG_MAGIC "PSJOURN1"
#define SEG_VERSION 1u
#define SEG_HEADER 32u
#define FRAME_HEADER 12u
#define FRAME_MIN 17u          /* seq, ts, type */
#define FRAME_MAX (1u << 20)   /* a config is a few KiB; anything near this is damage */
#define SEG_DIGITS 20

/* ---- little-endian fields ----------------------------------------------------- */

static void le_put(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le_get(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- policy names ------------------------------------------------------------- */

int journal_parse_fsync(const char *text, enum jr_fsync *mode, int *interval_ms)
{
    if (strcmp(text, "batch") == 0) {
        *mode = JR_FSYNC_BATCH;
        return 0;
    }
    if (strcmp(text, "off") == 0) {
        *mode = JR_FSYNC_OFF;
        return 0;
    }
    if (strncmp(text, "interval:", 9) == 0) {
        const char *d = text + 9;
        long v = 0;
        if (!*d)
            return -1;
        for (; *d; d++) {
            if (*d < '0' || *d > '9' || v > 60000)
                return -1;
            v = v * 10 + (*d - '0');
        }
        if (v < 1 || v > 60000)
            return -1;
        *mode = JR_FSYNC_INTERVAL;
        *interval_ms = (int)v;
        return 0;
    }
    return -1;
}

const char *journal_fsync_name(enum jr_fsync mode)
{
    return mode == JR_FSYNC_BATCH ? "batch" : mode == JR_FSYNC_INTERVAL ? "interval" : "off";
}

/* ---- segments ----------------------------------------------------------------- */

static void seg_path(char *out, size_t cap, const char *dir, uint64_t first)
{
    snprintf(out, cap, "%s/journal/%0*" PRIu64 ".journal", dir, SEG_DIGITS, first);
}

static void seg_header(unsigned char h[SEG_HEADER], uint64_t first)
{
    memcpy(h, SEG_MAGIC, 8);
    le_put(h + 8, SEG_VERSION, 4);
    le_put(h + 12, SEG_HEADER, 4);
    le_put(h + 16, first, 8);
    le_put(h + 24, XXH3_64bits(h, 24), 8);
}

/* A segment's name: its first sequence number, or 0 if not a segment's. */
static uint64_t seg_name(const char *name)
{
    uint64_t v = 0;
    int i = 0;
    for (; i < SEG_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    return strcmp(name + i, ".journal") == 0 ? v : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The segments' first sequence numbers, ascending. -1 when the folder
 * cannot be read; 0 segments when it does not exist. */
static int list_segments(const char *dir, uint64_t **out, uint32_t *n, char *err, size_t errcap)
{
    char path[JOURNAL_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/journal", dir);
    *out = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errcap, "journal: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    uint32_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t v = seg_name(e->d_name);
        if (!v)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *m = realloc(*out, cap * sizeof(*m));
            if (!m) {
                closedir(d);
                snprintf(err, errcap, "journal: out of memory");
                return -1;
            }
            *out = m;
        }
        (*out)[(*n)++] = v;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof(**out), cmp_u64);
    return 0;
}

/* ---- reading ------------------------------------------------------------------ */

struct mapped {
    const unsigned char *p;
    size_t n;
};

static int map_file(const char *path, struct mapped *m, char *err, size_t errcap)
{
    m->p = NULL;
    m->n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errcap, "journal: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errcap, "journal: cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    m->n = (size_t)st.st_size;
    if (m->n) {
        void *p = mmap(NULL, m->n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            snprintf(err, errcap, "journal: cannot map %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        madvise(p, m->n, MADV_SEQUENTIAL);
        m->p = p;
    }
    close(fd);
    return 0;
}

static void unmap_file(struct mapped *m)
{
    if (m->p)
        munmap((void *)(uintptr_t)m->p, m->n);
    m->p = NULL;
}

/* Whether a whole, checksummed frame at off holds command seq. */
static bool frame_ok(const unsigned char *p, size_t n, size_t off, uint64_t seq)
{
    if (n - off < FRAME_HEADER + FRAME_MIN)
        return false;
    uint32_t len = (uint32_t)le_get(p + off, 4);
    if (len < FRAME_MIN || len > FRAME_MAX || len > n - off - FRAME_HEADER)
        return false;
    if (le_get(p + off + FRAME_HEADER, 8) != seq)
        return false;
    return XXH3_64bits(p + off + FRAME_HEADER, len) == le_get(p + off + 4, 8);
}

/* Whether a good frame of a command at or after seq follows off: then a
 * bad frame at off is damage in the middle (one frame or several), not a
 * write cut short. A candidate's number is at most what the bytes left
 * could hold; only those are checksummed. */
static bool good_frame_after(const unsigned char *p, size_t n, size_t off, uint64_t seq)
{
    uint64_t most = seq + (n - off) / (FRAME_HEADER + FRAME_MIN);
    for (size_t o = off + 1; o + FRAME_HEADER + FRAME_MIN <= n; o++) {
        uint64_t s = le_get(p + o + FRAME_HEADER, 8);
        if (s >= seq && s <= most && frame_ok(p, n, o, s))
            return true;
    }
    return false;
}

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int journal_read(const char *dir, uint64_t to_seq, bool last_good, journal_cmd_fn fn, void *ctx,
                 journal_progress_fn progress, void *pctx, struct journal_report *rep, char *err,
                 size_t errcap)
{
    memset(rep, 0, sizeof(*rep));
    uint64_t *segs;
    uint32_t nseg;
    if (list_segments(dir, &segs, &nseg, err, errcap) != 0)
        return -1;
    uint64_t total = 0;
    char path[JOURNAL_FILE_MAX];
    for (uint32_t i = 0; i < nseg; i++) {
        struct stat st;
        seg_path(path, sizeof(path), dir, segs[i]);
        if (stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    struct core_cmd_buf *cb = calloc(1, sizeof(*cb));
    if (!cb) {
        free(segs);
        snprintf(err, errcap, "journal: out of memory");
        return -1;
    }
    int rc = 0;
    uint64_t expect = 1, done_bytes = 0;
    int64_t last_progress = mono_ns();
    bool stop = false;
    for (uint32_t i = 0; i < nseg && !stop && rc == 0; i++) {
        seg_path(path, sizeof(path), dir, segs[i]);
        bool last_seg = i + 1 == nseg;
        if (segs[i] != expect) {
            if (last_good) {
                rep->cut = true;
                snprintf(rep->cut_file, sizeof(rep->cut_file), "%s", path);
                rep->cut_offset = 0;
                snprintf(rep->cut_reason, sizeof(rep->cut_reason),
                         "segment starts at command %" PRIu64 ", %" PRIu64 " was next (a segment is missing)",
                         segs[i], expect);
                rep->set_aside = nseg - i;
                break;
            }
            if (expect == 1)
                snprintf(err, errcap,
                         "journal: %s starts at command %" PRIu64 ": the segments before it are missing", path,
                         segs[i]);
            else
                snprintf(err, errcap,
                         "journal: %s starts at command %" PRIu64 " but the one before ended at %" PRIu64
                         ": a segment is missing (--start-from-last-good starts from command %" PRIu64 ")",
                         path, segs[i], expect - 1, expect - 1);
            rc = -1;
            break;
        }
        struct mapped m;
        if (map_file(path, &m, err, errcap) != 0) {
            rc = -1;
            break;
        }
        const char *bad = NULL;
        /* Whether the damage could be a write the crash cut short: bytes
         * missing or not yet on disk. A whole frame whose checksum holds
         * (one that does not decode, or out of sequence) or a whole header
         * that is wrong never is. */
        bool torn = false;
        size_t off = 0;
        unsigned char h[SEG_HEADER];
        seg_header(h, segs[i]);
        if (m.n < SEG_HEADER) {
            bad = "the segment's header is incomplete";
            torn = true;
        } else if (memcmp(m.p, h, SEG_HEADER) != 0) {
            bad = "the segment's header is not valid (magic, version, first command or checksum)";
        } else {
            off = SEG_HEADER;
            rep->segments++;
        }
        while (!bad && off < m.n) {
            if (m.n - off < FRAME_HEADER) {
                bad = "an incomplete frame header";
                torn = true;
                break;
            }
            uint32_t len = (uint32_t)le_get(m.p + off, 4);
            if (len < FRAME_MIN || len > FRAME_MAX) {
                bad = "a frame length out of bounds";
                torn = true;
                break;
            }
            if (len > m.n - off - FRAME_HEADER) {
                bad = "a frame that runs past the end of the segment";
                torn = true;
                break;
            }
            const unsigned char *pl = m.p + off + FRAME_HEADER;
            if (XXH3_64bits(pl, len) != le_get(m.p + off + 4, 8)) {
                bad = "a checksum mismatch";
                torn = true;
                break;
            }
            if (core_cmd_decode(pl, len, cb) != 0) {
                bad = "a command that does not decode";
                break;
            }
            if (cb->cmd.seq != expect) {
                bad = cb->cmd.seq > expect ? "a gap in the sequence" : "a command out of order";
                break;
            }
            if (to_seq && cb->cmd.seq > to_seq) {
                stop = true;
                break;
            }
            if (fn && fn(ctx, &cb->cmd, err, errcap) != 0) {
                char e2[512];
                snprintf(e2, sizeof(e2), "%s", err);
                snprintf(err, errcap, "journal: %s offset %zu: %s", path, off, e2);
                rc = -1;
                break;
            }
            off += FRAME_HEADER + len;
            expect++;
            rep->commands++;
            rep->last_seq = cb->cmd.seq;
            rep->last_ts = cb->cmd.ts;
            rep->bytes += FRAME_HEADER + len;
            if (progress && (rep->commands & 4095) == 0) {
                int64_t t = mono_ns();
                if (t - last_progress > 100000000) {
                    last_progress = t;
                    progress(pctx, done_bytes + off, total, &cb->cmd);
                }
            }
            /* Done at to_seq: a frame past it may be in the writing
             * (a restore reads a journal the server is appending to). */
            if (to_seq && cb->cmd.seq >= to_seq) {
                stop = true;
                break;
            }
        }
        if (rc == 0 && (off >= SEG_HEADER || bad)) {
            snprintf(rep->end_file, sizeof(rep->end_file), "%s", path);
            rep->end_offset = off;
        }
        if (bad && rc == 0) {
            /* A write cut short: the last segment, nothing good after. */
            bool tail = last_seg && torn && !good_frame_after(m.p, m.n, off, expect);
            if (tail || last_good) {
                rep->cut = true;
                snprintf(rep->cut_file, sizeof(rep->cut_file), "%s", path);
                rep->cut_offset = off;
                snprintf(rep->cut_reason, sizeof(rep->cut_reason), "%s%s", bad,
                         tail ? " at the end (a write cut short)" : ", with good frames after it");
                rep->set_aside = nseg - i - 1;
                stop = true;
            } else {
                snprintf(err, errcap,
                         "journal: %s offset %zu: %s, with good frames after it: a corruption, not a write "
                         "cut short; refusing to start (--start-from-last-good starts from command %" PRIu64
                         " and sets the rest aside)",
                         path, off, bad, expect - 1);
                rc = -1;
            }
        }
        done_bytes += m.n;
        unmap_file(&m);
    }
    if (rc == 0 && progress)
        progress(pctx, total, total, rep->commands ? &cb->cmd : NULL);
    free(cb);
    free(segs);
    return rc;
}

int journal_first(const char *dir, struct core_cmd_buf *out, char *err, size_t errcap)
{
    uint64_t *segs;
    uint32_t nseg;
    if (list_segments(dir, &segs, &nseg, err, errcap) != 0)
        return -1;
    if (nseg == 0) {
        free(segs);
        return 0;
    }
    char path[JOURNAL_FILE_MAX];
    seg_path(path, sizeof(path), dir, segs[0]);
    uint64_t first = segs[0];
    uint32_t n = nseg;
    free(segs);
    if (first != 1) {
        snprintf(err, errcap, "journal: %s starts at command %" PRIu64 ": the segments before it are missing",
                 path, first);
        return -1;
    }
    struct mapped m;
    if (map_file(path, &m, err, errcap) != 0)
        return -1;
    unsigned char h[SEG_HEADER];
    seg_header(h, 1);
    int rc = -1;
    /* A new exchange only when the journal never got past its first write:
     * one segment, its header or command 1 cut short, nothing good after. */
    bool alone = n == 1;
    if (m.n < SEG_HEADER || (m.n == SEG_HEADER && memcmp(m.p, h, SEG_HEADER) == 0)) {
        if (alone)
            rc = 0;
        else
            snprintf(err, errcap, "journal: %s holds no command 1, and later segments exist", path);
    } else if (memcmp(m.p, h, SEG_HEADER) != 0) {
        snprintf(err, errcap, "journal: %s offset 0: the segment's header is not valid", path);
    } else if (!frame_ok(m.p, m.n, SEG_HEADER, 1)) {
        if (alone && !good_frame_after(m.p, m.n, SEG_HEADER, 1))
            rc = 0; /* command 1 cut short: a journal that never started */
        else
            snprintf(err, errcap,
                     "journal: %s offset %u: command 1 is damaged and later commands exist: refusing to start",
                     path, SEG_HEADER);
    } else {
        uint32_t len = (uint32_t)le_get(m.p + SEG_HEADER, 4);
        if (core_cmd_decode(m.p + SEG_HEADER + FRAME_HEADER, len, out) != 0 || out->cmd.type != CC_CONFIG)
            snprintf(err, errcap, "journal: %s offset %u: command 1 is not a config", path, SEG_HEADER);
        else
            rc = 1;
    }
    unmap_file(&m);
    return rc;
}

struct replay_ctx {
    struct core *c;
};

static int replay_one(void *ctx, const struct core_cmd *cc, char *err, size_t errcap)
{
    struct replay_ctx *r = ctx;
    return core_replay(r->c, cc, NULL, err, errcap);
}

/* A restore's commands (core_set_history): the journal read again from
 * command 1, up to the checkpoint. ctx is the data directory. */
static int read_history(void *ctx, uint64_t to_seq, core_each_cmd_fn each, void *each_ctx, char *err,
                        size_t errcap)
{
    struct journal_report rep;
    return journal_read(ctx, to_seq, false, each, each_ctx, NULL, NULL, &rep, err, errcap);
}

int journal_replay(const char *dir, struct core *c, uint64_t to_seq, bool last_good,
                   journal_progress_fn progress, void *pctx, struct journal_report *rep, char *err,
                   size_t errcap)
{
    struct replay_ctx r = {c};
    /* A replay without a journal attached (perpsim replay) reads its
     * restores' commands from the journal it replays. */
    bool mine = !core_has_history(c);
    char d[JOURNAL_PATH_MAX];
    snprintf(d, sizeof(d), "%s", dir);
    if (mine)
        core_set_history(c, read_history, d);
    int rc = journal_read(dir, to_seq, last_good, replay_one, &r, progress, pctx, rep, err, errcap);
    if (mine)
        core_set_history(c, NULL, NULL);
    return rc;
}

/* ---- writing ------------------------------------------------------------------ */

struct journal {
    struct journal_config cfg;
    struct core *core;
    int lock_fd;
    int fd;                     /* the open segment */
    uint64_t seg_bytes;
    char seg_file[JOURNAL_FILE_MAX];
    bool replaying;             /* commands applied by a replay are on disk already */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rbuf active, spare;  /* frames applied / being written */
    size_t commit_len;          /* active's bytes of whole jobs (core_set_commit) */
    uint64_t active_last;       /* the last command in active */
    uint64_t commit_last;       /* the last command of a whole job in active */
    uint32_t active_n, commit_n;
    bool idle;                  /* the writer waits for frames */
    bool stop;
    bool started;
    pthread_t writer;
    /* stats (the writer's; read under mu) */
    struct journal_stats st;
};

static void fail(const char *what, const char *path)
{
    fprintf(stderr,
            "perpsim: JOURNAL %s FAILED (%s): %s\n"
            "perpsim: stopping: an acknowledged write could no longer be promised; a restart recovers "
            "every acknowledged write.\n",
            what, path, strerror(errno));
    fflush(stderr);
    abort();
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Folders 0700 and files 0600: the journal holds every API key with its
 * secret. */
static int mkdir_p(const char *path)
{
    char tmp[JOURNAL_FILE_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

struct journal *journal_create(const struct journal_config *cfg, char *err, size_t errcap)
{
    if (!cfg->dir[0]) {
        snprintf(err, errcap, "journal: no data directory");
        return NULL;
    }
    char path[JOURNAL_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/journal", cfg->dir);
    if (mkdir_p(path) != 0) {
        snprintf(err, errcap, "journal: cannot make %s: %s", path, strerror(errno));
        return NULL;
    }
    struct journal *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(err, errcap, "journal: out of memory");
        return NULL;
    }
    j->cfg = *cfg;
    if (!j->cfg.segment_bytes)
        j->cfg.segment_bytes = JOURNAL_SEGMENT_BYTES;
    j->fd = -1;
    snprintf(path, sizeof(path), "%s/lock", cfg->dir);
    j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lock_fd < 0 || flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errcap, "journal: the data directory %s is in use by another perpsim (%s)", cfg->dir,
                 strerror(errno));
        if (j->lock_fd >= 0)
            close(j->lock_fd);
        free(j);
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    return j;
}

/* The in-lock consumer: the command's frame appended, in sequence order. */
static void on_record(void *ctx, const struct core_record *r)
{
    struct journal *j = ctx;
    if (j->replaying)
        return;
    static const unsigned char zero[FRAME_HEADER];
    pthread_mutex_lock(&j->mu);
    struct rbuf *b = &j->active;
    size_t at = b->len;
    rbuf_put(b, zero, FRAME_HEADER);
    core_cmd_encode(r->cmd, b);
    if (b->bad) {
        errno = ENOMEM;
        fail("BUFFER", "memory");
    }
    size_t len = b->len - at - FRAME_HEADER;
    le_put(b->p + at, len, 4);
    le_put(b->p + at + 4, XXH3_64bits(b->p + at + FRAME_HEADER, len), 8);
    j->active_last = r->seq;
    j->active_n++;
    pthread_mutex_unlock(&j->mu);
}

/* A job's last command applied: its frames may go to disk. */
static void on_commit(void *ctx)
{
    struct journal *j = ctx;
    if (j->replaying)
        return;
    pthread_mutex_lock(&j->mu);
    if (j->active.len != j->commit_len) {
        j->commit_len = j->active.len;
        j->commit_last = j->active_last;
        j->commit_n = j->active_n;
        /* One wake-up per writer cycle: the commits that follow before
         * the writer runs find it awake already. */
        if (j->idle) {
            j->idle = false;
            pthread_cond_signal(&j->cv);
        }
    }
    pthread_mutex_unlock(&j->mu);
}

int journal_attach(struct journal *j, struct core *c)
{
    if (core_subscribe(c, on_record, j, true) != 0)
        return -1;
    j->core = c;
    j->replaying = true;
    core_set_history(c, read_history, j->cfg.dir);
    core_gate(c);
    core_set_commit(c, on_commit, j);
    return 0;
}

static void write_all(struct journal *j, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(j->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fail("WRITE", j->seg_file);
        }
        p += w;
        n -= (size_t)w;
    }
}

static int64_t mono_ns(void);

static void sync_segment(struct journal *j)
{
    int64_t t0 = mono_ns();
    if (fdatasync(j->fd) != 0)
        fail("SYNC", j->seg_file);
    int64_t t1 = mono_ns();
    pthread_mutex_lock(&j->mu);
    j->st.syncs++;
    j->st.sync_ns += (uint64_t)(t1 - t0);
    pthread_mutex_unlock(&j->mu);
}

/* A new segment whose first command is first: header written and synced,
 * the folder synced so the name survives. */
static int open_segment(struct journal *j, uint64_t first, char *err, size_t errcap)
{
    seg_path(j->seg_file, sizeof(j->seg_file), j->cfg.dir, first);
    int fd = open(j->seg_file, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errcap, "journal: cannot make %s: %s", j->seg_file, strerror(errno));
        return -1;
    }
    j->fd = fd;
    unsigned char h[SEG_HEADER];
    seg_header(h, first);
    write_all(j, h, SEG_HEADER);
    sync_segment(j);
    char path[JOURNAL_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/journal", j->cfg.dir);
    if (fsync_dir(path) != 0) {
        snprintf(err, errcap, "journal: cannot sync %s: %s", path, strerror(errno));
        return -1;
    }
    j->seg_bytes = SEG_HEADER;
    return 0;
}

static void roll(struct journal *j, uint64_t next)
{
    sync_segment(j);
    close(j->fd);
    j->fd = -1;
    char err[256];
    if (open_segment(j, next, err, sizeof(err)) != 0) {
        fprintf(stderr, "perpsim: %s\n", err);
        fail("SEGMENT", j->seg_file);
    }
}

static void *writer_main(void *arg)
{
    struct journal *j = arg;
    int64_t interval_ns = (int64_t)j->cfg.interval_ms * 1000000;
    int64_t last_sync = mono_ns();
    bool unsynced = false;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (!j->commit_len && !j->stop) {
            j->idle = true;
            if (j->cfg.fsync == JR_FSYNC_INTERVAL && unsynced) {
                int64_t due = last_sync + interval_ns;
                struct timespec dl = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
                int rc = pthread_cond_timedwait(&j->cv, &j->mu, &dl);
                j->idle = false;
                if (rc == ETIMEDOUT)
                    break;
            } else {
                pthread_cond_wait(&j->cv, &j->mu);
                j->idle = false;
            }
        }
        j->idle = false;
        /* Stopping: the engine has stopped, every job is whole. */
        if (j->stop) {
            j->commit_len = j->active.len;
            j->commit_last = j->active_last;
            j->commit_n = j->active_n;
        }
        bool stop = j->stop && !j->commit_len;
        /* Whole jobs to the writer; a job being applied stays. */
        struct rbuf t = j->active;
        j->active = j->spare;
        j->spare = t;
        size_t part = t.len - j->commit_len;
        if (part)
            rbuf_put(&j->active, t.p + j->commit_len, part);
        if (j->active.bad) {
            errno = ENOMEM;
            fail("BUFFER", "memory");
        }
        j->spare.len = j->commit_len;
        uint64_t last = j->commit_last;
        uint32_t n = j->commit_n;
        j->active_n -= n;
        j->commit_n = 0;
        j->commit_len = 0;
        pthread_mutex_unlock(&j->mu);
        if (j->spare.len) {
            write_all(j, j->spare.p, j->spare.len);
            j->seg_bytes += j->spare.len;
            unsynced = true;
        }
        int64_t now = mono_ns();
        if (unsynced && (j->cfg.fsync == JR_FSYNC_BATCH || stop ||
                         (j->cfg.fsync == JR_FSYNC_INTERVAL && now - last_sync >= interval_ns))) {
            sync_segment(j);
            unsynced = false;
            last_sync = now;
        }
        pthread_mutex_lock(&j->mu);
        if (n) {
            j->st.records += n;
            j->st.bytes += j->spare.len;
            j->st.batches++;
            if (n > j->st.max_batch)
                j->st.max_batch = n;
            j->st.durable_seq = last;
        }
        pthread_mutex_unlock(&j->mu);
        j->spare.len = 0;
        if (n)
            core_durable(j->core, last);
        if (stop)
            break;
        if (n && j->seg_bytes >= j->cfg.segment_bytes) {
            roll(j, last + 1);
            unsynced = false;
        }
    }
    return NULL;
}

/* path.SUFFIX, or path.SUFFIX.N for the first N free: nothing set aside
 * before is overwritten. */
static void free_name(const char *path, const char *suffix, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s.%s", path, suffix);
    struct stat st;
    for (unsigned k = 1; n > 0 && (size_t)n < cap && stat(out, &st) == 0 && k < 100000; k++)
        n = snprintf(out, cap, "%s.%s.%u", path, suffix, k);
}

static int set_aside(const char *path, char *err, size_t errcap)
{
    char aside[JOURNAL_FILE_MAX + 32];
    free_name(path, "set-aside", aside, sizeof(aside));
    if (rename(path, aside) != 0) {
        snprintf(err, errcap, "journal: cannot set %s aside: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Copies the bytes of path from offset on to path.cut-OFFSET (kept, never
 * read again), then cuts path there. */
static int cut_tail(const char *path, uint64_t offset, char *err, size_t errcap)
{
    struct mapped m;
    if (map_file(path, &m, err, errcap) != 0)
        return -1;
    int rc = 0;
    if (m.n > offset) {
        char keep[JOURNAL_FILE_MAX + 32], suffix[32];
        snprintf(suffix, sizeof(suffix), "cut-%" PRIu64, offset);
        free_name(path, suffix, keep, sizeof(keep));
        int fd = open(keep, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        const unsigned char *p = m.p + offset;
        size_t n = m.n - (size_t)offset;
        while (fd >= 0 && n) {
            ssize_t w = write(fd, p, n);
            if (w <= 0 && errno != EINTR)
                break;
            if (w > 0) {
                p += w;
                n -= (size_t)w;
            }
        }
        if (fd < 0 || n || fsync(fd) != 0) {
            snprintf(err, errcap, "journal: cannot keep the cut tail of %s in %s: %s", path, keep,
                     strerror(errno));
            rc = -1;
        }
        if (fd >= 0)
            close(fd);
    }
    unmap_file(&m);
    if (rc == 0) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)offset) != 0 || fsync(fd) != 0) {
            snprintf(err, errcap, "journal: cannot cut %s at offset %" PRIu64 ": %s", path, offset,
                     strerror(errno));
            rc = -1;
        }
        if (fd >= 0)
            close(fd);
    }
    return rc;
}

int journal_start(struct journal *j, const struct journal_report *rep, char *err, size_t errcap)
{
    uint64_t last = rep ? rep->last_seq : 0;
    char path[JOURNAL_FILE_MAX];
    if (rep && rep->cut) {
        /* Cut inside the frames: the good ones stay. At or before the end
         * of the header nothing good is in the file: all of it aside. */
        if (rep->cut_offset > SEG_HEADER ? cut_tail(rep->cut_file, rep->cut_offset, err, errcap) != 0
                                         : set_aside(rep->cut_file, err, errcap) != 0)
            return -1;
        /* Later segments (last_good past a corruption) set aside by name. */
        uint64_t *segs;
        uint32_t nseg;
        if (list_segments(j->cfg.dir, &segs, &nseg, err, errcap) != 0)
            return -1;
        for (uint32_t i = 0; i < nseg; i++) {
            seg_path(path, sizeof(path), j->cfg.dir, segs[i]);
            if (segs[i] <= last || strcmp(path, rep->cut_file) == 0)
                continue;
            if (set_aside(path, err, errcap) != 0) {
                free(segs);
                return -1;
            }
        }
        free(segs);
    }
    /* A segment named for the next command holds no command (a header, or
     * a header cut short): made anew. */
    /* A segment named for the next command holds no good command (a
     * header; a first write cut short, journal_first said): made anew, what
     * it held set aside. */
    seg_path(path, sizeof(path), j->cfg.dir, last + 1);
    struct stat st;
    if (stat(path, &st) == 0) {
        if ((uint64_t)st.st_size > SEG_HEADER ? set_aside(path, err, errcap) != 0 : unlink(path) != 0)
            return -1;
    }
    if (open_segment(j, last + 1, err, errcap) != 0)
        return -1;
    j->replaying = false;
    if (last)
        core_durable(j->core, last);
    j->st.durable_seq = last;
    if (pthread_create(&j->writer, NULL, writer_main, j) != 0) {
        snprintf(err, errcap, "journal: cannot start the writer thread");
        return -1;
    }
    j->started = true;
    return 0;
}

void journal_close(struct journal *j)
{
    if (!j)
        return;
    if (j->started) {
        pthread_mutex_lock(&j->mu);
        j->stop = true;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->writer, NULL);
        j->started = false;
    }
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
}

void journal_destroy(struct journal *j)
{
    if (!j)
        return;
    journal_close(j);
    rbuf_free(&j->active);
    rbuf_free(&j->spare);
    if (j->lock_fd >= 0)
        close(j->lock_fd);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void journal_stats(struct journal *j, struct journal_stats *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->st;
    pthread_mutex_unlock(&j->mu);
}
