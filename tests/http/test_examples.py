#!/usr/bin/env python3
"""BitMEX's worked examples, reproduced on perpsim and explained to the
satoshi by its explain endpoints (issue 18).

1. The perpetual guide's example: a long of 15,000 XBTUSD entered at 750
   and closed at 800 makes 15,000 x (1/750 - 1/800) = 1.25 XBT; a funding of
   0.25% on the position's 20 XBT (15,000 / 750) costs it 0.05 XBT; net
   1.20 XBT. Fees are set to 0 and the funding interest to 0 (so the mark
   is the index: no fair basis) for the example's round numbers; the rate
   is announced by the instructor's API. Checked: the funding explained
   (GET /explain/v1/funding: the position's value, the rate, the payment
   of exactly 5,000,000 XBt), the wallet's Funding row, the closing
   execution and the position's realised PnL (gross 125,000,000 XBt; net
   of the funding 120,000,000), and the wallet at the end.

2. The ADL guide's example: a short of 20 contracts is liquidated with its
   bankruptcy price at 650 and nothing in the book to close it; the longs
   are ranked by score (PNL% x effective leverage), account 2 (10
   contracts) above account 5 (20 contracts): account 2 is closed in
   full, account 5 for 10 of its 20, both at 650. Here the accounts are
   numbered as in the example: 1 the short (13x isolated from 600, which
   puts its bankruptcy price at exactly 600 x 13 / 12 = 650), 2 a long of
   10 at 10x, 3 the other short, 4 a long of 5 at cross margin on a large
   wallet (the lowest score), 5 a long of 20 at 5x. Checked: the
   positions' ADL lights (deleveragePercentile) in the queue's order
   before the shock; GET /explain/v1/liquidation's deleverage steps (rank,
   account, qty, the price 650, the score and the wallet change, each as
   the counterparty's own execution (execType Bankruptcy) and wallet say); account
   4 untouched; the audit exact. And a cross liquidation over two
   instruments: each instrument's queue is ranked on its own.
"""
import json
import sys

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import os
import tempfile

import httpkit
import test_clock
from httpkit import Server, check

XBT = 100_000_000


def config(price):
    d = tempfile.mkdtemp(prefix="perpsim-examples-")
    path = os.path.join(d, "config.json")
    with open(path, "w") as f:
        json.dump({"indices": {".BXBT": price},
                   "instruments": [{"symbol": "XBTUSD", "makerFee": 0, "takerFee": 0, "fundingInterest": 0}]}, f)
    return path


def server(price):
    s = Server(BIN, "--config", config(price), "--clock", "stepped", "--start-time", "2026-01-05T03:00:00Z",
               "--rate-limit", "off")
    s.client_class = test_clock.EngineTimeClient
    return s


def position(c):
    rows = c.ok("GET", "position", params={"filter": json.dumps({"symbol": "XBTUSD"})})
    return rows[0] if rows else None


def wallet(c):
    return c.ok("GET", "user/margin", params={"currency": "XBt"})["walletBalance"]


def guide_example():
    s = server(750)
    inst = s.get("/api/v1/instrument?symbol=XBTUSD")[0]
    check(inst["markPrice"] == 750 and inst["fairBasis"] == 0 and inst["takerFee"] == 0,
          f"the example's market: mark 750, no basis, no fees: {inst}")
    maker = s.account({"XBt": 1000 * XBT})
    trader = s.account({"XBt": 10 * XBT})
    w0 = wallet(trader)
    maker.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 15000, "price": 750})
    trader.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 15000, "ordType": "Market"})
    pos = position(trader)
    check(pos["currentQty"] == 15000 and pos["avgEntryPrice"] == 750, f"long 15,000 at 750: {pos}")
    check(pos["markValue"] == -20 * XBT or abs(pos["markValue"]) == 20 * XBT, f"worth 20 XBT: {pos['markValue']}")

    st, _, r = s.admin("POST", "funding", {"symbol": "XBTUSD", "fundingRate": 0.0025})
    check(st == 200, f"the instructor announces 0.25%: {st} {r}")
    due = s.get("/explain/v1/funding?symbol=XBTUSD")["next"]["fundingTimestamp"]
    feed = httpkit.RawWebSocket(s.port)
    feed.send_text(json.dumps({"op": "subscribe", "args": ["instrument:XBTUSD"]}))
    test_clock.advance(s, to=due)
    # The feed's instrument row moves on to the next funding too, though the
    # mark does not move (the next rate is 0: no basis before or after).
    inst = s.get("/api/v1/instrument?symbol=XBTUSD")[0]
    check(inst["fundingTimestamp"] > due and inst["fundingRate"] == 0, f"the next funding: {inst}")
    seen = {}
    feed.sock.settimeout(5)
    while seen.get("fundingTimestamp") != inst["fundingTimestamp"]:
        try:
            _, payload = feed.recv_frame()
        except OSError:
            break
        m = json.loads(payload) if payload[:1] == b"{" else {}
        for row in m.get("data", []) if m.get("table") == "instrument" else []:
            seen.update(row)
    feed.close()
    check(seen.get("fundingTimestamp") == inst["fundingTimestamp"] and seen.get("fundingRate") == 0,
          f"the feed's instrument row after the funding: {seen.get('fundingTimestamp')} {seen.get('fundingRate')}")
    f = s.get("/explain/v1/funding?symbol=XBTUSD")["fundings"][0]
    check(f["timestamp"] == due and f["fundingRate"] == 0.0025 and f["rateFrom"] == "announced",
          f"the funding at 0.25%: {f['timestamp']} {f['fundingRate']} {f['rateFrom']}")
    pays = {p["account"]: p for p in f["payments"]}
    p = pays.get(trader.account)
    check(p and p["currentQty"] == 15000 and abs(p["markValue"]) == 20 * XBT and p["walletChange"] == -5_000_000,
          f"the long pays 20 XBT x 0.25% = 0.05 XBT (5,000,000 XBt): {p}")
    q = pays.get(maker.account)
    check(q and q["walletChange"] == 5_000_000, f"the short receives it: {q}")
    rows = [h for h in trader.ok("GET", "user/walletHistory", params={"currency": "XBt", "count": 100})
            if h["text"] == "Funding" and h["transactTime"] == due]
    check(len(rows) == 1 and rows[0]["amount"] == -5_000_000, f"the wallet's Funding row: {rows}")

    st, _, _ = s.admin("POST", "index", {"symbol": ".BXBT", "price": 800})
    check(st == 200 and s.get("/api/v1/instrument?symbol=XBTUSD")[0]["markPrice"] == 800, "the index at 800")
    maker.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 15000, "price": 800})
    trader.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 15000, "ordType": "Market"})
    ex = trader.ok("GET", "execution", params={"filter": json.dumps({"execType": "Trade", "side": "Sell"})})
    check(len(ex) == 1 and ex[0]["lastPx"] == 800 and ex[0]["lastQty"] == 15000 and ex[0]["execComm"] == 0,
          f"closed at 800: {ex}")
    pos = position(trader)
    gross = 15000 * XBT // 750 - 15000 * XBT // 800  # 2,000,000,000 - 1,875,000,000
    check(gross == 125_000_000, "1.25 XBT")
    check(pos["currentQty"] == 0 and pos["realisedGrossPnl"] == gross and pos["realisedPnl"] == gross - 5_000_000,
          f"realised 1.25 XBT gross, 1.20 net of the funding: {pos}")
    check(wallet(trader) - w0 == 120_000_000, f"the wallet: {wallet(trader) - w0} XBt, want 1.20 XBT")
    s.audit()
    s.stop()
    return gross


def adl_example():
    s = server(600)
    short = s.account({"XBt": XBT})              # 1
    long2 = s.account({"XBt": XBT})              # 2
    other = s.account({"XBt": 100 * XBT})        # 3
    long4 = s.account({"XBt": 1000 * XBT})       # 4
    long5 = s.account({"XBt": XBT})              # 5
    check([c.account for c in (short, long2, other, long4, long5)] == [1, 2, 3, 4, 5], "the example's numbering")
    short.ok("POST", "position/leverage", {"symbol": "XBTUSD", "leverage": 13})
    long2.ok("POST", "position/leverage", {"symbol": "XBTUSD", "leverage": 10})
    long5.ok("POST", "position/leverage", {"symbol": "XBTUSD", "leverage": 5})
    # XBTUSD's lot is 100 contracts: the example's 10 and 20 are 1,000 and 2,000 here.
    long2.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 1000, "price": 600})
    long5.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 2000, "price": 600})
    long4.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 500, "price": 600})
    short.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 2000, "ordType": "Market"})
    other.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 1500, "ordType": "Market"})
    book = s.get("/api/v1/orderBook/L2?symbol=XBTUSD&depth=0")
    check(book == [], f"nothing left in the book: {book}")
    ps = {c.account: position(c) for c in (short, long2, other, long4, long5)}
    check([ps[a]["currentQty"] for a in (1, 2, 3, 4, 5)] == [-2000, 1000, -1500, 500, 2000],
          f"the positions: {[ps[a]['currentQty'] for a in ps]}")
    check(ps[1]["bankruptPrice"] == 650, f"the short's bankruptcy price: {ps[1]['bankruptPrice']}")

    # Move the index just past the short's liquidation price, in two steps so
    # that the longs' lights are read where the liquidation will happen.
    liq = ps[1]["liquidationPrice"]
    check(600 < liq < 650, f"the short's liquidation price: {liq}")
    s.admin("POST", "index", {"symbol": ".BXBT", "price": liq - 0.5})
    lights = {a: position(c)["deleveragePercentile"] for a, c in ((2, long2), (4, long4), (5, long5))}
    check(lights[2] > lights[5] > lights[4], f"the ADL lights, the queue's order: {lights}")
    fund0 = [r for r in s.get("/api/v1/insurance?reverse=true") if r["currency"] == "XBt"][0]["walletBalance"]
    w = {a: wallet(c) for a, c in ((2, long2), (4, long4), (5, long5))}
    s.admin("POST", "index", {"symbol": ".BXBT", "price": liq + 0.5})
    check(position(short)["currentQty"] == 0, "the short is liquidated")
    ex = short.ok("GET", "execution", params={"filter": json.dumps({"execType": "Liquidation"})})
    check(len(ex) == 1 and ex[0]["lastPx"] == 650 and ex[0]["lastQty"] == 2000, f"taken over at 650: {ex}")
    x = s.get("/explain/v1/liquidation?execID=" + ex[0]["execID"])
    adl = [t for t in x["steps"] if t["step"] == "deleverage"]
    check([(t["rank"], t["account"], t["qty"], t["price"]) for t in adl] == [(1, 2, 1000, 650), (2, 5, 1000, 650)],
          f"account 2 closed in full, account 5 for half, both at 650: {adl}")
    check(adl[0]["score"] > adl[1]["score"] > 0, f"ranked by score: {[t['score'] for t in adl]}")
    check(not [t for t in x["steps"] if t["step"] == "liquidatorFill"], "nothing filled in the book")
    for t, c, qty in ((adl[0], long2, 0), (adl[1], long5, 1000)):
        d = c.ok("GET", "execution", params={"filter": json.dumps({"execType": "Bankruptcy"})})
        check(len(d) == 1 and d[0]["execID"] == t["execID"] and d[0]["lastPx"] == 650 and d[0]["lastQty"] == 1000
              and d[0]["side"] == "Sell" and d[0]["commission"] == 0, f"account {c.account}'s Deleverage: {d} {t}")
        check(position(c)["currentQty"] == qty, f"account {c.account} left with {qty}")
        # The closed 1,000 made 1,000 x (1/600 - 1/650) XBT: the cost of the
        # part closed (the buy at 600, rounded against the trader) less
        # the value at 650.
        buy = c.ok("GET", "execution", params={"filter": json.dumps({"execType": "Trade"})})[0]
        part = buy["execCost"] * 1000 // buy["lastQty"]
        check(t["walletChange"] == wallet(c) - w[c.account] == -(part + d[0]["execCost"]),
              f"account {c.account}'s wallet: {t['walletChange']} vs {wallet(c) - w[c.account]}")
    check(position(long4)["currentQty"] == 500 and wallet(long4) == w[4], "account 4, last in the queue, untouched")
    check(x["insuranceFund"]["before"] == fund0, f"the fund: {x['insuranceFund']} vs {fund0}")
    s.audit()
    s.stop()
    return [t["score"] for t in adl]


def adl_two_queues():
    """A cross liquidation over two instruments with nothing in either book:
    each instrument's ADL queue is its own, ranked from 1."""
    s = server(600)
    fut = [i["symbol"] for i in s.get("/api/v1/instrument/active") if i["typ"] == "FFCCSX"][0]
    owner = s.account({"XBt": XBT // 2})
    b, c = s.account({"XBt": 100 * XBT}), s.account({"XBt": 100 * XBT})
    for sym, other in (("XBTUSD", b), (fut, c)):
        owner.ok("POST", "order", {"symbol": sym, "side": "Buy", "orderQty": 1000, "price": 600})
        other.ok("POST", "order", {"symbol": sym, "side": "Sell", "orderQty": 1000, "ordType": "Market"})
    check(position(owner)["currentQty"] == 1000, "the owner's cross longs")
    s.admin("POST", "index", {"symbol": ".BXBT", "price": 450})
    ex = owner.ok("GET", "execution", params={"filter": json.dumps({"execType": "Liquidation"})})
    check(len(ex) == 2, f"both taken over: {ex}")
    x = s.get("/explain/v1/liquidation?execID=" + ex[0]["execID"])
    adl = [(t["symbol"], t["rank"], t["account"]) for t in x["steps"] if t["step"] == "deleverage"]
    check(sorted(adl) == sorted([("XBTUSD", 1, b.account), (fut, 1, c.account)]),
          f"each instrument's queue from rank 1: {adl}")
    s.audit()
    s.stop()


def main():
    gross = guide_example()
    scores = adl_example()
    adl_two_queues()
    print(f"examples: {httpkit.checks} checks passed (the guide's {gross} XBt; ADL scores {scores})")


if __name__ == "__main__":
    main()
