#!/usr/bin/env python3
"""The living market over real HTTP (issue 15): perpsim started as the
README's run command starts it (the market on, real time).

- Within 5 s: XBTUSD has >= 10 levels a side in GET /orderBook/L2, trades
  print, the ticker has lastPrice, bidPrice and askPrice; the money audit is
  exact with the agents' money in it.
- GET /admin/v1/market shows the parameters and counts; POST changes them
  at run time (bad values refused, nothing changed), pauses and resumes the
  agents.
- The instructor's shock: POST /admin/v1/index {"symbol":".BXBT","move":-0.08}
  moves the index 8% down from where it is, and the walk goes on from there.
- The instructor's funding rate: POST /admin/v1/funding announces the rate the
  next funding pays (bad ones refused, nothing changed).
- --no-market gives an empty exchange on a frozen index.
"""
import sys
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import httpkit
from httpkit import check


def MarketServer(*args):
    """As the run command: the market on."""
    return httpkit.Server(BIN, *args, market=True)


def book(s, symbol="XBTUSD"):
    rows = s.get(f"/api/v1/orderBook/L2?symbol={symbol}&depth=0")
    return [r for r in rows if r["side"] == "Buy"], [r for r in rows if r["side"] == "Sell"]


def index_px(s, name=".BXBT"):
    return [i for i in s.get("/api/v1/instrument/indices") if i["symbol"] == name][0]["lastPrice"]


def market(s):
    st, _, m = s.admin("GET", "market")
    check(st == 200, f"GET market: {st} {m}")
    return m


def alive(s):
    t0 = time.time()
    bids = asks = trades = []
    inst = {}
    while time.time() - t0 < 5:
        bids, asks = book(s)
        trades = s.get("/api/v1/trade?symbol=XBTUSD&count=10&reverse=true")
        inst = s.get("/api/v1/instrument?symbol=XBTUSD")[0]
        if len(bids) >= 10 and len(asks) >= 10 and trades and inst["lastPrice"] and inst["bidPrice"] and \
                inst["askPrice"]:
            break
        time.sleep(0.2)
    took = time.time() - t0
    check(len(bids) >= 10 and len(asks) >= 10, f"10 levels a side within 5 s: {len(bids)} bids, {len(asks)} asks")
    check(trades and trades[0]["price"] > 0, f"trades print within 5 s: {trades[:1]}")
    check(inst["lastPrice"] and inst["bidPrice"] and inst["askPrice"] and inst["bidPrice"] < inst["askPrice"],
          f"the ticker: last {inst['lastPrice']} bid {inst['bidPrice']} ask {inst['askPrice']}")
    print(f"market: alive in {took:.1f} s: {len(bids)} bids, {len(asks)} asks, last {inst['lastPrice']}")
    a = s.audit()
    xbt = [c for c in a["currencies"] if c["currency"] == "XBt"][0]
    check(xbt["expected"] > 1000 * 10**8, f"the agents' money is in the audit: {xbt}")


def accepted(s):
    """Writes the queue accepted, by kind, from /metrics."""
    st, _, text = s.raw("GET", "/metrics")
    out = {}
    for line in text.splitlines():
        if line.startswith("perpsim_loadshed_accepted_total{kind="):
            out[line.split('"')[1]] = int(line.split()[-1])
    return out


def through_the_queue(s):
    """The agents' orders are writes through the bounded queue, as a user's:
    its counters grow with no user, and a queue shedding everything (depth
    0) sheds them too while the index, exempt, goes on."""
    a0 = accepted(s)
    time.sleep(1.5)
    a1 = accepted(s)
    check(a1["new_order"] + a1["amend"] > a0["new_order"] + a0["amend"] and a1["other"] > a0["other"],
          f"with no user, the queue accepts the agents' orders and index moves: {a0} -> {a1}")
    st, _, _ = s.admin("POST", "loadshed", {"fixedDepth": 0})
    check(st == 200, "the queue sheds every ordinary write")
    time.sleep(0.5)
    a2, px2 = accepted(s), index_px(s)
    time.sleep(2)
    a3, px3 = accepted(s), index_px(s)
    st, _, _ = s.admin("POST", "loadshed", {"latencyCapMs": 3000})
    check(a3["new_order"] == a2["new_order"] and a3["other"] > a2["other"] and px3 != px2,
          f"depth 0: the agents' orders are shed, the index moves on: {a2} -> {a3}, {px2} -> {px3}")


def params(s):
    m = market(s)
    check(m["enabled"] and m["levels"] == 12 and m["volatility"] == 0.6 and m["counts"]["indexSteps"] > 0,
          f"GET market: {m}")
    st, _, r = s.admin("POST", "market", {"volatility": 1.2, "jumpsPerDay": 5, "jumpSize": 0.06})
    check(st == 200 and r["volatility"] == 1.2 and r["jumpsPerDay"] == 5 and r["jumpSize"] == 0.06,
          f"volatility and jumps set at run time: {st} {r}")
    before = market(s)
    for body in ({"volatility": -1}, {"levels": 0}, {"levels": 51}, {"bogus": 1}, {"volatility": "high"},
                 {"noiseTraders": 3}, {"seed": 9}, {"enabled": "no"}, {"indexStepMs": 10}):
        st, _, r = s.admin("POST", "market", body)
        check(st == 400 and "error" in r, f"bad market parameters {body}: {st} {r}")
    after = market(s)
    check({k: v for k, v in after.items() if k != "counts"} == {k: v for k, v in before.items() if k != "counts"},
          "refused requests changed nothing")
    # Paused: the index and the agents stop; resumed: they go on.
    st, _, r = s.admin("POST", "market", {"enabled": False})
    check(st == 200 and r["enabled"] is False, f"paused: {r}")
    time.sleep(0.3)
    c0, px0 = market(s)["counts"], index_px(s)
    time.sleep(1.5)
    c1, px1 = market(s)["counts"], index_px(s)
    check(c0 == c1 and px0 == px1, f"paused: nothing acts ({c0} -> {c1}, {px0} -> {px1})")
    st, _, r = s.admin("POST", "market", {"enabled": True})
    check(st == 200 and r["enabled"] is True, f"resumed: {r}")
    time.sleep(1.5)
    check(market(s)["counts"]["indexSteps"] > c1["indexSteps"], "resumed: the index walks again")


def shock(s):
    px0 = index_px(s)
    st, _, r = s.admin("POST", "index", {"symbol": ".BXBT", "move": -0.08})
    check(st == 200 and abs(r["price"] / px0 - 0.92) < 0.01, f"a shock of -8% from {px0}: {st} {r}")
    time.sleep(1.5)
    px1 = index_px(s)
    check(abs(px1 / px0 - 0.92) < 0.02, f"the walk goes on from the shocked price: {px0} -> {px1}")
    for body in ({"symbol": ".BXBT"}, {"symbol": ".BXBT", "move": -1}, {"symbol": ".BXBT", "move": 0.1, "price": 5},
                 {"symbol": "XBTUSD", "move": 0.1}, {"symbol": ".BXBT", "move": "lots"}):
        st, _, r = s.admin("POST", "index", body)
        check(st == 400, f"a bad shock {body}: {st} {r}")
    s.audit()


def funding(s):
    """The instructor's funding rate: POST /admin/v1/funding announces the
    rate the next funding pays; the instrument shows it (and the mark moves
    with it); a future, a rate beyond 10%, an unknown symbol, a missing or
    unknown field are refused and change nothing."""
    inst0 = s.get("/api/v1/instrument?symbol=XBTUSD")[0]
    st, _, r = s.admin("POST", "funding", {"symbol": "XBTUSD", "fundingRate": 0.003, "indicativeFundingRate": -0.0005})
    check(st == 200 and r["symbol"] == "XBTUSD" and r["fundingRate"] == 0.003 and r["indicativeFundingRate"] == -0.0005,
          f"a funding rate announced: {st} {r}")
    inst1 = s.get("/api/v1/instrument?symbol=XBTUSD")[0]
    check(inst1["fundingRate"] == 0.003 and inst1["fundingTimestamp"] == inst0["fundingTimestamp"],
          f"GET /instrument shows it for the same funding: {inst1['fundingRate']} {inst1['fundingTimestamp']}")
    fut = [i["symbol"] for i in s.get("/api/v1/instrument/active") if i.get("typ") == "FFCCSX"]
    for body, why in (({"symbol": fut[0] if fut else "XBTZ26", "fundingRate": 0.001}, "Invalid"),
                      ({"symbol": "XBTUSD", "fundingRate": 0.2}, "Invalid funding rate"),
                      ({"symbol": "NOPE", "fundingRate": 0.001}, "Invalid symbol"),
                      ({"symbol": "XBTUSD"}, "'fundingRate' is a required arg."),
                      ({"symbol": "XBTUSD", "fundingRate": "x"}, "Invalid fundingRate"),
                      ({"symbol": "XBTUSD", "fundingRate": 0.001, "when": 1}, ""),
                      ({"symbol": "XBTUSD", "fundingRate": 0.001, "fundingTimestamp": "soon"},
                       "Invalid fundingTimestamp"),
                      ({"symbol": "XBTUSD", "fundingRate": 0.001, "fundingTimestamp": "2020-01-01T04:00:00.000Z"},
                       "Invalid funding rate")):
        st, _, r = s.admin("POST", "funding", body)
        check(st == 400 and why in r["error"]["message"], f"a bad funding {body}: {st} {r}")
    check(s.get("/api/v1/instrument?symbol=XBTUSD")[0]["fundingRate"] == 0.003, "the refused ones changed nothing")


def deterministic():
    """Two servers, the market on, the same seed and stepped clock, the same
    user commands: the same state hash at every step."""
    import test_clock
    args = ("--clock", "stepped", "--start-time", test_clock.START, "--seed", "17")
    a, b = MarketServer(*args), MarketServer(*args)
    try:
        runs = []
        for s in (a, b):
            s.client_class = test_clock.EngineTimeClient
            steps = [test_clock.state(s)]
            test_clock.advance(s, ms=10 * 1000)
            steps.append(test_clock.state(s))
            u = s.account()
            bids, _ = book(s)
            u.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 200, "price": bids[0]["price"]})
            steps.append(test_clock.state(s))
            test_clock.advance(s, ms=5 * 60 * 1000)
            steps.append(test_clock.state(s))
            runs.append(steps)
        check(runs[0] == runs[1], f"market on, same seed and steps: same state at every step: {runs}")
        check(len({x["hash"] for x in runs[0]}) == 4 and runs[0][3]["seq"] > runs[0][1]["seq"] + 300,
              f"each step moved the state, the market acting in the advances: {runs[0]}")
    finally:
        a.stop()
        b.stop()


def replay_csv():
    """--index-csv: the index takes each row's price at its time (stepped
    clock), then stays; a bad line stops the start with file and line."""
    import os
    import subprocess
    import tempfile
    import test_clock
    d = tempfile.mkdtemp()
    good = os.path.join(d, "path.csv")
    start = test_clock.START_MS
    with open(good, "w") as f:
        f.write("timestamp,symbol,price\n")
        f.write("2026-12-23T00:30:01.000Z,.BXBT,61000\n")
        f.write(f"{start + 10000},.BXBT,59000.5\n")
        f.write(f"{start + 2000},.BETH,3100\n")
        f.write(f"{start + 60000},.bxbt,62000\n")
    s = MarketServer("--clock", "stepped", "--start-time", test_clock.START, "--index-csv", good)
    try:
        check(index_px(s) == 60000, "before the first row: the start price")
        test_clock.advance(s, ms=5000)
        check(index_px(s) == 61000 and index_px(s, ".BETH") == 3100, f"at +5 s: {index_px(s)} {index_px(s, '.BETH')}")
        test_clock.advance(s, ms=10000)
        check(index_px(s) == 59000.5, f"at +15 s: {index_px(s)}")
        test_clock.advance(s, ms=60000)
        check(index_px(s) == 62000, f"at +75 s: {index_px(s)}")
        test_clock.advance(s, ms=120000)
        check(index_px(s) == 62000, "after the last row the index stays")
        bids, asks = book(s)
        mid = (bids[0]["price"] + asks[0]["price"]) / 2 if bids and asks else 0
        check(abs(mid / 62000 - 1) < 0.003, f"the makers quote around the path: mid {mid}")
        s.audit()
    finally:
        s.stop()
    for rows, want in ((["2026-12-23T00:30:01Z,.BXBT,61000", "soon,.BXBT,1"], "line 2: a bad timestamp"),
                       (["1797985801000,.BXBT,61000", "1797985802000,XBTUSD,1"], "line 2: not an index"),
                       (["1797985801000,.BXBT,-5"], "line 1: a bad price"),
                       (["1797985809000,.BXBT,5", "1797985801000,.BXBT,6"], "line 2: before the index's previous"),
                       (["1797985801000,.BXBT"], "line 1: want timestamp,symbol,price")):
        bad = os.path.join(d, "bad.csv")
        with open(bad, "w") as f:
            f.write("\n".join(rows) + "\n")
        p = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--admin-token", "t", "--no-demo", "--index-csv", bad],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 2 and want in p.stderr and bad in p.stderr,
              f"a bad csv is refused with its file and line ({want}): {p.returncode} {p.stderr}")
    p = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--admin-token", "t", "--no-market", "--index-csv", good],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 2 and "needs the market" in p.stderr, f"--index-csv without the market: {p.stderr}")


def main():
    replay_csv()
    deterministic()
    s = MarketServer()
    try:
        alive(s)
        through_the_queue(s)
        params(s)
        shock(s)
        funding(s)
    finally:
        s.stop()
    e = httpkit.Server(BIN)  # the kit's server: --no-market
    try:
        time.sleep(1.2)
        bids, asks = book(e)
        check(not bids and not asks and not e.get("/api/v1/trade?symbol=XBTUSD"), "--no-market: an empty exchange")
        check(index_px(e) == 60000, "--no-market: the index stays where it starts")
        st, _, r = e.admin("POST", "market", {"volatility": 1})
        check(st == 400, f"--no-market: no market to set: {st} {r}")
        check(market(e)["enabled"] is False, "--no-market: GET market says it is off")
    finally:
        e.stop()
    print(f"market: {httpkit.checks} checks passed")


if __name__ == "__main__":
    main()
