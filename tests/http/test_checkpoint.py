#!/usr/bin/env python3
"""Checkpoints and restores (issue 16), driven as an instructor would: the
real server with its journal and the living market on a stepped clock,
real HTTP, a real WebSocket, a real kill -9.

- A checkpoint names the exchange as it is (its state hash); after a shock,
  a user's cancel, a new student account and ten minutes of the market, a
  restore gives back that exact exchange: the state hash and engine time,
  the order book level for level, the user's order and wallet, the new
  student's key refused; the audit exact. The sequence number goes on.
- A WebSocket connected across the restore is closed with 1012 and its
  reason; a new connection's orderBookL2 partial is the restored book.
- After kill -9 the server recovers the state it had (the journal holds
  the restore), lists the checkpoints, and restores one again; `perpsim
  replay` gives the same hash. Two restores in a row (one through the
  other's path) give each checkpoint's hash.
- Refusals change nothing: no --data-dir, a bad or missing name, a name
  taken, an unknown checkpoint.
"""
import calendar
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import httpkit
from httpkit import Client, Server as KitServer, check

START = "2026-12-01T00:00:00.000Z"


def Server(data_dir, market=True):
    """A recovery rebuilds each restore from the journal: in a sanitized
    build, whose every command walks the books' invariants, that is
    seconds each."""
    return KitServer(BIN, "--rate-limit", "off", "--data-dir", data_dir, "--clock", "stepped", "--start-time", START,
                     "--seed", "3", market=market, start_timeout=180)


def iso_ms(t):
    return calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(t[20:23])


def state(s):
    st, _, o = s.admin("GET", "state")
    check(st == 200, f"GET state: {st} {o}")
    return o


def advance(s, ms):
    """In steps of 10 s of market: each reply well within the client's
    timeout in a sanitized build too."""
    while ms > 0:
        st, _, o = s.admin("POST", "clock/advance", {"ms": min(ms, 10_000)})
        check(st == 200, f"advance {ms}: {st} {o}")
        ms -= 10_000


def book(s):
    return s.get("/api/v1/orderBook/L2?symbol=XBTUSD&depth=0")


def replay_hash(data_dir):
    r = subprocess.run([BIN, "replay", "--data-dir", data_dir], capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"perpsim replay: {r.returncode} {r.stdout} {r.stderr}")
    m = re.search(r"sequence\s+(\d+) at .*\n\s+state hash\s+([0-9a-f]{16})", r.stdout)
    check(m is not None, f"replay output: {r.stdout}")
    return int(m.group(1)), m.group(2)


def ws_partial(port, topic):
    """A fresh connection's partial of topic: its rows."""
    w = httpkit.RawWebSocket(port)
    check(w.status == 101, f"WebSocket upgrade: {w.status}")
    w.send_text(json.dumps({"op": "subscribe", "args": [topic]}))
    deadline = time.time() + 10
    while time.time() < deadline:
        op, payload = w.recv_frame()
        if op != 1:
            continue
        m = json.loads(payload)
        if m.get("action") == "partial" and m.get("table") == topic.split(":")[0]:
            w.close()
            return m["data"]
    check(False, f"no partial of {topic}")


def refusals(s):
    for body, want in (({}, "'name' is a required arg"), ({"name": "a b"}, "Invalid name"),
                       ({"name": ""}, "Invalid name"), ({"name": "x" * 65}, "Invalid name"),
                       ({"name": 5}, "Invalid name"), ({"name": "ok", "bogus": 1}, "Unknown parameter")):
        for path in ("checkpoint", "restore"):
            st, _, o = s.admin("POST", path, body)
            check(st == 400 and want in o["error"]["message"], f"POST {path} {body}: {st} {o}")


def main():
    # Without a journal there is nothing to rebuild from: refused.
    bare = KitServer(BIN, "--clock", "stepped")
    st, _, o = bare.admin("POST", "checkpoint", {"name": "x"})
    check(st == 400 and "--data-dir" in o["error"]["message"], f"checkpoint without a journal: {st} {o}")
    refusals(bare)
    bare.stop()

    d = tempfile.mkdtemp(prefix="perpsim-cp-")
    try:
        s = Server(d)
        advance(s, 30_000)  # the makers' ladders, noise trades
        u = s.account()
        cu = Client(s, {"account": u.account, "apiKey": u.key, "apiSecret": u.secret})
        o = cu.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 100, "price": 30000})
        b0 = book(s)
        check(len([r for r in b0 if r["side"] == "Sell"]) >= 10, f"a market to restore: {len(b0)} levels")
        w0 = cu.ok("GET", "user/margin", params={"currency": "XBt"})
        s0 = state(s)
        st, _, cp = s.admin("POST", "checkpoint", {"name": "lesson-1"})
        check(st == 200 and cp["name"] == "lesson-1" and cp["hash"] == s0["hash"] and cp["seq"] == s0["seq"] + 1
              and cp["time"] == s0["time"], f"checkpoint: {st} {cp} (state {s0})")
        st, _, o2 = s.admin("POST", "checkpoint", {"name": "lesson-1"})
        check(st == 400 and "exists already" in o2["error"]["message"], f"a name taken: {st} {o2}")
        st, _, o2 = s.admin("POST", "restore", {"name": "nope"})
        check(st == 404 and "No checkpoint named nope" in o2["error"]["message"], f"unknown: {st} {o2}")
        refusals(s)
        check(state(s)["seq"] == cp["seq"], "refusals are no commands")

        # A WebSocket across the restore.
        ws = httpkit.RawWebSocket(s.port)
        ws.send_text(json.dumps({"op": "subscribe", "args": ["orderBookL2:XBTUSD"]}))

        # The lesson: a shock, the user's cancel, a new student, minutes.
        st, _, _ = s.admin("POST", "index", {"symbol": ".BXBT", "move": -0.1})
        check(st == 200, "shock")
        cu.ok("DELETE", "order", {"orderID": o["orderID"]})
        v = s.account()
        advance(s, 60_000)
        s1 = state(s)
        check(s1["hash"] != cp["hash"] and book(s) != b0, "the lesson moved the exchange")

        st, _, r = s.admin("POST", "restore", {"name": "lesson-1"})
        check(st == 200 and r["hash"] == cp["hash"] and r["restoreSeq"] == s1["seq"] + 1, f"restore: {st} {r}")
        s2 = state(s)
        check(s2["hash"] == cp["hash"] and s2["time"] == cp["time"] and s2["seq"] == s1["seq"] + 1,
              f"restored state {s2}, checkpoint {cp}")
        t = s.get("/api/v1")["timestamp"]
        check(t == iso_ms(cp["time"]), f"the clock went back to the checkpoint's time: {t} {cp['time']}")
        check(book(s) == b0, "the book as it was, level for level")
        orders = cu.ok("GET", "order", params={"filter": json.dumps({"open": True})})
        check([x["orderID"] for x in orders] == [o["orderID"]], f"the user's order is back: {orders}")
        check(cu.ok("GET", "user/margin", params={"currency": "XBt"}) == w0, "the wallet as it was")
        st, _, e = Client(s, {"account": v.account, "apiKey": v.key, "apiSecret": v.secret}).req("GET", "user/margin")
        check(st == 401, f"a key made after the checkpoint is gone: {st} {e}")
        s.audit()

        # The connection across it was closed, with the reason; a new one
        # gets the restored book.
        code, reason = None, ""
        deadline = time.time() + 10
        while time.time() < deadline:
            op, payload = ws.recv_frame()
            if op == 8:
                code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
                break
        ws.close()
        check(code == 1012 and "lesson-1" in reason, f"close frame: {code} {reason!r}")
        rows = ws_partial(s.port, "orderBookL2:XBTUSD")
        check(sorted((x["id"], x["side"], x["size"], x["price"]) for x in rows)
              == sorted((x["id"], x["side"], x["size"], x["price"]) for x in b0), "the partial is the restored book")

        # On from the checkpoint, another checkpoint, back and forth.
        advance(s, 40_000)
        st, _, cp2 = s.admin("POST", "checkpoint", {"name": "lesson-2"})
        check(st == 200, f"second checkpoint: {st} {cp2}")
        advance(s, 20_000)
        for name, want in (("lesson-1", cp["hash"]), ("lesson-2", cp2["hash"])):
            st, _, r = s.admin("POST", "restore", {"name": name})
            check(st == 200 and state(s)["hash"] == want, f"restore {name}: {st} {r}")
        advance(s, 10_000)
        before = state(s)
        st, _, lst = s.admin("GET", "checkpoint")
        check(st == 200 and [x["name"] for x in lst] == ["lesson-1", "lesson-2"], f"list: {lst}")

        # kill -9: the journal holds the restores; recovery rebuilds them.
        s.p.send_signal(signal.SIGKILL)
        s.p.wait(timeout=20)
        s.conn.close()
        s = Server(d)
        m = re.search(r"sequence\s+(\d+) at .*\n\s+state hash\s+([0-9a-f]{16})", s.banner)
        check(m and int(m.group(1)) == before["seq"] and m.group(2) == before["hash"],
              f"recovered {m and m.groups()}, before the kill {before}")
        check(state(s)["hash"] == before["hash"], "recovered state")
        st, _, lst2 = s.admin("GET", "checkpoint")
        check(lst2 == lst, f"checkpoints after recovery: {lst2}")
        st, _, r = s.admin("POST", "restore", {"name": "lesson-1"})
        check(st == 200 and state(s)["hash"] == cp["hash"], f"restore after recovery: {st} {r}")
        s.audit()
        # Keys drawn from the seed skip every key ever made: the undone
        # student's key is never handed to someone else.
        w = s.account()
        check(w.key != v.key and w.secret != v.secret, f"a key once held is not issued again: {w.key}")
        last = state(s)
        s.stop()
        check(replay_hash(d) == (last["seq"], last["hash"]), "perpsim replay gives the same state")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"checkpoint: {httpkit.checks} checks passed")


if __name__ == "__main__":
    main()
