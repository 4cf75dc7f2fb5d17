#!/usr/bin/env python3
"""The engine clock as an input, over real HTTP (issue 15's Time section).

- A stepped clock does not move by itself (no idle commands either); an
  advance of 8 hours answers after exactly one funding per perpetual at its
  funding timestamp, paid by the long to the short to the satoshi (the
  contract's value at the mark, rounded half away from zero, times the rate,
  the payer's share rounded up and the receiver's down); Day orders expire at
  00:00 UTC engine time; the quarterly future settles at its expiry.
- Two servers with the same seed, the same stepped clock and the same user
  commands have the same state hash at every step.
- The modes switch at run time (accelerated runs faster than real time,
  real runs at 1x from where engine time is); bad requests are refused.
- api-expires is checked against engine time: a bot signs with the time
  GET /api/v1 gives.
"""
import calendar
import http.client
import json
import math
import sys
import time
from fractions import Fraction

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import httpkit
from httpkit import Client, Server as KitServer, check

# Two days before the quarterly future's expiry (Friday 2026-12-25 12:00).
START = "2026-12-23T00:30:00.000Z"
START_MS = 1797985800000
HOUR = 3600 * 1000


def Server(*args):
    return KitServer(BIN, "--rate-limit", "off", *args)


class EngineTimeClient(Client):
    """Signs with the exchange's time (GET /api/v1), as a backtesting bot does."""

    def req(self, verb, path, body=None, params=None, expires=None, secret=None, raw_body=None):
        if expires is None:
            _, _, root = self.srv.raw("GET", "/api/v1")
            expires = root["timestamp"] // 1000 + 60
        return super().req(verb, path, body, params, expires, secret, raw_body)


def clock(s):
    st, _, c = s.admin("GET", "clock")
    check(st == 200, f"GET clock: {st} {c}")
    return c


def advance(s, **kw):
    """An advance answers when everything due on the way has run: a simulated
    day is 1,440 stops, a few milliseconds each in a sanitized build, so its
    own connection waits longer than the kit's 10 s."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=300)
    try:
        conn.request("POST", "/admin/v1/clock/advance", body=json.dumps(kw).encode(),
                     headers={"Authorization": "Bearer " + httpkit.TOKEN, "Content-Type": "application/json"})
        r = conn.getresponse()
        st, c = r.status, json.loads(r.read())
    finally:
        conn.close()
    check(st == 200 and c["mode"] == "stepped", f"advance {kw}: {st} {c}")
    return c


def state(s):
    st, _, r = s.admin("GET", "state")
    check(st == 200, f"state: {st} {r}")
    return r


def iso_ms(t):
    return calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(t[20:23])


def funding_owed(qty, mark, rate):
    """XBTUSD (inverse, multiplier -1e8): |value(qty, mark)| x rate; (paid, received)."""
    mark_px = round(Fraction(str(mark)) * 10**8)
    v = Fraction(10**8 * abs(qty) * 10**8, mark_px)
    value = math.floor(v + Fraction(1, 2))
    rate_e8 = round(Fraction(str(rate)) * 10**8)
    exact = Fraction(value * abs(rate_e8), 10**8)
    return math.ceil(exact), math.floor(exact)


def stepped_market(s):
    check(s.get("/api/v1")["timestamp"] == START_MS, "GET /api/v1 gives engine time")
    c = clock(s)
    check(c == {"mode": "stepped", "speed": 1, "time": START}, f"the stepped clock at start: {c}")
    seq0 = state(s)["seq"]
    time.sleep(0.6)
    check(state(s)["seq"] == seq0 and clock(s)["time"] == START, "a stepped clock does not move, nor tick")

    long_, short, day = (s.account() for _ in range(3))
    short.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 1000, "price": 60000})
    long_.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 1000, "price": 60000})
    d = day.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 100, "price": 50000,
                                 "timeInForce": "Day"})
    check(d["ordStatus"] == "New", f"a Day order rests: {d}")
    pos = long_.ok("GET", "position", params={"filter": '{"symbol":"XBTUSD"}'})
    check(pos and pos[0]["currentQty"] == 1000, f"the long: {pos}")

    # 8 hours: the 04:00 funding, once per perpetual, at its timestamp.
    c = advance(s, ms=8 * HOUR)
    check(c["time"] == "2026-12-23T08:30:00.000Z", f"advanced 8 h: {c}")
    check(clock(s)["time"] == c["time"] and s.get("/api/v1")["timestamp"] == START_MS + 8 * HOUR,
          "the clock reads the advanced time")
    fund = s.get("/api/v1/funding?count=100")
    check(sorted(f["symbol"] for f in fund) == ["ETHUSD", "XBTUSD", "XBTUSDT"] and
          all(f["timestamp"] == "2026-12-23T04:00:00.000Z" for f in fund),
          f"exactly one funding per perpetual, at 04:00: {fund}")
    rows = {}
    for who, cl in (("long", long_), ("short", short)):
        ex = cl.ok("GET", "execution", params={"filter": '{"execType":"Funding"}', "count": 100})
        check(len(ex) == 1 and ex[0]["symbol"] == "XBTUSD" and ex[0]["timestamp"] == "2026-12-23T04:00:00.000Z",
              f"one funding execution for the {who}: {ex}")
        rows[who] = ex[0]
    rate = rows["long"]["commission"]
    paid, received = funding_owed(1000, rows["long"]["lastPx"], rate)
    check(rate > 0 and rows["long"]["execComm"] == paid and rows["short"]["execComm"] == -received and paid > 0,
          f"the long pays {paid}, the short receives {received} (rate {rate}): {rows}")
    hist = long_.ok("GET", "user/walletHistory", params={"currency": "XBt", "count": 100})
    fh = [h for h in hist if h["text"] == "Funding"]
    check(len(fh) == 1 and fh[0]["amount"] == -paid and fh[0]["transactType"] == "RealisedPNL" and
          fh[0]["timestamp"] == "2026-12-23T04:00:00.000Z", f"the long's wallet moved by the payment: {fh}")

    # To the next day: 12:00 and 20:00 fundings, then the Day order expires at 00:00.
    c = advance(s, to="2026-12-24T00:00:30Z")
    check(c["time"] == "2026-12-24T00:00:30.000Z", f"advanced to the next day: {c}")
    fund = s.get("/api/v1/funding?count=100")
    times = sorted({f["timestamp"] for f in fund})
    check(len(fund) == 9 and times == ["2026-12-23T04:00:00.000Z", "2026-12-23T12:00:00.000Z",
                                       "2026-12-23T20:00:00.000Z"], f"fundings at 04, 12, 20: {times}")
    o = day.ok("GET", "order", params={"filter": '{"orderID":"%s"}' % d["orderID"]})
    check(o and o[0]["ordStatus"] == "Canceled" and o[0]["timestamp"] == "2026-12-24T00:00:00.000Z",
          f"the Day order expired at 00:00 UTC engine time: {o}")

    # The quarterly future settles at its expiry (the last Friday of December, 12:00).
    fut = [i for i in s.get("/api/v1/instrument") if i["expiry"]][0]
    exp_ms = iso_ms(fut["expiry"])
    check(fut["state"] == "Open" and exp_ms > START_MS, f"the future is open: {fut['symbol']} {fut['expiry']}")
    c = advance(s, to=fut["expiry"][:19] + "Z")
    sett = s.get("/api/v1/settlement")
    check(len(sett) == 1 and sett[0]["symbol"] == fut["symbol"] and sett[0]["timestamp"] == fut["expiry"],
          f"the future settled at its expiry: {sett}")
    fut2 = [i for i in s.get("/api/v1/instrument") if i["symbol"] == fut["symbol"]][0]
    check(fut2["state"] == "Settled", f"the future is settled: {fut2['state']}")
    s.audit()


def determinism():
    args = ("--clock", "stepped", "--start-time", START, "--seed", "42")
    a, b = Server(*args), Server(*args)
    try:
        hashes = []
        for s in (a, b):
            s.client_class = EngineTimeClient
            steps = []
            x, y = s.account(), s.account()
            steps.append(state(s))
            x.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 500, "price": 60010,
                                   "text": "step one"})
            y.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 300, "price": 60010})
            steps.append(state(s))
            advance(s, ms=5 * HOUR)
            steps.append(state(s))
            y.ok("POST", "order", {"symbol": "ETHUSD", "side": "Buy", "orderQty": 10, "price": 3001})
            advance(s, ms=HOUR)
            steps.append(state(s))
            hashes.append(steps)
        check(hashes[0] == hashes[1], f"same seed, same commands, same state at every step: {hashes}")
        check(len({h["hash"] for h in hashes[0]}) == 4, f"each step moved the state: {hashes[0]}")
    finally:
        a.stop()
        b.stop()


def modes():
    s = Server()
    try:
        c0 = clock(s)
        check(c0["mode"] == "real" and c0["speed"] == 1, f"real by default: {c0}")
        st, _, r = s.admin("POST", "clock/advance", {"ms": 1000})
        check(st == 400 and "stepped" in r["error"]["message"], f"advance needs the stepped clock: {st} {r}")
        for body in ({"mode": "warp"}, {}, {"mode": "accelerated"}, {"mode": "accelerated", "speed": 0},
                     {"mode": "accelerated", "speed": 10**7}, {"mode": "real", "speed": 5},
                     {"mode": "stepped", "bogus": 1}):
            st, _, r = s.admin("POST", "clock", body)
            check(st == 400 and "error" in r, f"bad clock request {body}: {st} {r}")
        st, _, c = s.admin("POST", "clock", {"mode": "accelerated", "speed": 600})
        check(st == 200 and c["mode"] == "accelerated" and c["speed"] == 600, f"accelerated: {st} {c}")
        t0 = iso_ms(clock(s)["time"])
        time.sleep(0.5)
        t1 = iso_ms(clock(s)["time"])
        check(t1 - t0 >= 150 * 1000, f"600x: 0.5 s of wall time moved engine time by {t1 - t0} ms")
        st, _, c = s.admin("POST", "clock", {"mode": "stepped"})
        check(st == 200 and c["mode"] == "stepped" and iso_ms(c["time"]) >= t1, f"stepped from there: {c}")
        t2 = iso_ms(clock(s)["time"])
        time.sleep(0.3)
        check(iso_ms(clock(s)["time"]) == t2, "stepped: frozen")
        for body in ({"ms": -1}, {"to": "2001-01-01T00:00:00Z"}, {"to": "yesterday"}, {"ms": 1, "to": c["time"]},
                     {}):
            st, _, r = s.admin("POST", "clock/advance", body)
            check(st == 400, f"bad advance {body}: {st} {r}")
        advance(s, ms=90 * 1000)
        check(iso_ms(clock(s)["time"]) == t2 + 90 * 1000, "advanced by 90 s exactly")
        st, _, c = s.admin("POST", "clock", {"mode": "real"})
        t3 = iso_ms(c["time"])
        check(st == 200 and c["mode"] == "real" and t3 >= t2 + 90 * 1000, f"real from there: {c}")
        time.sleep(0.4)
        t4 = iso_ms(clock(s)["time"])
        check(300 <= t4 - t3 <= 5000, f"real: 1x from where engine time was ({t4 - t3} ms in 0.4 s)")
        s.audit()
    finally:
        s.stop()


def expires_on_engine_time():
    # Engine time four years ahead of the wall clock.
    s = Server("--start-time", "2031-01-01T00:00:00Z")
    try:
        s.client_class = Client
        wall = s.account()
        st, _, r = wall.req("GET", "user/margin")
        check(st == 400 and "expired" in r["error"]["message"] and "Current time: 19" in r["error"]["message"],
              f"api-expires from the wall clock is in the past for engine time: {st} {r}")
        s.client_class = EngineTimeClient
        bot = s.account()
        st, _, r = bot.req("GET", "user/margin")
        check(st == 200, f"signed with the exchange's time: {st} {r}")
        o = bot.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 100, "price": 50000})
        check(o["timestamp"].startswith("2031-01-01"), f"rows show engine time: {o['timestamp']}")
    finally:
        s.stop()


def main():
    s = Server("--clock", "stepped", "--start-time", START, "--seed", "9")
    try:
        s.client_class = EngineTimeClient
        stepped_market(s)
    finally:
        s.stop()
    determinism()
    modes()
    expires_on_engine_time()
    print(f"clock: {httpkit.checks} checks passed")


if __name__ == "__main__":
    main()
