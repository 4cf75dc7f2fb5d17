#!/usr/bin/env python3
"""`perpsim backtest` as a user runs it, on a synthetic day from gen_history.

- Both formats: BitMEX dumps (trade + quote) and Tardis (trades, quotes,
  incremental_book_L2, derivative_ticker) replay to the end with the audit
  exact and rows counted;
- determinism: two runs of the same data give the same report, byte for
  byte, and the same state hash; `perpsim replay` of the run's journal gives
  that hash too; paced (--speed N) it takes at least the day / N and makes
  the same run; --plot draws it; --agents puts the living market's noise
  and directional traders in the historical book, seeded and replayable;
- a malformed line is reported with its file and line and skipped, or stops
  the run with --strict (exit status 1, the file and line named);
- a file that does not exist or a header that is not one of the formats
  stops the run before anything is replayed.
"""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

PERPSIM, GEN = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(args, expect=0):
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if p.returncode != expect:
        print(p.stdout, p.stderr)
    check(p.returncode == expect, f"{' '.join(args[:3])}...: exit {p.returncode}, wanted {expect}")
    return p


def state_hash(out):
    m = re.search(r"state hash\s+([0-9a-f]{16})", out)
    return m.group(1) if m else None


tmp = tempfile.mkdtemp(prefix="perpsim-bt-cli-")
try:
    for fmt in ("bitmex", "tardis"):
        data = os.path.join(tmp, fmt)
        run([GEN, "--format", fmt, "--out", data, "--trades", "3000", "--quotes", "15000", "--seed", "7"])
        files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(data) for f in fs if f.endswith(".csv.gz"))
        check(len(files) == (2 if fmt == "bitmex" else 4), f"{fmt}: files written: {files}")
        reports, hashes = [], []
        for k in range(2):
            rep = os.path.join(tmp, f"{fmt}-{k}.json")
            jdir = os.path.join(tmp, f"{fmt}-journal-{k}")
            p = run([PERPSIM, "backtest", "--data", *files, "--report", rep, "--data-dir", jdir])
            check("audit        exact to the satoshi" in p.stdout, f"{fmt}: audit exact")
            m = re.search(r"backtest: (\d+) rows", p.stdout)
            check(m is not None and int(m.group(1)) >= 18000, f"{fmt}: rows replayed: {p.stdout[:200]}")
            m = re.search(r"(\d+) trades,", p.stdout)
            check(m is not None and int(m.group(1)) == 3000, f"{fmt}: every trade replayed: {p.stdout[:400]}")
            with open(rep, "rb") as f:
                reports.append(f.read())
            hashes.append(state_hash(p.stdout))
            last_row = re.search(r" to (\S+), in", p.stdout)
            ends = re.search(r"sequence\s+\d+ at (\S+)", p.stdout)
            check(last_row and ends and last_row.group(1) == ends.group(1),
                  f"{fmt}: the run ends at the data's last row (no funding or mark past it): {p.stdout[:600]}")
            r = run([PERPSIM, "replay", "--data-dir", jdir])
            check(state_hash(r.stdout) == hashes[-1], f"{fmt}: replay gives the run's hash")
        check(reports[0] == reports[1], f"{fmt}: two runs, the same report")
        check(hashes[0] is not None and hashes[0] == hashes[1], f"{fmt}: two runs, the same hash")
        doc = json.loads(reports[0])
        names = [a["name"] for a in doc["accounts"]]
        check("history" in names, f"{fmt}: the history account in the report")
        hist = [a for a in doc["accounts"] if a["name"] == "history"][0]
        check(hist["trades"] >= 2 * 3000, f"{fmt}: history took both sides of every trade: {hist['trades']}")
        if fmt == "bitmex":
            # Paced: --speed N never runs faster than N x (the day in at
            # least 86400/N s) and makes the same run as --speed max.
            svg = os.path.join(tmp, "plot.svg")
            t = time.monotonic()
            p = run([PERPSIM, "backtest", "--data", *files, "--speed", "43200", "--report",
                     os.path.join(tmp, "paced.json"), "--plot", svg])
            el = time.monotonic() - t
            check(el >= 1.9, f"--speed 43200: a day in at least 2 s, took {el:.2f} s")
            check(state_hash(p.stdout) == hashes[0], f"--speed 43200: the same hash as at full speed")
            with open(os.path.join(tmp, "paced.json"), "rb") as f:
                check(f.read() == reports[0], "--speed 43200: the same report as at full speed")
            with open(svg) as f:
                doc_svg = f.read()
            check(doc_svg.startswith("<svg") and "XBTUSD last" in doc_svg and "no data" in doc_svg,
                  f"--plot: the price drawn, no trader's equity (nobody traded): {doc_svg[:300]}")
            run([PERPSIM, "backtest", "--data", *files, "--speed", "0"], expect=2)
            # The living market's agents in the historical book: seeded, the
            # same run twice, replayable, in the audit; --seed alone refused.
            runs = []
            for k in range(2):
                rep = os.path.join(tmp, f"agents-{k}.json")
                jdir = os.path.join(tmp, f"agents-journal-{k}")
                p = run([PERPSIM, "backtest", "--data", *files, "--agents", "--seed", "5", "--report", rep,
                         "--data-dir", jdir])
                check("audit        exact to the satoshi" in p.stdout, "--agents: audit exact")
                with open(rep, "rb") as f:
                    runs.append((state_hash(p.stdout), f.read()))
            check(runs[0] == runs[1] and runs[0][0] != hashes[0], "--agents: the same run twice, not the run without")
            r = run([PERPSIM, "replay", "--data-dir", os.path.join(tmp, "agents-journal-0")])
            check(state_hash(r.stdout) == runs[0][0], "--agents: replay gives the run's hash")
            doc = json.loads(runs[0][1])
            traders = [a for a in doc["accounts"] if a["name"] == "" and a["trades"] > 0]
            check(len(traders) >= 10, f"--agents: the agents traded: {len(traders)} accounts")
            run([PERPSIM, "backtest", "--data", *files, "--seed", "5"], expect=2)

    # Malformed lines: skipped and reported, or fatal with --strict.
    bad = os.path.join(tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write("timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
                "foreignNotional,trdType\n")
        f.write("2024-01-15D00:00:01.000000000,XBTUSD,Buy,100,42000,PlusTick,x,0,0,0,Regular\n")
        f.write("2024-01-15D00:00:02.000000000,XBTUSD,Buy,abc,42000,PlusTick,x,0,0,0,Regular\n")
        f.write("2024-01-15D00:00:03.000000000,XBTUSD,Sell,100,42000,MinusTick,x,0,0,0,Regular\n")
    p = run([PERPSIM, "backtest", "--data", bad])
    check("bad.csv:3" in p.stderr, f"malformed line reported with file and line: {p.stderr}")
    check("1 skipped malformed" in p.stdout, f"malformed line counted: {p.stdout}")
    p = run([PERPSIM, "backtest", "--data", bad, "--strict"], expect=1)
    check("bad.csv:3" in p.stderr, f"--strict names file and line: {p.stderr}")
    p = run([PERPSIM, "backtest", "--data", os.path.join(tmp, "nope.csv.gz")], expect=1)
    check("nope.csv.gz" in p.stderr, f"a missing file named: {p.stderr}")
    odd = os.path.join(tmp, "odd.csv.gz")
    with gzip.open(odd, "wt") as f:
        f.write("a,b,c\n1,2,3\n")
    p = run([PERPSIM, "backtest", "--data", odd], expect=1)
    check("odd.csv.gz" in p.stderr, f"an unknown header named: {p.stderr}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("backtest cli: all checks passed")
