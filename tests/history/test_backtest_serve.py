#!/usr/bin/env python3
"""A served backtest driven by a bot over HTTP: `perpsim backtest --serve`.

The bot signs its requests as BitMEX documents, places a limit order behind
1,000 contracts of historical size, steps the clock with
POST /admin/v1/clock/advance and reads its fills with GET /execution: it is
filled exactly when the tape has traded the size ahead of it (at 4 s, not at
2 s or 3 s), at its price; the order book is the history's; the report at
GET /admin/v1/report and the one written at the stop show its trade and
position; the money audit is exact; `perpsim replay` of the run's journal
gives its state hash.

Then paced: --speed 2 with --from/--to, the bot's order resting from the
start fills with the third print, the tape is the rows between --from and
--to, and --plot writes the SVG at the stop.
"""
import calendar
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "http"))
import httpkit  # noqa: E402
from httpkit import check  # noqa: E402

PERPSIM = sys.argv[1]
DAY = "2024-01-15D"
T0 = 1705276800000  # 2024-01-15T00:00:00Z


def advance_to(s, ms):
    st, _, c = s.admin("POST", "clock/advance", {"to": iso(T0 + ms)})
    check(st == 200 and c["mode"] == "stepped", f"advance to +{ms} ms: {st} {c}")


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def fills(bot):
    rows = bot.ok("GET", "execution/tradeHistory", params={"symbol": "XBTUSD", "count": 100})
    return [r for r in rows if r["execType"] == "Trade"]


tmp = tempfile.mkdtemp(prefix="perpsim-bt-serve-")
trade = os.path.join(tmp, "trade.csv")
quote = os.path.join(tmp, "quote.csv")
report = os.path.join(tmp, "report.json")
with open(trade, "w") as f:
    f.write("timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
            "foreignNotional,trdType\n")
    for sec, size in ((2, 600), (3, 400), (4, 300)):
        f.write(f"{DAY}00:00:0{sec}.000000000,XBTUSD,Sell,{size},42000,ZeroMinusTick,"
                f"00000000-0000-0000-0000-00000000000{sec},0,0,0,Regular\n")
with open(quote, "w") as f:
    f.write("timestamp,symbol,bidSize,bidPrice,askPrice,askSize\n")
    f.write(f"{DAY}00:00:00.000000000,XBTUSD,1000,42000,42000.5,1000\n")
    f.write(f"{DAY}00:00:02.000000000,XBTUSD,400,42000,42000.5,1000\n")
    f.write(f"{DAY}00:00:03.000000000,XBTUSD,300,42000,42000.5,1000\n")
    f.write(f"{DAY}00:00:04.000000000,XBTUSD,,,42000.5,1000\n")

s = httpkit.Server(PERPSIM, "--rate-limit", "off",
                   command=[PERPSIM, "backtest", "--serve", "--data", trade, quote, "--report", report,
                            "--data-dir", os.path.join(tmp, "journal")])
try:
    check("history" in s.banner, f"the banner says the history replays: {s.banner}")
    st, _, c = s.admin("GET", "clock")
    check(st == 200 and c["mode"] == "stepped" and c["time"] == iso(T0), f"stepped from the first row: {c}")
    bot = s.account({"XBt": 1_000_000_000})
    advance_to(s, 1000)
    book = s.get("/api/v1/orderBook/L2?symbol=XBTUSD&depth=5")
    bids = [(r["price"], r["size"]) for r in book if r["side"] == "Buy"]
    check(bids == [(42000, 1000)], f"the historical bid: {book}")
    o = bot.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 200, "price": 42000,
                                 "ordType": "Limit"})
    check(o["ordStatus"] == "New", f"resting behind history: {o}")
    advance_to(s, 2500)
    check(fills(bot) == [], "600 of the 1,000 ahead traded: no fill")
    advance_to(s, 3500)
    check(fills(bot) == [], "the whole 1,000 ahead traded: still no fill")
    advance_to(s, 5000)
    f = fills(bot)
    check(len(f) == 1 and f[0]["lastQty"] == 200 and f[0]["lastPx"] == 42000,
          f"the third sell takes the bot's 200 at 42000: {f}")
    check(f and f[0]["timestamp"] == iso(T0 + 4000), f"at the trade's time: {f}")
    pos = bot.ok("GET", "position", params={"filter": json.dumps({"symbol": "XBTUSD"})})
    check(pos and pos[0]["currentQty"] == 200, f"long 200: {pos}")
    st, _, rep = s.admin("GET", "report")
    check(st == 200, f"GET /admin/v1/report: {st} {rep}")
    mine = [a for a in rep["accounts"] if a["account"] == bot.account]
    check(len(mine) == 1 and mine[0]["trades"] == 1 and mine[0]["positions"] == {"XBTUSD": 200},
          f"the bot in the report: {rep}")
    check(any(a["name"] == "history" for a in rep["accounts"]), f"history in the report: {rep}")
    s.audit()
    st, _, state = s.admin("GET", "state")
finally:
    s.stop()
# The served run was journaled: `perpsim replay` of it gives its state.
r = subprocess.run([PERPSIM, "replay", "--data-dir", os.path.join(tmp, "journal")], capture_output=True, text=True,
                   timeout=120)
m = re.search(r"sequence\s+(\d+) at .*\n\s+state hash\s+([0-9a-f]{16})", r.stdout)
check(r.returncode == 0 and m and int(m.group(1)) == state["seq"] and m.group(2) == state["hash"],
      f"replay of the served backtest's journal: {r.stdout} vs {state}")
with open(report) as f:
    final = json.load(f)
check(any(a["account"] == bot.account and a["volume"] == 200 for a in final["accounts"]),
      f"the report written at the stop: {final}")

# Paced: --speed 2 runs the clock at 2x from the first row at or after
# --from; --from and --to keep the rows in between. The bot's order rests
# from the start (5 s of wall time before the first trade); each row is
# applied when the clock reaches it, stamped with the clock's time then.
trade2 = os.path.join(tmp, "trade2.csv")
quote2 = os.path.join(tmp, "quote2.csv")
with open(trade2, "w") as f:
    f.write("timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
            "foreignNotional,trdType\n")
    rows = (("2024-01-14D23:59:00", 5, 41000), (DAY + "00:00:10", 600, 42000), (DAY + "00:00:15", 400, 42000),
            (DAY + "00:00:20", 300, 42000), (DAY + "00:02:00", 7, 43000))
    for k, (ts, size, px) in enumerate(rows):
        f.write(f"{ts}.000000000,XBTUSD,Sell,{size},{px},ZeroMinusTick,"
                f"00000000-0000-0000-0000-00000000001{k},0,0,0,Regular\n")
with open(quote2, "w") as f:
    f.write("timestamp,symbol,bidSize,bidPrice,askPrice,askSize\n")
    f.write(f"{DAY}00:00:00.000000000,XBTUSD,1000,42000,42000.5,1000\n")
plot = os.path.join(tmp, "plot.svg")
s = httpkit.Server(PERPSIM, "--rate-limit", "off",
                   command=[PERPSIM, "backtest", "--serve", "--data", trade2, quote2, "--speed", "2",
                            "--from", iso(T0), "--to", iso(T0 + 100000), "--plot", plot])
try:
    bot = s.account({"XBt": 1_000_000_000})
    o = bot.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 200, "price": 42000,
                                 "ordType": "Limit"})
    check(o["ordStatus"] == "New" and o["transactTime"] < iso(T0 + 10000),
          f"resting behind history before the first trade: {o}")
    st, _, c = s.admin("GET", "clock")
    check(c["mode"] == "accelerated" and c["speed"] == 2, f"the clock runs at 2x: {c}")
    deadline = time.time() + 60
    while time.time() < deadline and s.admin("GET", "clock")[2]["time"] < iso(T0 + 30000):  # 5 s of wall time past
        time.sleep(0.2)
    tape = s.get("/api/v1/trade?symbol=XBTUSD&count=100&reverse=false")
    rows = {}  # a row's prints (one per resting order it took) share its time
    for t in tape:
        rows[t["timestamp"]] = rows.get(t["timestamp"], 0) + t["size"]
    check(list(rows.values()) == [600, 400, 300] and {t["price"] for t in tape} == {42000},
          f"the tape between --from and --to, applied as the clock reached each row: {tape}")
    check(all(ts >= iso(T0 + ms) for ts, ms in zip(rows, (10000, 15000, 20000))),
          f"each row printed at or after its time: {list(rows)}")
    f = fills(bot)
    check(len(f) == 1 and f[0]["lastQty"] == 200 and f[0]["timestamp"] == list(rows)[2],
          f"the third sell takes the bot's 200, with its print: {f}")
finally:
    s.stop()
with open(plot) as f:
    svg = f.read()
check(svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "XBTUSD last" in svg
      and f"account {bot.account} XBt" in svg and svg.count("<polyline") >= 3,
      f"the plot written at the stop: price, the bot's equity and position ({len(svg)} bytes)")

# Dense and paced: 60 s of data with a trade every 40 ms (1,500 rows) at
# --speed 5 need 125 rows a second of wall time. The history keeps up: each
# row is applied as the clock reaches it, so soon after the clock has passed
# the last row every trade has printed, and the last print lags its row by
# far less than the 20 s of data a timer held to one turn per poll (50 rows
# a second) would have fallen behind by then.
trade3 = os.path.join(tmp, "trade3.csv")
with open(trade3, "w") as f:
    f.write("timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
            "foreignNotional,trdType\n")
    for k in range(1500):
        ms = 40 * k
        f.write(f"{DAY}00:{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}000000,XBTUSD,"
                f"{'Buy' if k % 2 else 'Sell'},100,42000,ZeroPlusTick,00000000-0000-0000-0000-{k:012d},0,0,0,Regular\n")
s = httpkit.Server(PERPSIM, "--rate-limit", "off",
                   command=[PERPSIM, "backtest", "--serve", "--data", trade3, "--speed", "5"])
try:
    deadline = time.time() + 120
    # 10 s of data (2 s of wall time) past the last row: a row applied a
    # few ms after the clock reaches it is in time; a timer held to one
    # turn per poll would be ~35 s of data behind by then.
    while time.time() < deadline and s.admin("GET", "clock")[2]["time"] < iso(T0 + 70000):
        time.sleep(0.25)
    bins = s.get("/api/v1/trade/bucketed?binSize=1m&symbol=XBTUSD&partial=true&count=10")
    check(sum(b["volume"] for b in bins) == 1500 * 100,
          f"every row printed by the time the clock passed it: {[(b['timestamp'], b['volume']) for b in bins]}")
    last = s.get("/api/v1/trade?symbol=XBTUSD&count=1&reverse=true")[0]["timestamp"]
    lag = (calendar.timegm(time.strptime(last[:19], "%Y-%m-%dT%H:%M:%S")) + int(last[20:23]) / 1000
           - (T0 + 59960) / 1000)
    check(0 <= lag < 20, f"the last row (at +59.96 s) printed at {last}: {lag:.3f} s of data behind")
finally:
    s.stop()
print(f"served backtest: {httpkit.checks} checks passed")
