/*
 * hugepages.h - transparent huge pages for malloc's large blocks.
 *
 * The exchange's tables (the engine's pools, the read model's rows) are
 * large blocks that fill as the exchange runs; each first touch of a 4 KiB
 * page is a page fault, which on a VM costs microseconds: most of what a
 * new row costs. Linux hands out 2 MiB pages where asked (madvise mode,
 * Debian's default), and glibc (2.35 on) asks for every block it maps
 * when its tunable glibc.malloc.hugetlb=1 is set, which only the
 * environment can do, before the process starts. So the program starts
 * itself again once with it set (same PID, same arguments; ~1 ms). A
 * journal's replay runs 1.5-3.5x faster (bench_journal). Set
 * GLIBC_TUNABLES yourself (even to glibc.malloc.hugetlb=0) to keep yours.
 */
#ifndef PERPSIM_APP_HUGEPAGES_H
#define PERPSIM_APP_HUGEPAGES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void hugepages_reexec(char **argv)
{
    const char *t = getenv("GLIBC_TUNABLES");
    if (t && strstr(t, "glibc.malloc.hugetlb"))
        return;
    char v[1024];
    int n = snprintf(v, sizeof(v), "%s%sglibc.malloc.hugetlb=1", t ? t : "", t ? ":" : "");
    if (n < 0 || (size_t)n >= sizeof(v) || setenv("GLIBC_TUNABLES", v, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* Not possible here: go on as we are. */
}

#endif
