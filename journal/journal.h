/*
 * journal.h - the journal: every sequenced command on disk before anyone
 * hears of it, read back to rebuild the exchange after a crash or to
 * replay a run.
 *
 * Layout. DIR/journal/ holds segments named by the sequence number of
 * their first command (00000000000000000001.journal). A segment opens
 * with a 32-byte header (magic "PSJOURN1", format version, first sequence
 * number, an XXH3 of those) and holds frames: u32 length, u64 XXH3-64 of
 * the payload, then the payload, the command's canonical bytes
 * (core_cmd_encode: sequence number, time, type, arguments). A new
 * segment starts past segment_bytes, and at every start of the server.
 *
 * Writing: group commit. The journal is an in-lock consumer of the change
 * stream: the applying thread encodes each command into a buffer, in
 * sequence order, as part of applying it. One writer thread takes the
 * whole buffer at a time, writes it with one write() and, by policy,
 * syncs it; then it tells the core (core_durable) that every command up to
 * the buffer's last is on disk, which releases their replies and their
 * WebSocket rows (the core's gate). However many writes arrive during one
 * write and sync, they share the next.
 *   batch          each batch synced (fdatasync) before its replies:
 *                  nothing acknowledged is lost, even on a power cut
 *   interval:MS    replies after the write() (in the kernel: a process
 *                  crash loses nothing); synced every MS, so a power cut
 *                  loses at most the last MS of acknowledged writes
 *   off            replies after the write(); synced only when a segment
 *                  closes: a power cut loses what the kernel had not
 *                  written back (up to ~30 s on Linux's defaults)
 * A write or sync that fails stops the server loudly: nothing acknowledged
 * can then be promised, and a restart recovers every acknowledged write.
 *
 * Reading: journal_replay checks every frame (length, checksum, the
 * sequence number following the last, segments following each other).
 * A bad frame at the end of the last segment with nothing good after it
 * is a write the crash cut short: reported with its file and offset and
 * cut there when the journal opens for writing (its bytes kept beside the
 * segment, *.cut-OFFSET). Anything else (a bad frame with good ones after
 * it, a missing segment, a bad header) stops with the file and offset,
 * unless last_good is set: then the journal is read up to the last good
 * command and the rest is set aside (renamed, never deleted).
 */
#ifndef PERPSIM_JOURNAL_JOURNAL_H
#define PERPSIM_JOURNAL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

enum jr_fsync { JR_FSYNC_BATCH = 0, JR_FSYNC_INTERVAL, JR_FSYNC_OFF };

#define JOURNAL_SEGMENT_BYTES (64u << 20)
#define JOURNAL_PATH_MAX 3072                  /* the data directory */
#define JOURNAL_FILE_MAX (JOURNAL_PATH_MAX + 96) /* a file in it */

struct journal_config {
    char dir[JOURNAL_PATH_MAX];  /* the data directory (its journal/ is made) */
    enum jr_fsync fsync;
    int interval_ms;             /* JR_FSYNC_INTERVAL */
    uint64_t segment_bytes;      /* 0: JOURNAL_SEGMENT_BYTES */
    bool last_good;              /* start from the last good command past a corruption */
};

/* "batch", "interval:MS" (1..60000), "off". -1 if not. */
int journal_parse_fsync(const char *text, enum jr_fsync *mode, int *interval_ms);
const char *journal_fsync_name(enum jr_fsync mode);

/* ---- reading ---------------------------------------------------------------- */

/* What a read found. */
struct journal_report {
    uint64_t commands;       /* commands read and applied */
    uint64_t last_seq;       /* the last good command's sequence number (0: none) */
    int64_t last_ts;
    uint64_t bytes;          /* bytes of good frames */
    uint32_t segments;
    /* the good end: the segment and the offset just past the last good frame */
    char end_file[JOURNAL_FILE_MAX];
    uint64_t end_offset;
    /* a torn tail (cut when the journal opens for writing), or with
     * last_good a corruption passed over: where, and what */
    bool cut;
    char cut_file[JOURNAL_FILE_MAX];
    uint64_t cut_offset;
    char cut_reason[160];
    uint32_t set_aside;      /* later segments set aside (last_good) */
};

/* 1 with command 1 (the config) in *out when DIR has a journal, 0 when it
 * has none (a new exchange), -1 with a message when it cannot be read. */
int journal_first(const char *dir, struct core_cmd_buf *out, char *err, size_t errcap);

/* Called for each good command in order; non-zero stops the read with
 * that error (err filled). */
typedef int (*journal_cmd_fn)(void *ctx, const struct core_cmd *cc, char *err, size_t errcap);
/* Called now and then with the progress (bytes read of total). */
typedef void (*journal_progress_fn)(void *ctx, uint64_t bytes, uint64_t total, const struct core_cmd *last);

/* Reads DIR's journal in order, up to to_seq (0: all), calling fn for
 * each command. 0 and the report, or -1 with a message naming the file
 * and offset. */
int journal_read(const char *dir, uint64_t to_seq, bool last_good, journal_cmd_fn fn, void *ctx,
                 journal_progress_fn progress, void *pctx, struct journal_report *rep, char *err,
                 size_t errcap);

/* journal_read applying each command to core c (core_replay): a core made
 * from command 1's config, not started. */
int journal_replay(const char *dir, struct core *c, uint64_t to_seq, bool last_good,
                   journal_progress_fn progress, void *pctx, struct journal_report *rep, char *err,
                   size_t errcap);

/* ---- writing ---------------------------------------------------------------- */

struct journal;

/* Makes DIR (and DIR/journal) if needed and takes DIR's lock (one server
 * per data directory). Writes nothing yet. */
struct journal *journal_create(const struct journal_config *cfg, char *err, size_t errcap);
/* Subscribes to c's change stream and turns c's gate on: before the
 * sequence opens (before a replay). The commands of a replay are not
 * written again. */
int journal_attach(struct journal *j, struct core *c);
/* After the replay (rep from it, or NULL for a new journal): cuts a torn
 * tail, sets aside what last_good passed over, opens a new segment after
 * the last command and starts the writer. Tells the core every replayed
 * command is durable. */
int journal_start(struct journal *j, const struct journal_report *rep, char *err, size_t errcap);
/* Writes and syncs everything applied so far, releases the replies
 * waiting for it, stops the writer and closes the segment. After the
 * core's engine has stopped (core_shutdown), before anything else can
 * apply a command. */
void journal_close(struct journal *j);
/* Closes if needed and frees; after the core is destroyed. */
void journal_destroy(struct journal *j);

struct journal_stats {
    uint64_t records, bytes, batches, syncs, durable_seq;
    uint64_t sync_ns;        /* time in fdatasync, all together */
    uint32_t max_batch;      /* most records in one write */
};
void journal_stats(struct journal *j, struct journal_stats *out);

#endif
