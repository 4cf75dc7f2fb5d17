#!/usr/bin/env python3
"""Fault injection over real HTTP (POST /admin/v1/faults): each fault as a
client sees it.

- overload 1.0: every signed write gets BitMEX's 503 body and nothing is
  applied (the account's orders stay as they were), reads still answer;
  overload 0.5 with a seed: roughly half of 200 orders refused, exactly the
  accepted ones in the order history, the same pattern for the same seed
  and another for another seed;
- maintenance: an HTML 503 (text/html) on public, private and signed
  routes and on /api/v1 itself, the admin API and /metrics still answer,
  turning it off (or its duration running out) restores service;
- latency 300 ms: a GET takes at least 300 ms, eight held at once end
  together (no HTTP thread sleeps: there are two) while another connection
  polling /metrics is answered at once; it ends after its duration; the
  volatility term: an index move of 3% adds latencyPerVolPct x 3 ms;
- rateLimit429 1.0: the rate limiter's 429 (RateLimitError, "Rate limit
  exceeded, retry in 1 seconds.", Retry-After, x-ratelimit-remaining 0), no
  tokens charged, the order not applied;
- websocketDrops 1.0: an open WebSocket connection ends within about a
  second without a close frame (what a client sees as 1006), a new one is
  dropped too; after DELETE a connection stays open and answers "ping";
- bad requests are refused with 400 ValidationError and change nothing;
  GET shows what is on with the time left; DELETE turns everything off;
- /metrics counts every injected fault by kind, equal to GET's counts.
"""
import http.client
import json
import re
import sys
import threading
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import httpkit
from httpkit import TOKEN, Server as KitServer, check

OVERLOADED = {"error": {"message": "The system is currently overloaded. Please try again later.",
                        "name": "HTTPError"}}
KINDS = ["overload", "maintenance", "latency", "rateLimit429", "websocketDrops"]


def Server(*args):
    return KitServer(BIN, *args)


def faults(s):
    st, _, r = s.admin("GET", "faults")
    check(st == 200 and isinstance(r, dict) and set(r) == {"faults", "injected", "timestamp"},
          f"GET faults: {st} {r}")
    return r


def set_faults(s, body):
    st, _, r = s.admin("POST", "faults", body)
    check(st == 200, f"POST faults {body}: {st} {r}")
    return r


def metrics(s):
    st, h, text = s.raw("GET", "/metrics")
    check(st == 200 and h["content-type"].startswith("text/plain"), f"metrics: {st}")
    out = {}
    for k in KINDS:
        m = re.search(r'^perpsim_faults_injected_total\{kind="%s"\} (\d+)$' % k, text, re.M)
        check(m is not None, f"metrics has perpsim_faults_injected_total{{kind=\"{k}\"}}")
        out[k] = int(m.group(1))
    return out


def delta(after, before):
    return {k: after[k] - before[k] for k in KINDS}


def order(c, price=1000, qty=100):
    return c.req("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": qty, "price": price})


def orders_of(c):
    rows = c.ok("GET", "order", params={"count": 1000})
    return rows


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return time.monotonic() - t0, r


def is_maintenance(resp, what):
    st, h, body = resp
    check(st == 503 and h.get("content-type", "").startswith("text/html") and isinstance(body, str)
          and "<html>" in body and "maintenance" in body.lower(), f"{what}: want the HTML 503, got {st} {h} {body}")


def get_on(port, target, out, i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    t0 = time.monotonic()
    c.request("GET", target)
    r = c.getresponse()
    r.read()
    out[i] = (r.status, time.monotonic() - t0)
    c.close()


# ---- overload: the shares are seeded -------------------------------------------------------------

def overload_pattern(seed, n):
    """A fresh server with --seed: overload 0.5 and n orders; the pattern of
    503s, with every accepted order in the history and reads unaffected."""
    s = Server("--rate-limit", "off", "--seed", str(seed))
    try:
        c = s.account()
        m0 = metrics(s)
        set_faults(s, {"overload": 0.5})
        pattern = []
        for i in range(n):
            st, _, r = order(c, price=1000 + i)
            check(st in (200, 503), f"order under overload 0.5: {st} {r}")
            if st == 503:
                check(r == OVERLOADED, f"the overload body: {r}")
            pattern.append(st == 503)
            if i % 10 == 0:
                st, _, m = c.req("GET", "user/margin")
                check(st == 200 and m["currency"] == "XBt", f"a read under overload: {st} {m}")
        refused = sum(pattern)
        rows = orders_of(c)
        check(len(rows) == n - refused, f"exactly the accepted orders applied: {len(rows)} rows, {n - refused} accepted")
        check({r["price"] for r in rows} == {1000 + i for i in range(n) if not pattern[i]},
              "the accepted orders are the ones in the history")
        check(delta(metrics(s), m0) == {"overload": refused, "maintenance": 0, "latency": 0, "rateLimit429": 0,
                                        "websocketDrops": 0},
              f"metrics count the {refused} overloads")
        return pattern
    finally:
        s.stop()


def run_overload_seeded():
    a = overload_pattern(42, 200)
    refused = sum(a)
    check(40 <= refused <= 160, f"overload 0.5: roughly half of 200 refused, got {refused}")
    b = overload_pattern(42, 40)
    check(b == a[:40], f"the same seed, the same pattern: {b} vs {a[:40]}")
    c = overload_pattern(43, 40)
    check(c != a[:40], "another seed, another pattern")


# ---- one server, rate limits off -----------------------------------------------------------------

def run_main(s):
    tr = s.account()
    r = faults(s)
    check(r["faults"] == {} and r["injected"] == {k: 0 for k in KINDS} and r["timestamp"].endswith("Z"),
          f"nothing on at start: {r}")
    m0 = metrics(s)

    # ---- the admin API's guard and bad requests: 400, nothing changes ----------------------------------
    st, _, _ = s.raw("GET", "/admin/v1/faults")
    check(st == 401, f"faults without the token: {st}")
    st, _, _ = s.raw("POST", "/admin/v1/faults", json.dumps({"overload": 1}).encode(),
                     {"Authorization": "Bearer wrong"})
    check(st == 401, f"faults with a wrong token: {st}")
    before = set_faults(s, {"overload": 0.25})["faults"]
    check(before == {"overload": {"share": 0.25, "timeLeftMs": None, "until": None}}, f"overload 0.25 on: {before}")
    bad = [
        ({"overload": 0.5, "colour": "red"}, "Unknown parameter: colour"),
        ({"overload": 1.5}, "Invalid overload"),
        ({"overload": -0.1}, "Invalid overload"),
        ({"overload": "abc"}, "Invalid overload"),
        ({"overload": None}, "Invalid overload"),
        ({"overload": 0.1234567}, "Invalid overload"),
        ({"rateLimit429": 2}, "Invalid rateLimit429"),
        ({"maintenance": "yes"}, "Invalid maintenance"),
        ({"maintenance": 2}, "Invalid maintenance"),
        ({"latencyMs": 60001}, "Invalid latencyMs"),
        ({"latencyMs": -1}, "Invalid latencyMs"),
        ({"latencyMs": 1.5}, "Invalid latencyMs"),
        ({"latencyPerVolPct": -5}, "Invalid latencyPerVolPct"),
        ({"overload": 0.5, "durationMs": 0}, "Invalid durationMs"),
        ({"overload": 0.5, "durationMs": "soon"}, "Invalid durationMs"),
        ({"durationMs": 1000}, "Give at least one of"),
        ({}, "Give at least one of"),
        ({"overload": 0, "durationMs": 1000}, "durationMs goes with a fault turned on"),
        ({"websocketDrops": 1.5}, "Invalid websocketDrops"),
        ({"websocketDrops": "all"}, "Invalid websocketDrops"),
        # a good field with a bad one: neither applies
        ({"overload": 0.9, "latencyMs": 70000}, "Invalid latencyMs"),
        ({"maintenance": True, "rateLimit429": "x"}, "Invalid rateLimit429"),
    ]
    for body, msg in bad:
        st, _, r = s.admin("POST", "faults", body)
        check(st == 400 and r["error"]["name"] == "ValidationError" and msg in r["error"]["message"],
              f"POST faults {body}: want 400 '{msg}', got {st} {r}")
        now = faults(s)["faults"]
        check(now == before, f"after the bad {body}: faults changed to {now}")
    st, _, r = s.admin("GET", "faults?bogus=1")
    check(st == 400 and "Unknown parameter: bogus" in r["error"]["message"], f"GET faults?bogus=1: {st} {r}")
    st, _, r = s.admin("DELETE", "faults", {"bogus": 1})
    check(st == 400 and faults(s)["faults"] == before, f"DELETE faults with a bogus parameter: {st} {r}")
    st, _, r = s.admin("PUT", "faults", {"overload": 1})
    check(st == 405, f"PUT faults: {st}")
    st, _, r = s.admin("DELETE", "faults")
    check(st == 200 and r["faults"] == {}, f"DELETE turns everything off: {st} {r}")
    check(delta(metrics(s), m0) == {k: 0 for k in KINDS}, "bad requests injected nothing")

    # ---- overload 1.0: every write refused, nothing applied -----------------------------------------------
    resting = tr.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 100, "price": 2000})
    rows0 = orders_of(tr)
    m0 = metrics(s)
    r = set_faults(s, {"overload": 1, "durationMs": 60000})
    ov = r["faults"]["overload"]
    check(ov["share"] == 1 and 55000 < ov["timeLeftMs"] <= 60000 and ov["until"].endswith("Z"),
          f"GET shows overload with its time left: {r}")
    writes = [
        (lambda i=i: order(tr, price=3000 + i * 10)) for i in range(20)
    ] + [
        lambda: tr.req("PUT", "order", {"orderID": resting["orderID"], "price": 2100}),
        lambda: tr.req("POST", "order/bulk", {"orders": [{"symbol": "XBTUSD", "orderQty": 100, "price": 1500}]}),
        lambda: tr.req("POST", "position/leverage", {"symbol": "XBTUSD", "leverage": 10}),
    ]
    for w in writes:
        st, h, r = w()
        check(st == 503 and r == OVERLOADED and h["content-type"].startswith("application/json"),
              f"a write under overload 1.0: {st} {r}")
        st, _, m = tr.req("GET", "user/margin")
        check(st == 200 and m["currency"] == "XBt", f"a read under overload 1.0: {st} {m}")
    st, _, r = s.raw("GET", "/api/v1/instrument?symbol=XBTUSD")
    check(st == 200 and r[0]["symbol"] == "XBTUSD", f"a public read under overload: {st}")
    rows1 = orders_of(tr)
    check(rows1 == rows0, f"nothing applied under overload 1.0: {len(rows0)} -> {len(rows1)} orders")
    pos = [p for p in tr.ok("GET", "position") if p["symbol"] == "XBTUSD"]
    check(not pos or pos[0]["leverage"] != 10, "the leverage change was not applied")
    s.audit()
    check(delta(metrics(s), m0) == {"overload": len(writes), "maintenance": 0, "latency": 0, "rateLimit429": 0,
                                        "websocketDrops": 0},
          f"metrics count {len(writes)} overloads")
    # Cancels are never refused, as by the real write queue.
    st, _, r = tr.req("DELETE", "order", {"orderID": resting["orderID"]})
    check(st == 200 and r[0]["ordStatus"] == "Canceled", f"a cancel under overload 1.0 goes through: {st} {r}")
    st, _, r = tr.req("DELETE", "order/all")
    check(st == 200, f"a cancel-all under overload 1.0 goes through: {st} {r}")
    check(delta(metrics(s), m0)["overload"] == len(writes), "cancels are not counted as overloads")
    r = set_faults(s, {"overload": 0})
    check(r["faults"] == {}, f"overload 0 turns it off: {r}")
    o = tr.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 100, "price": 2500})
    check(o["ordStatus"] == "New" and len(orders_of(tr)) == len(rows0) + 1, "writes applied again")

    # ---- maintenance ---------------------------------------------------------------------------------------
    m0 = metrics(s)
    r = set_faults(s, {"maintenance": True})
    check(r["faults"] == {"maintenance": {"timeLeftMs": None, "until": None}}, f"maintenance on: {r}")
    hits = [
        (s.raw("GET", "/api/v1/instrument?symbol=XBTUSD"), "public read"),
        (s.raw("GET", "/api/v1"), "/api/v1 itself"),
        (s.raw("GET", "/api/v1/position"), "private route without auth"),
        (tr.req("GET", "position"), "signed private read"),
        (order(tr), "signed order"),
        (tr.req("DELETE", "order/all"), "signed cancel-all"),
        (s.raw("GET", "/api/v1/nothing/here"), "unknown route"),
    ]
    for resp, what in hits:
        is_maintenance(resp, what)
    st, _, a = s.admin("GET", "audit")
    check(st == 200 and a["ok"], f"the admin API works in maintenance: {st}")
    check(delta(metrics(s), m0)["maintenance"] == len(hits), "metrics count the maintenance replies (and /metrics answers)")
    r = set_faults(s, {"maintenance": False})
    check(r["faults"] == {}, f"maintenance false turns it off: {r}")
    st, h, r = s.raw("GET", "/api/v1/instrument?symbol=XBTUSD")
    check(st == 200 and h["content-type"].startswith("application/json") and r[0]["symbol"] == "XBTUSD",
          f"service restored: {st} {h}")
    check(len(orders_of(tr)) == len(rows0) + 1, "the order and the cancel-all sent in maintenance changed nothing")
    # With a duration: over by itself.
    r = set_faults(s, {"maintenance": True, "durationMs": 800})
    left = r["faults"]["maintenance"]["timeLeftMs"]
    check(0 < left <= 800, f"maintenance for 800 ms: time left {left}")
    is_maintenance(s.raw("GET", "/api/v1/announcement"), "maintenance with a duration")
    time.sleep(1.0)
    st, _, r = s.raw("GET", "/api/v1/announcement")
    check(st == 200 and r == [], f"maintenance over after its duration: {st} {r}")
    check(faults(s)["faults"] == {}, "GET shows nothing on after the duration")

    # ---- latency -------------------------------------------------------------------------------------------
    m0 = metrics(s)
    t_on = time.monotonic()
    r = set_faults(s, {"latencyMs": 300, "durationMs": 3000})
    lat = r["faults"]["latency"]
    check(lat["latencyMs"] == 300 and lat["currentMs"] == 300 and lat["latencyPerVolPct"] == 0
          and 0 < lat["timeLeftMs"] <= 3000, f"latency on: {r}")
    dt, (st, _, _) = timed(lambda: s.raw("GET", "/api/v1/announcement"))
    check(st == 200 and 0.3 <= dt < 2.5, f"a GET takes at least 300 ms: {dt:.3f} s")
    dt, (st, _, o) = timed(lambda: order(tr, price=2600))
    check(st == 200 and o["ordStatus"] == "New" and dt >= 0.3, f"a write is applied, its reply held: {st} {dt:.3f} s")
    dt, (st, _, _) = timed(lambda: s.admin("GET", "audit"))
    check(st == 200 and dt < 0.3, f"the admin API is not held (300 ms would be): {dt:.3f} s")
    # Eight held at once on eight connections while a ninth polls /metrics:
    # with a sleeping HTTP thread per held reply (two threads) they would
    # take 4 x 300 ms and the poll would wait.
    n = 8
    out = [None] * n
    ths = [threading.Thread(target=get_on, args=(s.port, "/api/v1/instrument?symbol=XBTUSD", out, i)) for i in range(n)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    polls = []
    pc = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    while any(t.is_alive() for t in ths):
        p0 = time.monotonic()
        pc.request("GET", "/metrics")
        pr = pc.getresponse()
        pr.read()
        polls.append((pr.status, time.monotonic() - p0))
        time.sleep(0.02)
    pc.close()
    for t in ths:
        t.join()
    total = time.monotonic() - t0
    check(all(o is not None and o[0] == 200 and o[1] >= 0.3 for o in out), f"each held GET took >= 300 ms: {out}")
    check(total < 1.15, f"{n} held GETs end together, no HTTP thread waits (sleeping threads: 1.2 s): {total:.3f} s")
    check(len(polls) >= 2 and all(st == 200 for st, _ in polls) and max(d for _, d in polls) < 0.3,
          f"the other connection is answered at once meanwhile: {len(polls)} polls, slowest "
          f"{max(d for _, d in polls):.3f} s")
    held = 2 + n
    # The duration runs out.
    time.sleep(max(0.0, 3.0 - (time.monotonic() - t_on)) + 0.3)
    dt, (st, _, _) = timed(lambda: s.raw("GET", "/api/v1/announcement"))
    check(st == 200 and dt < 0.3, f"latency over after its duration: {dt:.3f} s")
    check(faults(s)["faults"] == {}, "GET shows nothing on after the latency's duration")
    check(delta(metrics(s), m0) == {"overload": 0, "maintenance": 0, "latency": held, "rateLimit429": 0,
                                        "websocketDrops": 0},
          f"metrics count {held} held replies")

    # The volatility term: latencyPerVolPct ms per 1% of the index's range.
    r = set_faults(s, {"latencyMs": 50, "latencyPerVolPct": 100})
    lat = r["faults"]["latency"]
    check(lat["volatilityPct"] == 0 and lat["currentMs"] == 50 and lat["timeLeftMs"] is None, f"no move yet: {r}")
    dt, (st, _, _) = timed(lambda: s.raw("GET", "/api/v1/announcement"))
    check(st == 200 and 0.05 <= dt < 0.34, f"50 ms without volatility (350 with it): {dt:.3f} s")
    st, _, _ = s.admin("POST", "index", {"symbol": ".BXBT", "price": 61800})
    check(st == 200, "the index moves 3%")
    dt, (st, _, _) = timed(lambda: s.raw("GET", "/api/v1/announcement"))
    check(st == 200 and dt >= 0.35, f"50 + 100 x 3 ms after a 3% move: {dt:.3f} s")
    lat = faults(s)["faults"]["latency"]
    check(lat["volatilityPct"] == 3 and lat["currentMs"] == 350, f"GET shows the volatility: {lat}")
    r = set_faults(s, {"latencyMs": 0, "latencyPerVolPct": 0})
    check(r["faults"] == {}, f"latency 0 turns it off: {r}")
    dt, _ = timed(lambda: s.raw("GET", "/api/v1/announcement"))
    check(dt < 0.2, f"no latency once off: {dt:.3f} s")

    # ---- several at once; DELETE turns all off -------------------------------------------------------------
    r = set_faults(s, {"overload": 0.5, "rateLimit429": 0.1, "latencyMs": 10, "durationMs": 120000})
    check(set(r["faults"]) == {"overload", "rateLimit429", "latency"}
          and all(110000 < f["timeLeftMs"] <= 120000 for f in r["faults"].values()), f"three on: {r}")
    r = set_faults(s, {"maintenance": True})
    check(set(r["faults"]) == {"overload", "rateLimit429", "latency", "maintenance"}
          and r["faults"]["overload"]["share"] == 0.5, f"a fourth one leaves the others as they were: {r}")
    r = set_faults(s, {"rateLimit429": 0})
    check(set(r["faults"]) == {"overload", "latency", "maintenance"}, f"one turned off: {r}")
    st, _, r = s.admin("DELETE", "faults")
    check(st == 200 and r["faults"] == {}, f"DELETE: {r}")
    st, _, r = s.raw("GET", "/api/v1/announcement")
    check(st == 200, "service after DELETE")
    g = faults(s)
    check(g["injected"] == metrics(s), f"GET's counts equal /metrics: {g['injected']}")
    s.audit()


# ---- 429s, with the real limits on ---------------------------------------------------------------

def run_429(s):
    c = s.account()
    st, h, _ = c.req("GET", "user/margin")
    check(st == 200 and h["x-ratelimit-limit"] == "300", f"signed limit: {h}")
    rem0 = int(h["x-ratelimit-remaining"])
    m0 = metrics(s)
    r = set_faults(s, {"rateLimit429": 1})
    check(r["faults"] == {"rateLimit429": {"share": 1, "timeLeftMs": None, "until": None}}, f"429s on: {r}")
    want = {"error": {"message": "Rate limit exceeded, retry in 1 seconds.", "name": "RateLimitError"}}
    sent_at = int(time.time())
    sent = [
        (s.raw("GET", "/api/v1/announcement"), "150"),
        (s.raw("GET", "/api/v1/instrument?symbol=XBTUSD"), "150"),
        (c.req("GET", "user/margin"), "300"),
        (c.req("GET", "order"), "300"),
        (order(c), "300"),
    ] + [(c.req("GET", "position"), "300") for _ in range(15)]
    for (st, h, r), limit in sent:
        check(st == 429 and r == want and h.get("retry-after") == "1" and h.get("x-ratelimit-limit") == limit
              and h.get("x-ratelimit-remaining") == "0" and int(h["x-ratelimit-reset"]) >= sent_at,
              f"the injected 429: {st} {h} {r}")
    st, _, a = s.admin("GET", "audit")
    check(st == 200, "the admin API is never refused")
    check(delta(metrics(s), m0) == {"overload": 0, "maintenance": 0, "latency": 0, "rateLimit429": len(sent),
                                        "websocketDrops": 0},
          f"metrics count {len(sent)} 429s")
    set_faults(s, {"rateLimit429": 0})
    st, h, _ = c.req("GET", "user/margin")
    check(st == 200 and int(h["x-ratelimit-remaining"]) >= rem0 - 1,
          f"the injected 429s took no tokens: {rem0} before, {h['x-ratelimit-remaining']} after one more read")
    check(c.ok("GET", "order") == [], "the order answered 429 was not applied")
    # A share: some refused, some not, on one connection.
    set_faults(s, {"rateLimit429": 0.5})
    sts = [s.raw("GET", "/api/v1/announcement")[0] for _ in range(40)]
    check(set(sts) == {200, 429}, f"rateLimit429 0.5: both answers: {sts}")
    s.admin("DELETE", "faults")


def run_ws_drops(s):
    import socket

    def lifetime(ws, limit_s):
        """Seconds until the connection ends without a close frame, None if it
        is still open after limit_s; a close frame fails the check."""
        t0 = time.monotonic()
        ws.sock.settimeout(0.2)
        while time.monotonic() - t0 < limit_s:
            try:
                op, payload = ws.recv_frame()
            except socket.timeout:
                continue
            except (EOFError, ConnectionError):
                return time.monotonic() - t0
            check(op != 8, f"websocketDrops sent a close frame {payload!r}: a drop has none")
        return None

    m0 = metrics(s)
    quiet = httpkit.RawWebSocket(s.port)
    check(quiet.status == 101, f"upgrade: {quiet.status}")
    check(lifetime(quiet, 1.5) is None, "a connection ended with no fault on")
    set_faults(s, {"websocketDrops": 1})
    check(faults(s)["faults"]["websocketDrops"]["share"] == 1, "GET faults shows websocketDrops")
    t = lifetime(quiet, 3.0)
    check(t is not None, "websocketDrops 1: the open connection was not dropped within 3 s")
    fresh = httpkit.RawWebSocket(s.port)
    check(fresh.status == 101 and lifetime(fresh, 3.0) is not None, "websocketDrops 1: a new connection stays")
    st, _, _ = s.raw("GET", "/api/v1/instrument?symbol=XBTUSD")
    check(st == 200, f"REST during websocketDrops: {st}")
    s.admin("DELETE", "faults")
    kept = httpkit.RawWebSocket(s.port)
    check(lifetime(kept, 2.5) is None, "after DELETE the connection was dropped")
    kept.send_text("ping")
    kept.sock.settimeout(5)
    got = None
    while got is None:
        op, payload = kept.recv_frame()
        if op == 1 and payload == b"pong":
            got = payload
    kept.close()
    quiet.close()
    fresh.close()
    d = delta(metrics(s), m0)
    check(d["websocketDrops"] >= 2, f"metrics count the drops: {d}")
    print(f"websocketDrops: an open connection dropped after {t:.2f} s, no close frame; off again: kept")


def main():
    run_overload_seeded()
    s = Server("--rate-limit", "off", "--seed", "7")
    try:
        run_main(s)
        run_ws_drops(s)
    finally:
        s.stop()
    s2 = Server("--rate-limit", "default")
    try:
        run_429(s2)
    finally:
        s2.stop()
    print(f"http faults: {httpkit.checks} checks passed")


if __name__ == "__main__":
    main()
