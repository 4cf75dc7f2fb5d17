#!/usr/bin/env python3
"""Instruments from the config file (issue 3), over real HTTP.

Writes a config that keeps the default instruments, changes one of them and
defines two new ones: SOLUSD, a quanto perpetual settled in XBt on a new
index .BSOL, and a linear SOL future settled in USDt with an expiry. Starts
perpsim with it (the path is the first argument) on a free port and checks
that GET /api/v1/instrument shows them with the configured fields, that
/admin/v1/index moves their marks, that two accounts trade each of them
(order, fill, fees to the satoshi, position, trade, L2 ids) and that the
money audit is exact. Then a market from scratch ("defaultInstruments":
false), and bad configs: perpsim must exit with status 2 and a message
naming the instrument and the field, without starting.

Exit status 0 when every check holds; the first failed check is printed.
"""
import calendar
import json
import os
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
TMP = tempfile.mkdtemp(prefix="perpsim-config-")
from httpkit import TOKEN, check, fail  # noqa: E402,F401
import httpkit  # noqa: E402


def write_config(name, cfg):
    path = os.path.join(TMP, name)
    with open(path, "wb" if isinstance(cfg, bytes) else "w") as f:
        if isinstance(cfg, bytes):
            f.write(cfg)  # raw text, as a hand-edited file may be
        else:
            json.dump(cfg, f)
    return path


class Client(httpkit.Client):
    def position(self, symbol):
        rows = [p for p in self.ok("GET", "position") if p["symbol"] == symbol]
        check(len(rows) == 1, f"account {self.account}: one {symbol} position: {rows}")
        return rows[0]


class Server(httpkit.Server):
    client_class = Client

    def __init__(self, config):
        super().__init__(BIN, "--config", config, "--rate-limit", "off")


# ---- the config under test ------------------------------------------------------------------

def future_expiry():
    """About six months ahead, 12:00 UTC: the symbol follows the month."""
    t = time.gmtime(time.time() + 183 * 86400)
    ms = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 12, 0, 0)) * 1000
    iso = time.strftime("%Y-%m-%dT12:00:00.000Z", t)
    code = "FGHJKMNQUVXZ"[t.tm_mon - 1] + "%02d" % (t.tm_year % 100)
    return ms, iso, code


EXP_MS, EXP_ISO, EXP_CODE = future_expiry()
FUT = "SOLUSDT" + EXP_CODE

SOLUSD = {"symbol": "SOLUSD", "type": "quanto", "settlCurrency": "XBt", "index": ".BSOL", "indexPrice": 150,
          "multiplier": 1000, "tickSize": 0.01, "lotSize": 1, "maxOrderQty": 1000000, "maxPrice": 100000,
          "initMargin": 0.05, "maintMargin": 0.025, "riskLimit": 5000000000, "riskStep": 5000000000,
          "makerFee": -0.0001, "takerFee": 0.0005, "fundingIntervalHours": 4}
SOLFUT = {"symbol": FUT, "type": "linear", "settlCurrency": "usdt", "index": ".BSOL", "multiplier": 100,
          "tickSize": 0.01, "lotSize": 100, "maxOrderQty": 100000000, "maxPrice": 100000, "initMargin": 0.02,
          "maintMargin": 0.01, "riskLimit": 1000000000000, "riskStep": 1000000000000, "makerFee": -0.0001,
          "takerFee": 0.0005, "settlementFee": 0.0005, "expiry": EXP_ISO}


def main():
    cfg = write_config("market.json", {"instruments": [{"symbol": "xbtusd", "takerFee": 0.0006}, SOLUSD, SOLFUT],
                                       "loadShed": {"fixedDepth": 1234}, "engineDelayUs": 0, "demo": False,
                                       "rateLimit": "off"})
    s = Server(cfg)
    try:
        check(f"instruments  XBTUSD ETHUSD XBTUSDT XBT" in s.banner and f"SOLUSD {FUT}\n" in s.banner,
              f"banner lists the instruments: {s.banner}")
        st, _, ls = s.admin("GET", "loadshed")
        check(st == 200 and ls.get("mode") == "fixed" and ls.get("depthLimit") == 1234,
              f"the config's loadShed applied: {ls}")
        run_market(s)
    finally:
        s.stop()
    run_scratch()
    run_bad_configs()
    print(f"config instruments: {httpkit.checks} checks passed")


def run_market(s):
    rows = s.get("/api/v1/instrument")
    syms = [r["symbol"] for r in rows]
    check(syms[:3] == ["XBTUSD", "ETHUSD", "XBTUSDT"] and syms[4:] == ["SOLUSD", FUT], f"instrument list: {syms}")
    by = {r["symbol"]: r for r in rows}
    check(by["XBTUSD"]["takerFee"] == 0.0006 and by["XBTUSD"]["makerFee"] == -0.0001, "XBTUSD override kept")

    sol = by["SOLUSD"]
    want = {"rootSymbol": "SOL", "underlying": "SOL", "quoteCurrency": "USD", "positionCurrency": "USD",
            "underlyingSymbol": "SOL=", "referenceSymbol": ".BSOL", "typ": "FFWCSX", "state": "Open",
            "settlCurrency": "XBt", "isQuanto": True, "isInverse": False, "multiplier": 1000, "tickSize": 0.01,
            "lotSize": 1, "maxOrderQty": 1000000, "maxPrice": 100000, "initMargin": 0.05, "maintMargin": 0.025,
            "riskLimit": 5000000000, "riskStep": 5000000000, "makerFee": -0.0001, "takerFee": 0.0005,
            "settlementFee": 0, "expiry": None, "fundingInterval": "2000-01-01T04:00:00.000Z",
            "fundingRate": 0.00005, "fairMethod": "FundingRate"}
    for k, v in want.items():
        check(sol.get(k) == v, f"SOLUSD {k}: want {v!r}, got {sol.get(k)!r}")
    check(150 <= sol["markPrice"] <= 150.01 and sol["indicativeSettlePrice"] == 150, f"SOLUSD mark: {sol}")
    ft = s.raw("GET", "/api/v1/instrument?symbol=" + FUT)[2][0]
    want = {"rootSymbol": "SOL", "underlying": "SOL", "quoteCurrency": "USDT", "positionCurrency": "SOL",
            "referenceSymbol": ".BSOL", "typ": "FFCCSX", "settlCurrency": "USDt", "isQuanto": False,
            "isInverse": False, "multiplier": 100, "tickSize": 0.01, "lotSize": 100, "maxOrderQty": 100000000,
            "maxPrice": 100000, "initMargin": 0.02, "maintMargin": 0.01, "riskLimit": 1000000000000,
            "makerFee": -0.0001, "takerFee": 0.0005, "settlementFee": 0.0005, "expiry": EXP_ISO,
            "settle": EXP_ISO, "fundingRate": None, "fundingInterval": None,
            "underlyingToPositionMultiplier": 10000, "quoteToSettleMultiplier": 1000000}
    for k, v in want.items():
        check(ft.get(k) == v, f"{FUT} {k}: want {v!r}, got {ft.get(k)!r}")
    idx = {r["symbol"]: r for r in s.get("/api/v1/instrument/indices")}
    check(set(idx) == {".BXBT", ".BETH", ".BSOL"} and idx[".BSOL"]["lastPrice"] == 150, f"indices: {idx}")
    check([r["symbol"] for r in s.get("/api/v1/instrument?symbol=SOL")] == ["SOLUSD", FUT], "root SOL")
    check([r["symbol"] for r in s.get("/api/v1/instrument?symbol=SOL%3Aperpetual")] == ["SOLUSD"], "SOL:perpetual")
    check([r["symbol"] for r in s.get("/api/v1/instrument?symbol=solusd")] == ["SOLUSD"], "symbol without case")

    # The new index moves both marks.
    st, _, r = s.admin("POST", "index", {"symbol": ".BSOL", "price": 160})
    check(st == 200 and r["price"] == 160, f"admin index .BSOL: {st} {r}")
    by = {r["symbol"]: r for r in s.get("/api/v1/instrument")}
    check(160 <= by["SOLUSD"]["markPrice"] <= 160.01, f"SOLUSD mark follows .BSOL: {by['SOLUSD']['markPrice']}")
    check(abs(by[FUT]["markPrice"] - 160) < 1 and by[FUT]["indicativeSettlePrice"] == 160,
          f"{FUT} mark follows .BSOL: {by[FUT]['markPrice']}")
    check(by["XBTUSD"]["indicativeSettlePrice"] == 60000, "other indices untouched")

    a0 = s.audit()
    dep = {"XBt": 100_000_000, "USDt": 1_000_000_000}
    mk, tk = s.account(dep), s.account(dep)

    # ---- SOLUSD: quanto, settles XBt ------------------------------------------------------
    ask = mk.ok("POST", "order", {"symbol": "SOLUSD", "side": "Sell", "orderQty": 100, "price": 160.5})
    rest = mk.ok("POST", "order", {"symbol": "SOLUSD", "side": "Sell", "orderQty": 7, "price": 161})
    check(ask["ordStatus"] == "New" and ask["symbol"] == "SOLUSD" and ask["currency"] == "USD"
          and ask["settlCurrency"] == "XBt", f"SOLUSD ask: {ask}")
    book = s.get("/api/v1/orderBook/L2?symbol=SOLUSD&depth=0")
    check([(r["side"], r["size"], r["price"]) for r in book] == [("Sell", 7, 161), ("Sell", 100, 160.5)],
          f"SOLUSD book: {book}")
    # BitMEX's id: (88 + instrument index) * 1e8 - price / tickSize; SOLUSD is the fifth instrument.
    check([r["id"] for r in book] == [92 * 10**8 - 16100, 92 * 10**8 - 16050], f"SOLUSD L2 ids: {book}")
    check(s.get("/api/v1/orderBook/L2?symbol=ETHUSD&depth=0") == [], "ETHUSD book untouched")
    st, _, r = tk.req("POST", "order", {"symbol": "SOLUSD", "side": "Buy", "orderQty": 100, "price": 160.505})
    check(st == 400 and "tickSize" in r["error"]["message"], f"off-tick on SOLUSD: {st} {r}")
    buy = tk.ok("POST", "order", {"symbol": "SOLUSD", "side": "Buy", "orderQty": 100, "price": 160.5})
    check(buy["ordStatus"] == "Filled" and buy["cumQty"] == 100 and buy["avgPx"] == 160.5, f"SOLUSD buy: {buy}")
    # value = 100 x 1000 XBt x 160.5 = 16,050,000 XBt; taker 0.05% = 8,025, maker -0.01% = -1,605
    te = [e for e in tk.ok("GET", "execution/tradeHistory") if e["symbol"] == "SOLUSD"]
    me = [e for e in mk.ok("GET", "execution/tradeHistory") if e["symbol"] == "SOLUSD"]
    check(len(te) == 1 and te[0]["execComm"] == 8025 and te[0]["commission"] == 0.0005
          and te[0]["lastLiquidityInd"] == "RemovedLiquidity", f"taker execution: {te}")
    check(len(me) == 1 and me[0]["execComm"] == -1605 and me[0]["commission"] == -0.0001
          and abs(me[0]["execCost"]) == 16050000, f"maker execution: {me}")
    tp, mp = tk.position("SOLUSD"), mk.position("SOLUSD")
    check(tp["currentQty"] == 100 and mp["currentQty"] == -100, f"SOLUSD positions: {tp} {mp}")
    check(tp["avgEntryPrice"] == 160.5 and tp["currency"] == "XBt" and tp["underlying"] == "SOL"
          and tp["quoteCurrency"] == "USD" and abs(tp["unrealisedCost"]) == 16050000
          and tp["unrealisedCost"] == -mp["unrealisedCost"] and tp["commission"] == 0.0005, f"SOLUSD position: {tp}")
    check(tp["foreignNotional"] < 0 and tp["homeNotional"] > 0, f"SOLUSD notionals: {tp}")
    check(tk.ok("GET", "user/margin")["walletBalance"] == 100_000_000 - 8025, "taker XBt wallet less the fee")
    check(mk.ok("GET", "user/margin")["walletBalance"] == 100_000_000 + 1605, "maker XBt wallet plus the rebate")
    trades = s.get("/api/v1/trade?symbol=SOLUSD")
    check(len(trades) == 1 and trades[0]["size"] == 100 and trades[0]["price"] == 160.5
          and trades[0]["side"] == "Buy" and trades[0]["grossValue"] == 16050000
          and trades[0]["foreignNotional"] == 16050, f"SOLUSD trade: {trades}")
    opens = mk.ok("GET", "order", params={"symbol": "SOLUSD", "filter": json.dumps({"open": True})})
    check([o["orderID"] for o in opens] == [rest["orderID"]], f"maker's open SOLUSD order: {opens}")
    check(s.get("/api/v1/instrument?symbol=SOLUSD")[0]["openInterest"] == 100, "SOLUSD open interest")

    # ---- the SOL future: linear, settles USDt -----------------------------------------------
    mk.ok("POST", "order", {"symbol": FUT, "side": "Sell", "orderQty": 1000, "price": 160})
    fb = tk.ok("POST", "order", {"symbol": FUT, "side": "Buy", "orderQty": 1000, "ordType": "Market"})
    check(fb["ordStatus"] == "Filled" and fb["avgPx"] == 160 and fb["settlCurrency"] == "USDt"
          and fb["currency"] == "USDT", f"{FUT} buy: {fb}")
    # value = 1000 x 100 USDt x 160 = 16,000,000 USDt (16 USDT); fees 8,000 and -1,600
    fp, fm = tk.position(FUT), mk.position(FUT)
    check(fp["currentQty"] == 1000 and fm["currentQty"] == -1000 and fp["currency"] == "USDt"
          and abs(fp["unrealisedCost"]) == 16000000 and fp["homeNotional"] == 0.1
          and fp["quoteCurrency"] == "USDT", f"{FUT} positions: {fp} {fm}")
    usdt = lambda c: [m for m in c.ok("GET", "user/margin", params={"currency": "all"}) if m["currency"] == "USDt"][0]
    check(usdt(tk)["walletBalance"] == 1_000_000_000 - 8000, "taker USDt wallet less the fee")
    check(usdt(mk)["walletBalance"] == 1_000_000_000 + 1600, "maker USDt wallet plus the rebate")

    # ---- the money audit --------------------------------------------------------------------
    a = s.audit()
    inst = {r["symbol"]: r for r in a["instruments"]}
    check(inst["SOLUSD"]["longContracts"] == 100 and inst["SOLUSD"]["shortContracts"] == 100, f"audit SOLUSD: {inst}")
    check(inst[FUT]["longContracts"] == 1000 and inst[FUT]["shortContracts"] == 1000, f"audit {FUT}: {inst}")
    cur = {c["currency"]: c for c in a["currencies"]}
    cur0 = {c["currency"]: c for c in a0["currencies"]}
    check(cur["XBt"]["expected"] == cur0["XBt"]["expected"] + 200_000_000
          and cur["USDt"]["expected"] == cur0["USDt"]["expected"] + 2_000_000_000, f"audit deposits: {cur}")
    check(cur["XBt"]["fees"] - cur0["XBt"]["fees"] == 8025 - 1605
          and cur["USDt"]["fees"] - cur0["USDt"]["fees"] == 8000 - 1600, f"audit fees: {cur}")

    # An index move re-margins the new positions, the audit still exact.
    st, _, r = s.admin("POST", "index", {"symbol": ".BSOL", "price": 170})
    check(st == 200, f"admin index .BSOL 170: {st} {r}")
    tp = tk.position("SOLUSD")
    # quanto long 100 from 160.5 to a mark of ~170: +100 x 1000 x ~9.5 XBt
    check(940000 <= tp["unrealisedPnl"] <= 960000, f"SOLUSD unrealised PnL at 170: {tp['unrealisedPnl']}")
    s.audit()
    # Close both and everything is back in wallets, fees and rounding.
    c = mk.ok("DELETE", "order", {"orderID": rest["orderID"]})
    check(c[0]["ordStatus"] == "Canceled" and c[0]["symbol"] == "SOLUSD", f"cancel on SOLUSD: {c}")
    mk.ok("POST", "order", {"symbol": "SOLUSD", "side": "Buy", "orderQty": 100, "price": 171})
    tk.ok("POST", "order", {"symbol": "SOLUSD", "side": "Sell", "execInst": "Close"})
    mk.ok("POST", "order", {"symbol": FUT, "side": "Buy", "orderQty": 1000, "price": 171})
    tk.ok("POST", "order", {"symbol": FUT, "side": "Sell", "execInst": "Close"})
    check(tk.position("SOLUSD")["currentQty"] == 0 and tk.position(FUT)["currentQty"] == 0, "closed")
    a = s.audit()
    check(all(c["openPositions"] == 0 for c in a["currencies"]), f"flat: {a}")


def run_scratch():
    """defaultInstruments false: only what the file defines, the indices it uses."""
    xbt = {"symbol": "XBTUSD", "type": "inverse", "settlCurrency": "XBt", "index": ".BXBT",
           "multiplier": -100000000, "tickSize": 1, "lotSize": 10, "maxOrderQty": 1000000, "maxPrice": 1000000,
           "initMargin": 0.02, "maintMargin": 0.01, "riskLimit": 20000000000, "riskStep": 10000000000,
           "makerFee": 0, "takerFee": 0.001}
    cfg = write_config("scratch.json", {"defaultInstruments": False, "instruments": [SOLUSD, xbt],
                                        "indices": {".BSOL": 155.25}})
    s = Server(cfg)
    try:
        rows = s.get("/api/v1/instrument")
        check([r["symbol"] for r in rows] == ["SOLUSD", "XBTUSD"], f"scratch instruments: {rows}")
        x = rows[1]
        check(x["tickSize"] == 1 and x["lotSize"] == 10 and x["isInverse"] and x["multiplier"] == -100000000
              and x["underlying"] == "XBT" and x["quoteCurrency"] == "USD" and x["takerFee"] == 0.001
              and 60000 <= x["markPrice"] <= 60010, f"scratch XBTUSD: {x}")
        # 0.02 initial margin: impactNotional defaults to 0.1 XBT / 0.02 (not shown); the rate 0.01% / 8 h
        check(x["fundingRate"] == 0.0001 and x["fundingInterval"] == "2000-01-01T08:00:00.000Z", f"funding: {x}")
        idx = [r["symbol"] for r in s.get("/api/v1/instrument/indices")]
        check(idx == [".BSOL", ".BXBT"], f"scratch indices: {idx}")
        check(155.25 <= rows[0]["markPrice"] <= 155.27, f"indices overrides indexPrice: {rows[0]['markPrice']}")
        st, _, _ = s.raw("GET", "/api/v1/orderBook/L2?symbol=ETHUSD")
        check(st == 400, "no ETHUSD in a market from scratch")
        a, b = s.account({"XBt": 100_000_000}), s.account({"XBt": 100_000_000})
        a.ok("POST", "order", {"symbol": "XBTUSD", "side": "Sell", "orderQty": 10, "price": 60001})
        b.ok("POST", "order", {"symbol": "XBTUSD", "side": "Buy", "orderQty": 10, "price": 60001})
        check(b.position("XBTUSD")["currentQty"] == 10, "scratch XBTUSD trade")
        s.audit()
    finally:
        s.stop()


def expect_refused(name, cfg, *words):
    path = write_config(name + ".json", cfg)
    try:
        p = subprocess.run([BIN, "--config", path, "--listen", "127.0.0.1:0", "--admin-token", TOKEN, "--no-demo", "--no-market"],
                           capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        fail(f"{name}: perpsim started with a bad config")
    check(p.returncode == 2, f"{name}: exit status {p.returncode}, want 2: {p.stderr}")
    check("listening" not in p.stdout, f"{name}: it listened: {p.stdout}")
    for w in words:
        check(w in p.stderr, f"{name}: message should name {w!r}: {p.stderr!r}")


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


def run_bad_configs():
    for field in ["type", "settlCurrency", "index", "multiplier", "tickSize", "lotSize", "maxOrderQty", "maxPrice",
                  "initMargin", "maintMargin", "riskLimit", "riskStep", "makerFee", "takerFee"]:
        expect_refused("missing-" + field, {"instruments": [without(SOLUSD, field)]}, "SOLUSD", "missing " + field)
    expect_refused("missing-settlementFee", {"instruments": [without(SOLFUT, "settlementFee")]}, FUT,
                   "missing settlementFee")
    expect_refused("missing-symbol", {"instruments": [without(SOLUSD, "symbol")]}, "missing symbol")
    expect_refused("unknown-type", {"instruments": [dict(SOLUSD, type="perpetual")]}, "SOLUSD", "type",
                   "perpetual")
    expect_refused("unknown-currency", {"instruments": [dict(SOLUSD, settlCurrency="EUR")]}, "SOLUSD",
                   "settlCurrency", "EUR")
    expect_refused("no-instruments", {"defaultInstruments": False}, "defaultInstruments")
    expect_refused("empty-instruments", {"defaultInstruments": False, "instruments": []}, "defaultInstruments")
    expect_refused("no-index-price", {"instruments": [without(SOLUSD, "indexPrice")]}, "SOLUSD", ".BSOL",
                   "indexPrice")
    expect_refused("inverse-sign", {"instruments": [dict(SOLUSD, type="inverse")]}, "SOLUSD", "multiplier")
    expect_refused("maint-above-init", {"instruments": [dict(SOLUSD, maintMargin=0.06)]}, "SOLUSD", "maintMargin")
    expect_refused("off-tick-max", {"instruments": [dict(SOLUSD, maxPrice=100000.005)]}, "SOLUSD", "maxPrice")
    expect_refused("wrong-type", {"instruments": [dict(SOLUSD, tickSize="0.01")]}, "SOLUSD", "tickSize")
    expect_refused("typo", {"instruments": [dict(SOLUSD, tickSzie=0.01)]}, "SOLUSD", "tickSzie")
    expect_refused("past-expiry", {"instruments": [dict(SOLFUT, expiry="2020-03-27T12:00:00Z")]}, FUT, "expiry")
    expect_refused("bad-expiry", {"instruments": [dict(SOLFUT, expiry="next March")]}, FUT, "expiry")
    expect_refused("future-funding", {"instruments": [dict(SOLFUT, fundingIntervalHours=8)]}, FUT,
                   "fundingIntervalHours")
    expect_refused("twice", {"instruments": [SOLUSD, SOLUSD]}, "SOLUSD", "twice")
    expect_refused("default-expiry", {"instruments": [{"symbol": "XBTUSD", "expiry": EXP_ISO}]}, "XBTUSD", "expiry")
    expect_refused("unknown-index-price", {"indices": {".BNOPE": 1}}, ".BNOPE")
    # The top level: every key known, of its type, in its range (never cast out of range).
    expect_refused("top-typo", {"rateLimt": "off"}, "unknown key rateLimt")
    expect_refused("delay-huge", {"engineDelayUs": 1e300}, "engineDelayUs")
    expect_refused("delay-string", {"engineDelayUs": "5"}, "engineDelayUs")
    expect_refused("delay-fraction", {"engineDelayUs": 2.5}, "engineDelayUs")
    expect_refused("shed-huge", {"loadShed": {"fixedDepth": 1e20}}, "loadShed")
    expect_refused("shed-negative", {"loadShed": {"latencyCapMs": -1}}, "loadShed")
    expect_refused("shed-both", {"loadShed": {"latencyCapMs": 5, "fixedDepth": 5}}, "loadShed")
    expect_refused("shed-typo", {"loadShed": {"latencyCap": 5}}, "loadShed")
    expect_refused("demo-string", {"demo": "no"}, "demo")
    expect_refused("token-number", {"adminToken": 5}, "adminToken")
    expect_refused("scratch-partial", {"defaultInstruments": False, "instruments": [{"symbol": "XBTUSD",
                                                                                      "tickSize": 1}]},
                   "XBTUSD", "missing type")
    # The file is the one object: text after it or a NUL inside is refused, not cut off.
    expect_refused("trailing-text", b'{"demo": false} {"adminToken": "x"}', "not a JSON object")
    expect_refused("nul-byte", b'{"demo": false}\x00{"adminToken": 5}', "NUL")


if __name__ == "__main__":
    main()
