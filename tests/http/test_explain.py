#!/usr/bin/env python3
"""A liquidation explained (GET /explain/v1/liquidation), checked against
what the exchange said at the time through its ordinary API.

An isolated long at 50x is opened against a maker; an instructor's shock
moves the index below its liquidation price. The explanation, found by the
owner's Liquidation execution, must say: the owner, isolated, the shock as
the trigger with the marks before and after (GET /instrument's), equity
below maintenance, the position as GET /position showed it (entry,
liquidation and bankruptcy prices), the owner's open order canceled, the
takeover of the whole position at the bankruptcy price (the execution's own
lastPx and qty), the liquidator's fills and ADL closes adding up to it, and
the insurance fund's move equal to GET /insurance's. A cross liquidation
(the same at cross margin, with ADL) is explained too; the list is newest
first, filters by symbol, and bad parameters are refused.

Each funding explained (GET /explain/v1/funding): before it, the countdown
and the indicative rate; after it, the rate paid (the opening rate, then
the one the previous funding formed from its premium mean, then an
instructor's announced rate), the formula's numbers giving the rate, and
each position's payment equal to its wallet's Funding row, the payer's
value x rate rounded up and the receiver's down.
"""
import json
import sys

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import httpkit
import test_clock
from httpkit import Server, check


def explain(s, **params):
    return s.get("/explain/v1/liquidation" +
                 ("?" + httpkit.qs(params) if params else ""))


def liquidation_exec(c):
    rows = c.ok("GET", "execution", params={"filter": json.dumps({"execType": "Liquidation"}), "reverse": "true"})
    check(len(rows) >= 1, f"a Liquidation execution: {rows}")
    return rows[0]


def fund(s):
    rows = [r for r in s.get("/api/v1/insurance?reverse=true&count=500") if r["currency"] == "XBt"]
    return rows[0]["walletBalance"]


def scenario(s, leverage, adl):
    maker = s.account({"XBt": 100_000_000_000})
    owner = s.account({"XBt": 3_000_000})
    # The maker's ladder: asks to buy from, bids the liquidator sells into
    # (none when ADL must take it all).
    for k in range(5):
        maker.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 1000, "price": 60000 + k * 10})
        if not adl:
            maker.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 1000, "price": 58000 - k * 500})
    owner.ok("POST", "position/leverage", {"symbol": "XBTUSD", "leverage": leverage})
    owner.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 1000, "ordType": "Market"})
    resting = owner.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 100, "price": 50000})
    pos = owner.ok("GET", "position", params={"filter": json.dumps({"symbol": "XBTUSD"})})[0]
    check(pos["currentQty"] == 1000 and pos["liquidationPrice"] > 0, f"the position: {pos}")
    mark0 = s.get("/api/v1/instrument?symbol=XBTUSD")[0]["markPrice"]
    fund0 = fund(s)
    st, _, _ = s.admin("POST", "index", {"symbol": ".BXBT", "price": pos["liquidationPrice"] * 0.97})
    check(st == 200, "the shock")
    mark1 = s.get("/api/v1/instrument?symbol=XBTUSD")[0]["markPrice"]
    after = owner.ok("GET", "position", params={"filter": json.dumps({"symbol": "XBTUSD"})})[0]
    check(after["currentQty"] == 0, f"liquidated: {after}")
    ex = liquidation_exec(owner)
    x = explain(s, execID=ex["execID"])
    check(x["account"] == owner.account and x["symbol"] == "XBTUSD", f"whose: {x}")
    check(x["marginMode"] == ("cross" if leverage == 0 else "isolated"), f"mode: {x['marginMode']}")
    check(x["trigger"]["command"] == "index" and x["trigger"]["markPriceBefore"] == mark0
          and x["trigger"]["markPrice"] == mark1, f"trigger {x['trigger']} (marks {mark0} -> {mark1})")
    check(x["check"]["equity"] < x["check"]["maintMargin"] and
          x["check"]["shortfall"] == x["check"]["maintMargin"] - x["check"]["equity"], f"check: {x['check']}")
    p = x["position"]
    check(p["currentQty"] == 1000 and p["avgEntryPrice"] == pos["avgEntryPrice"]
          and p["liquidationPrice"] == pos["liquidationPrice"], f"position before: {p} vs {pos}")
    steps = x["steps"]
    kinds = [t["step"] for t in steps]
    canceled = [t for t in steps if t["step"] == "orderCanceled"]
    check(any(t["orderID"] == resting["orderID"] for t in canceled), f"the resting order canceled: {steps}")
    take = [t for t in steps if t["step"] == "takeover"]
    check(len(take) == 1 and take[0]["qty"] == 1000 and take[0]["execID"] == ex["execID"]
          and take[0]["bankruptPrice"] == ex["lastPx"] and ex["lastQty"] == 1000, f"takeover {take} vs {ex}")
    if leverage:
        check(take[0]["bankruptPrice"] == pos["bankruptPrice"], f"isolated: at the bankruptcy price GET /position "
                                                               f"showed: {take[0]} vs {pos['bankruptPrice']}")
    closed = sum(t["qty"] for t in steps if t["step"] == "liquidatorFill") + \
        sum(abs(t["qty"]) for t in steps if t["step"] == "deleverage")
    check(closed == 1000, f"the liquidator's fills and ADL close it all: {closed} in {kinds}")
    if adl:
        check("deleverage" in kinds, f"ADL: {kinds}")
    fund1 = fund(s)
    check(x["insuranceFund"]["before"] == fund0 and x["insuranceFund"]["after"] == fund1
          and x["insuranceFund"]["change"] == fund1 - fund0, f"fund {x['insuranceFund']} vs {fund0} -> {fund1}")
    moves = sum(t["change"] for t in steps if t["step"] == "insuranceFund")
    check(moves == fund1 - fund0, f"the fund's steps add up: {moves} vs {fund1 - fund0}")
    check(kinds.index("takeover") > max(kinds.index(k) for k in kinds if k == "orderCanceled"),
          f"in M6's order: {kinds}")
    maker.ok("DELETE", "order/all", {})
    return x


def two_at_once(s):
    """Two owners liquidated by one shock, one of them with more open orders
    than are listed: each explanation holds its own steps and fund move,
    and is found by its own Liquidation execution."""
    maker = s.account({"XBt": 100_000_000_000})
    for k in range(5):
        maker.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 1000, "price": 60000 + k * 10})
        maker.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 2000, "price": 50000 - k * 500})
    owners = []
    for deposit in (3_000_000, 3_500_000):
        o = s.account({"XBt": deposit})
        o.ok("POST", "position/leverage", {"symbol": "XBTUSD", "leverage": 50})
        o.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 1000, "ordType": "Market"})
        owners.append(o)
    for k in range(20):  # more than the 16 listed
        owners[1].ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 100, "price": 40000 + k})
    liq = max(o.ok("GET", "position", params={"filter": json.dumps({"symbol": "XBTUSD"})})[0]["liquidationPrice"]
              for o in owners)
    s.admin("POST", "index", {"symbol": ".BXBT", "price": liq * 0.9})
    xs = []
    for o in owners:
        ex = liquidation_exec(o)
        x = explain(s, execID=ex["execID"])
        check(x["account"] == o.account and x["execID"] == ex["execID"], f"found by its own execution: {x['account']}")
        moves = sum(t["change"] for t in x["steps"] if t["step"] == "insuranceFund")
        check(x["insuranceFund"]["change"] == moves, f"its own fund move only: {x['insuranceFund']} vs {moves}")
        closed = sum(t["qty"] for t in x["steps"] if t["step"] in ("liquidatorFill", "deleverage"))
        check(closed == 1000, f"its own fills: {closed}")
        xs.append(x)
    check(xs[1]["insuranceFund"]["before"] == xs[0]["insuranceFund"]["after"], "one after the other")
    check(xs[1]["ordersCanceled"] == 20 and xs[1]["canceledNotListed"] == 4 and
          len([t for t in xs[1]["steps"] if t["step"] == "orderCanceled"]) == 16, f"cancels: {xs[1]['ordersCanceled']}")
    maker.ok("DELETE", "order/all", {})


def funding_of(s, **params):
    return s.get("/explain/v1/funding?" + httpkit.qs(dict(symbol="XBTUSD", **params)))


def formula_gives(f):
    """F = P + clamp(I - P, -0.05%, 0.05%), |F| <= cap: from the numbers shown."""
    p, i, cap = f["premiumIndex"], f["interestRate"], f["cap"]
    want = p + min(max(i - p, -0.0005), 0.0005)
    want = min(max(want, -cap), cap)
    return abs(want - f["fundingRate"]) < 1e-9 and abs(f["clampedDifference"] - min(max(i - p, -0.0005), 0.0005)) < 1e-9


def funding_explained(s):
    s.client_class = test_clock.EngineTimeClient  # the clock moves hours ahead of the wall's
    maker = s.account({"XBt": 10_000_000_000})
    long_, short = s.account(), s.account()
    maker.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 1000, "price": 59000})
    maker.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 2000, "price": 58900})
    long_.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 1000, "price": 59000})
    short.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 1000, "price": 58900})
    before = funding_of(s)
    nx = before["next"]
    check(before["symbol"] == "XBTUSD" and before["fundingsKept"] == 0 and before["fundings"] == []
          and nx["msUntil"] > 0 and nx["fundingInterval"] == 8 and formula_gives(nx["indicative"]),
          f"before the first funding: {before}")
    inst = s.get("/api/v1/instrument?symbol=XBTUSD")[0]
    check(nx["fundingTimestamp"] == inst["fundingTimestamp"] and nx["fundingRate"] == inst["fundingRate"],
          f"next funding as the instrument says: {nx} {inst}")
    seen = []
    for round_ in range(3):
        if round_ == 2:
            st, _, _ = s.admin("POST", "funding", {"symbol": "XBTUSD", "fundingRate": 0.001})
            check(st == 200, "an instructor announces 0.1%")
        rate = s.get("/api/v1/instrument?symbol=XBTUSD")[0]["fundingRate"]
        due = funding_of(s)["next"]["fundingTimestamp"]
        test_clock.advance(s, to=due)
        got = funding_of(s)
        f = got["fundings"][0]
        check(got["fundingsKept"] == round_ + 1 and f["timestamp"] == due and f["fundingRate"] == rate,
              f"funding {round_}: {f['timestamp']} {f['fundingRate']} want {due} {rate}")
        pub = [x for x in s.get("/api/v1/funding?symbol=XBTUSD&reverse=true") if x["timestamp"] == due]
        check(pub and pub[0]["fundingRate"] == f["fundingRate"], f"GET /funding agrees: {pub}")
        want_from = ["opening", "premium", "announced"][round_]
        check(f["rateFrom"] == want_from, f"funding {round_} rate from {f['rateFrom']}, want {want_from}")
        if want_from == "premium":
            prev = seen[-1]
            check(f["rate"]["formedAt"] == prev["timestamp"] and f["rate"]["premiumIndex"] == prev["nextRate"]["premiumIndex"]
                  and f["fundingRate"] == prev["nextRate"]["fundingRate"] and formula_gives(f["rate"]),
                  f"formed from the previous premium: {f['rate']} {prev['nextRate']}")
        check(formula_gives(got["next"]["indicative"]), f"the forming rate's formula: {got['next']['indicative']}")
        check(formula_gives(f["nextRate"]) and f["nextRate"]["samples"] > 0,
              f"the next rate's formula: {f['nextRate']}")
        check(s.get("/api/v1/instrument?symbol=XBTUSD")[0]["fundingRate"] == f["nextRate"]["fundingRate"],
              "the next rate announced on the instrument")
        pays = {p["account"]: p for p in f["payments"]}
        check(f["paymentsCount"] == len(f["payments"]) and sum(p["walletChange"] for p in f["payments"])
              == f["received"] - f["paid"] and f["rounding"] == f["paid"] - f["received"] >= 0,
              f"payments add up: {f['paid']} {f['received']} {f['rounding']}")
        for c, qty in ((long_, 1000), (short, -1000)):
            p = pays.get(c.account)
            check(p and p["currentQty"] == qty, f"account {c.account}'s payment: {p}")
            hist = [h for h in c.ok("GET", "user/walletHistory", params={"currency": "XBt", "count": 100})
                    if h["text"] == "Funding" and h["transactTime"] == due]
            check(len(hist) == 1 and hist[0]["amount"] == p["walletChange"], f"wallet's Funding row: {hist} {p}")
            n = abs(p["markValue"]) * abs(round(f["fundingRate"] * 1e8))
            pays_ = (qty > 0) == (f["fundingRate"] > 0)
            want = -(-n // 100_000_000) if pays_ else n // 100_000_000  # payer: ceiling
            check(p["walletChange"] == (-want if pays_ else want), f"value x rate, rounded against the trader: {p} {f['fundingRate']}")
        seen.append(f)
    check(funding_of(s, count=1, start=2)["fundings"][0]["timestamp"] == seen[0]["timestamp"], "paging")
    for q, want in (("symbol=XBTH27", 400), ("count=0", 400), ("count=21", 400), ("bogus=1", 400), ("symbol=NOPE", 400)):
        st, _, o = s.raw("GET", "/explain/v1/funding?" + (q if q.startswith("symbol") else "symbol=XBTUSD&" + q))
        check(st == want, f"{q}: {st} {o}")
    st, _, o = s.raw("GET", "/explain/v1/funding")
    check(st == 400, f"no symbol: {st} {o}")


def class_table(s, liquidated):
    """GET /admin/v1/accounts: each account's money, positions and liquidations,
    as the ordinary API and the explanations say."""
    st, _, t = s.admin("GET", "accounts")
    check(st == 200 and t["next"] is None and t["accounts"], f"the class table: {st} {t}")
    rows = {a["account"]: a for a in t["accounts"]}
    check(sorted(rows) == list(range(1, max(rows) + 1)) and not any(a["agent"] for a in rows.values()),
          f"every account, none an agent: {sorted(rows)}")
    for acct, n in liquidated.items():
        check(rows[acct]["liquidations"] == n, f"account {acct}: {rows[acct]['liquidations']} liquidations, want {n}")
    check(sum(a["liquidations"] for a in rows.values()) == sum(liquidated.values()), "no other liquidations")
    for a in rows.values():
        for c in a["currencies"]:
            check(c["pnl"] == c["marginBalance"] - c["deposited"] + c["withdrawn"]
                  and c["realisedPnl"] == c["walletBalance"] - c["deposited"] + c["withdrawn"]
                  and c["marginBalance"] == c["walletBalance"] + c["unrealisedPnl"], f"account {a['account']}: {c}")
    st, _, page = s.admin("GET", "accounts?start=2&count=2")
    check([a["account"] for a in page["accounts"]] == [2, 3] and page["next"] == 4, f"paging: {page}")
    for q in ("count=0", "count=1001", "start=0", "agents=maybe", "bogus=1"):
        st, _, o = s.admin("GET", "accounts?" + q)
        check(st == 400, f"accounts?{q}: {st} {o}")


def main():
    s = Server(BIN, "--clock", "stepped", "--rate-limit", "off")
    iso = scenario(s, 50, adl=False)
    st, _, _ = s.admin("POST", "index", {"symbol": ".BXBT", "price": 60000})
    cross = scenario(s, 0, adl=True)
    s.admin("POST", "index", {"symbol": ".BXBT", "price": 60000})
    two_at_once(s)
    s.admin("POST", "index", {"symbol": ".BXBT", "price": 60000})
    lst = explain(s)
    ids = [x["id"] for x in lst]
    check(ids == sorted(ids, reverse=True) and len(ids) == 4 and ids[2:] == [cross["id"], iso["id"]],
          f"newest first: {ids}")
    check(explain(s, symbol="ETHUSD") == [], "by symbol")
    check(len(explain(s, count=1, start=3)) == 1 and explain(s, count=1, start=3)[0]["id"] == iso["id"], "paging")
    for q, want in (("execID=nope", 400), ("count=0", 400), ("count=101", 400), ("symbol=NOPE", 400),
                    ("bogus=1", 400), ("execID=00000001-0000-0000-0000-0000000fffff", 404)):
        st, _, o = s.raw("GET", "/explain/v1/liquidation?" + q)
        check(st == want, f"{q}: {st} {o}")
    liquidated = {}
    for x in lst:
        liquidated[x["account"]] = liquidated.get(x["account"], 0) + 1
    class_table(s, liquidated)
    funding_explained(s)
    s.audit()
    s.stop()
    print(f"explain: {httpkit.checks} checks passed")


if __name__ == "__main__":
    main()
