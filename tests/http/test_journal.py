#!/usr/bin/env python3
"""The journal, driven as a user would (issue 16): the real server, real
HTTP, a real kill -9.

- Crash under load: several accounts place, amend and cancel crossing
  orders from their own connections while the server is killed with
  SIGKILL at a random moment, 20 times. After each restart: every order
  whose reply arrived is there, its fills with it (a terminal order exactly
  as acknowledged, a live one with at least the acknowledged fills), each
  account's executions add up to its orders' filled quantities, the audit
  is exact, and the state the server recovered has the hash `perpsim
  replay` gives for the same journal.
- A clean stop and start: the same hash and sequence number as before.
- Corruption: a torn tail is cut at the last good frame and reported with
  its file and offset (its bytes kept beside the segment); a flipped byte in
  the middle and a missing segment stop start-up with the file and offset,
  exit status 2; --start-from-last-good starts from the last good command.
- Determinism: the same seed and the same inputs on a stepped clock with
  the market on give byte-identical journals and the same hash, twice.
"""
import calendar
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import http.client

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import httpkit
from httpkit import Client, Server as KitServer, check, fail

ROUNDS = int(os.environ.get("PERPSIM_CRASH_ROUNDS", "20"))
START = "2026-12-01T00:00:00.000Z"


def Server(data_dir, *args, market=False):
    """A stepped clock: no idle commands, so the state a server recovered
    stays what it recovered until someone writes."""
    return KitServer(BIN, "--rate-limit", "off", "--data-dir", data_dir, "--clock", "stepped", *args, market=market)


def recovered(banner):
    """The sequence number and hash the server printed on recovery."""
    m = re.search(r"sequence\s+(\d+) at .*\n\s+state hash\s+([0-9a-f]{16})", banner)
    check(m is not None, f"no recovery summary in the banner: {banner}")
    return int(m.group(1)), m.group(2)


def replay(data_dir, *args):
    r = subprocess.run([BIN, "replay", "--data-dir", data_dir, *args], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"perpsim replay: {r.returncode} {r.stdout} {r.stderr}")
    m = re.search(r"sequence\s+(\d+) at .*\n\s+state hash\s+([0-9a-f]{16})", r.stdout)
    check(m is not None and "audit        exact" in r.stdout, f"replay output: {r.stdout}")
    return int(m.group(1)), m.group(2), r.stdout


def state(s):
    st, _, o = s.admin("GET", "state")
    check(st == 200, f"GET state: {st} {o}")
    return o["seq"], o["hash"]


def all_rows(c, path, params):
    """Every row of a paged table (count 500, start)."""
    rows, start = [], 0
    while True:
        p = dict(params, count=500, start=start)
        page = c.ok("GET", path, params=p)
        rows += page
        if len(page) < 500:
            return rows
        start += 500


class Trader(threading.Thread):
    """One account's connection: crossing limit orders, amends, cancels,
    until the server goes; records every reply that arrived."""

    def __init__(self, port, acct, seed, acked):
        super().__init__(daemon=True)
        self.port, self.acct, self.rng, self.acked = port, acct, random.Random(seed), acked
        self.live = []

    def run(self):
        class Conn:
            pass
        srv = Conn()
        srv.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

        def raw(verb, target, body=b"", headers=None):
            srv.conn.request(verb, target, body=body, headers=headers or {})
            r = srv.conn.getresponse()
            data = r.read()
            import json
            return r.status, None, json.loads(data) if data else None
        srv.raw = raw
        c = Client(srv, self.acct)
        n = 0
        try:
            while True:
                n += 1
                # ~300 requests/s per trader in any build: each restart
                # replays the whole journal, which the checked and sanitized
                # builds do at a fraction of release speed.
                time.sleep(0.003)
                op = self.rng.random()
                if op < 0.6 or not self.live:
                    side = self.rng.choice(["Buy", "Sell"])
                    px = 60000 + self.rng.randint(-20, 20) * 0.5
                    body = {"symbol": "XBTUSD", "side": side, "orderQty": 100 * self.rng.randint(1, 20),
                            "price": px, "clOrdID": f"{self.acct['account']}-{n}-{self.rng.random():.9f}"}
                    st, _, r = c.req("POST", "order", body)
                elif op < 0.8:
                    oid = self.rng.choice(self.live)
                    st, _, r = c.req("PUT", "order", {"orderID": oid, "price": 60000 + self.rng.randint(-20, 20) * 0.5})
                else:
                    oid = self.live.pop(self.rng.randrange(len(self.live)))
                    st, _, r = c.req("DELETE", "order", {"orderID": oid})
                    r = r[0] if isinstance(r, list) and r else r
                if st == 200 and isinstance(r, dict) and r.get("orderID"):
                    self.acked[r["orderID"]] = (r["ordStatus"], r["cumQty"], self.acct["account"])
                    if r["ordStatus"] in ("New", "PartiallyFilled") and r["orderID"] not in self.live:
                        self.live.append(r["orderID"])
        except (OSError, http.client.HTTPException, ValueError):
            return  # the server was killed: a reply that did not arrive is not acknowledged


def check_acked(s, accounts, acked):
    """Every acknowledged order is there with at least what the reply said."""
    by_acct = {}
    for a in accounts:
        c = Client(s, a)
        by_acct[a["account"]] = {o["orderID"]: o for o in all_rows(c, "order", {"symbol": "XBTUSD", "reverse": "true"})}
        execs = all_rows(c, "execution/tradeHistory", {"symbol": "XBTUSD", "reverse": "true"})
        filled = sum(o["cumQty"] for o in by_acct[a["account"]].values())
        check(sum(e["lastQty"] for e in execs) == filled,
              f"account {a['account']}: executions {sum(e['lastQty'] for e in execs)} vs orders' cumQty {filled}")
    for oid, (status, cum, acct) in acked.items():
        o = by_acct[acct].get(oid)
        check(o is not None, f"acknowledged order {oid} of account {acct} lost")
        if status in ("Filled", "Canceled", "Rejected"):
            check(o["ordStatus"] == status and o["cumQty"] == cum,
                  f"order {oid} acknowledged {status} cum {cum}, recovered {o['ordStatus']} cum {o['cumQty']}")
        else:
            check(o["cumQty"] >= cum, f"order {oid} acknowledged cum {cum}, recovered {o['cumQty']}")


def crash_under_load(tmp):
    d = os.path.join(tmp, "crash")
    s = Server(d)
    accounts = []
    for _ in range(4):
        st, _, a = s.admin("POST", "accounts", {"deposits": {"XBt": 100_000_000_000}})
        check(st == 200, f"account: {st} {a}")
        accounts.append(a)
    s.p.kill()
    s.p.wait()
    acked = {}
    rng = random.Random(16)
    commands = []
    for rnd in range(ROUNDS):
        s = Server(d)
        seq, h = recovered(s.banner)
        rseq, rh, _ = replay(d, "--to-seq", str(seq))
        check((rseq, rh) == (seq, h), f"round {rnd}: recovered {seq} {h}, replay gives {rseq} {rh}")
        check(state(s) == (seq, h), f"round {rnd}: GET state {state(s)} vs recovered {seq} {h}")
        s.audit()
        check_acked(s, accounts, acked)
        commands.append(seq)
        traders = [Trader(s.port, a, rng.random(), acked) for a in accounts]
        for t in traders:
            t.start()
        time.sleep(rng.uniform(0.15, 0.7))
        s.p.send_signal(signal.SIGKILL)
        s.p.wait()
        for t in traders:
            t.join(10)
    s = Server(d)
    seq, h = recovered(s.banner)
    s.audit()
    check_acked(s, accounts, acked)
    check(commands[-1] > commands[0] + 100, f"the load applied too little to mean anything: {commands}")
    # A clean stop keeps everything: the same state after the restart.
    before = state(s)
    s.stop()
    s = Server(d)
    check(recovered(s.banner) == before, f"clean restart: {recovered(s.banner)} vs {before}")
    s.stop()
    print(f"crash: {ROUNDS} kills under load, {len(acked)} acknowledged orders all recovered, "
          f"sequence {commands[0]} -> {seq}")


def start_fails(d, *args):
    p = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--no-market", "--no-demo", "--data-dir", d, *args],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def segments(d):
    j = os.path.join(d, "journal")
    return sorted(os.path.join(j, f) for f in os.listdir(j) if f.endswith(".journal"))


def make_journal(d):
    """A journal of several segments: small segments, orders between restarts."""
    for _ in range(3):
        s = Server(d, "--journal-segment-mb", "1")
        c = s.account()
        for i in range(150):
            c.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 100, "price": 50000 + i * 0.5})
        s.stop()
    return replay(d)


def corruption(tmp):
    base = os.path.join(tmp, "base")
    seq, h, _ = make_journal(base)
    segs = segments(base)
    check(len(segs) >= 3, f"segments: {segs}")

    # A torn tail: the last frame cut in half.
    d = os.path.join(tmp, "torn")
    shutil.copytree(base, d)
    last = [f for f in segments(d) if os.path.getsize(f) > 32][-1]
    size = os.path.getsize(last)
    with open(last, "r+b") as f:
        f.truncate(size - 7)
    s = Server(d)
    rseq, _ = recovered(s.banner)
    check(rseq == seq - 1, f"torn tail: recovered {rseq}, the journal had {seq}")
    m = re.search(r"cut\s+(\S+) offset (\d+): (.*)", s.banner)
    check(m is not None and m.group(1) == last and "cut short" in m.group(3), f"torn tail report: {s.banner}")
    check(os.path.exists(f"{last}.cut-{m.group(2)}"), "the cut bytes are kept")
    check(os.path.getsize(last) == int(m.group(2)), "the segment is cut at the last good frame")
    s.audit()
    s.stop()

    # A flipped byte in the middle: refused, with the file and the offset.
    d = os.path.join(tmp, "flip")
    shutil.copytree(base, d)
    mid = segments(d)[1]
    with open(mid, "r+b") as f:
        f.seek(os.path.getsize(mid) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))
    rc, out = start_fails(d)
    check(rc == 2 and mid in out and "offset" in out and "corruption" in out, f"flipped byte: {rc} {out}")
    rc, out = subprocess.run([BIN, "replay", "--data-dir", d], capture_output=True, text=True).returncode, None
    check(rc == 1, "replay refuses a corrupt journal too")
    s = Server(d, "--start-from-last-good")
    rseq, _ = recovered(s.banner)
    check(0 < rseq < seq, f"last good: recovered {rseq} of {seq}")
    check("set aside" in s.banner or "with good frames after it" in s.banner, f"last good report: {s.banner}")
    s.audit()
    s.stop()

    # Several frames in a row damaged in the middle of the last segment:
    # damage, not a torn write (good frames follow), so refused.
    d = os.path.join(tmp, "zeros")
    shutil.copytree(base, d)
    last = [f for f in segments(d) if os.path.getsize(f) > 32][-1]
    size = os.path.getsize(last)
    with open(last, "r+b") as f:
        f.seek(size // 3)
        f.write(bytes(600))
    rc, out = start_fails(d)
    check(rc == 2 and last in out and "corruption" in out, f"zeroed frames in the last segment: {rc} {out}")

    # A missing segment.
    d = os.path.join(tmp, "missing")
    shutil.copytree(base, d)
    gone = segments(d)[1]
    os.unlink(gone)
    rc, out = start_fails(d)
    check(rc == 2 and "missing" in out and segments(d)[1] in out, f"missing segment: {rc} {out}")

    # A damaged segment header.
    d = os.path.join(tmp, "header")
    shutil.copytree(base, d)
    first = segments(d)[0]
    with open(first, "r+b") as f:
        f.write(b"X")
    rc, out = start_fails(d)
    check(rc == 2 and first in out, f"bad header: {rc} {out}")
    print(f"corruption: torn tail cut, flipped byte and missing segment refused with file and offset, "
          f"last good from {rseq}")


def seeded_restart(tmp):
    """Keys drawn from a seed after a restart skip the ones the journal
    has (the draws start over with the same seed)."""
    d = os.path.join(tmp, "seeded")
    s = Server(d, "--seed", "7")
    keys = {s.account().key for _ in range(2)}
    s.p.send_signal(signal.SIGKILL)
    s.p.wait()
    s = Server(d, "--seed", "7")
    more = {s.account().key for _ in range(3)}
    check(not keys & more and len(more) == 3, f"seeded keys after a restart: {keys} {more}")
    s.stop()


def deterministic_run(d):
    s = Server(d, "--seed", "7", "--start-time", START, market=True)
    st, _, a = s.admin("POST", "accounts", {"deposits": {"XBt": 1_000_000_000}})
    check(st == 200, f"account: {st} {a}")
    c = Client(s, a)
    exp = calendar.timegm(time.strptime(START[:19], "%Y-%m-%dT%H:%M:%S")) + 3600 * 2
    for i in range(20):
        c.req("POST", "order", {"symbol": "XBTUSD", "side": "Buy" if i % 2 else "Sell", "orderQty": 100,
                                "ordType": "Market"}, expires=exp)
        # Its own connection with a long timeout: with the market on, a
        # minute's advance takes seconds in the sanitized build.
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=300)
        conn.request("POST", "/admin/v1/clock/advance", body=b'{"ms":60000}',
                     headers={"Authorization": "Bearer " + httpkit.TOKEN, "Content-Type": "application/json"})
        resp = conn.getresponse()
        st, r = resp.status, resp.read()
        conn.close()
        check(st == 200, f"advance: {st} {r}")
    h = state(s)
    s.stop()
    data = b"".join(open(f, "rb").read() for f in segments(d))
    return h, data


def determinism(tmp):
    h1, j1 = deterministic_run(os.path.join(tmp, "det1"))
    h2, j2 = deterministic_run(os.path.join(tmp, "det2"))
    check(h1 == h2, f"same inputs, different states: {h1} {h2}")
    check(j1 == j2, f"same inputs, journals differ ({len(j1)} and {len(j2)} bytes)")
    check(len(j1) > 10000, f"the run journaled too little: {len(j1)} bytes")
    _, rh, _ = replay(os.path.join(tmp, "det1"))
    check(rh == h1[1], f"replay {rh} vs the run's {h1[1]}")
    print(f"determinism: two runs, {len(j1)} identical journal bytes, hash {h1[1]}")


def main():
    tmp = tempfile.mkdtemp(prefix="perpsim-journal-")
    try:
        determinism(tmp)
        seeded_restart(tmp)
        corruption(tmp)
        crash_under_load(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"journal: all {httpkit.checks} checks passed")


if __name__ == "__main__":
    main()
