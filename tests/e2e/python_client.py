#!/usr/bin/env python3
"""python_client.py - a plain `requests` client against a running perpsim.

It signs exactly as BitMEX's API-key documentation shows:

    api-signature = hex(HMAC_SHA256(secret, verb + path_url + expires + body))

where path_url is the request target as `requests` puts it on the wire (query
encoded by requests, a space as '+'), expires = now + 60 s (env EXPIRES_IN)
and body is the JSON text sent. It checks what such a client relies on:
public and signed reads, the 401 messages, an order's echoed fields, the
JSON `filter` parameter on /order and /position, cancel, and expiry.

Environment: PERPSIM_URL (e.g. http://127.0.0.1:40123) and
PERPSIM_ADMIN_TOKEN (the admin API creates this client's two accounts).
With --self-test it only checks the signer against BitMEX's example vectors.
Exit status 0 when every check passed, 1 otherwise.
"""
import hashlib
import hmac
import json
import os
import sys
import time

try:
    import requests
except ImportError:
    sys.stderr.write("python_client: the Python module 'requests' is missing; "
                     "run tools/install-deps.sh (it installs python3-requests)\n")
    sys.exit(1)

EXPIRES_IN = int(os.environ.get("EXPIRES_IN", "60"))


def generate_signature(secret, verb, path_url, expires, data=""):
    """BitMEX: hex HMAC-SHA256 of verb + path (with query) + expires + body."""
    message = verb + path_url + str(expires) + data
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ self-test

EXAMPLE_SECRET = "chNOOS4KvNXR_Xq4k4c9qsfoKWvnDecLATCRlcBwyKDYnWgO"


def self_test():
    """The three examples of BitMEX's API-key page, the query encoded by requests."""
    get = requests.Request("GET", "http://example.invalid/api/v1/instrument").prepare()
    filt = requests.Request("GET", "http://example.invalid/api/v1/instrument",
                            params={"filter": json.dumps({"symbol": "XBTM15"})}).prepare()
    assert filt.path_url == "/api/v1/instrument?filter=%7B%22symbol%22%3A+%22XBTM15%22%7D", filt.path_url
    body = '{"symbol":"XBTM15","price":219.0,"clOrdID":"mm_bitmex_1a/oemUeQ4CAJZgP3fjHsA","orderQty":98}'
    vectors = [
        ("GET", get.path_url, 1518064236, "",
         "c7682d435d0cfe87c16098df34ef2eb5a549d4c5a3c2b1f0f77b8af73423bf00"),
        ("GET", filt.path_url, 1518064237, "",
         "e2f422547eecb5b3cb29ade2127e21b858b235b386bfa45e1c1756eb3383919f"),
        ("POST", "/api/v1/order", 1518064238, body,
         "1749cd2ccae4aa49048ae09f0b95110cee706e0944e6a14ad0b3a8cb45bd336b"),
    ]
    for verb, path, expires, data, want in vectors:
        got = generate_signature(EXAMPLE_SECRET, verb, path, expires, data)
        assert got == want, "%s %s: %s != %s" % (verb, path, got, want)
    print("ok    signer reproduces BitMEX's three example signatures")


# ------------------------------------------------------------------ client

class Client:
    def __init__(self, base, key=None, secret=None):
        self.base = base.rstrip("/")
        self.key = key
        self.secret = secret
        self.session = requests.Session()

    def request(self, verb, path, params=None, body=None, signed=True, expires=None,
                secret=None, key=None):
        """Sends verb /api/v1<path>; returns (status, parsed JSON or text)."""
        data = json.dumps(body) if body is not None else ""
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = requests.Request(verb, self.base + "/api/v1" + path, params=params,
                               data=data if body is not None else None, headers=headers)
        prepared = self.session.prepare_request(req)
        if signed:
            if expires is None:
                expires = int(time.time()) + EXPIRES_IN
            prepared.headers["api-key"] = key or self.key
            prepared.headers["api-expires"] = str(expires)
            prepared.headers["api-signature"] = generate_signature(
                secret or self.secret, verb, prepared.path_url, expires, data)
        resp = self.session.send(prepared, timeout=15)
        try:
            payload = resp.json()
        except ValueError:
            payload = resp.text
        return resp.status_code, payload, resp


def admin(base, token, path, body):
    r = requests.post(base.rstrip("/") + path, json=body, timeout=15,
                      headers={"Authorization": "Bearer " + token})
    if r.status_code != 200:
        raise AssertionError("admin POST %s -> %d %s" % (path, r.status_code, r.text))
    return r.json()


# ------------------------------------------------------------------ checks

passed = 0
failed = 0
KEEP_GOING = os.environ.get("E2E_KEEP_GOING") == "1"


def step(name):
    def run(fn):
        global passed, failed
        t0 = time.time()
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            kind = "" if isinstance(e, AssertionError) else type(e).__name__ + ": "
            print("FAIL  %s\n      %s%s" % (name, kind, str(e).replace("\n", "\n      ")), flush=True)
            if not KEEP_GOING:
                print("python_client: stopped at the first failure (%d steps passed)" % passed)
                sys.exit(1)
            return fn
        passed += 1
        print("ok    %s%s (%d ms)" % (name, " - " + detail if detail else "",
                                      (time.time() - t0) * 1000), flush=True)
        return fn
    return run


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def is_iso(ts):
    return isinstance(ts, str) and len(ts) == 24 and ts[10] == "T" and ts.endswith("Z")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    base = os.environ.get("PERPSIM_URL")
    token = os.environ.get("PERPSIM_ADMIN_TOKEN")
    if not base or not token:
        sys.stderr.write("python_client: set PERPSIM_URL and PERPSIM_ADMIN_TOKEN (run.sh does)\n")
        return 2
    print("python %s, requests %s against %s" % (sys.version.split()[0], requests.__version__, base))
    self_test()

    st = {}

    @step("admin: create this client's account and a maker")
    def _():
        st["me"] = admin(base, token, "/admin/v1/accounts", {"deposits": {"XBt": 100000000}})
        st["mm"] = admin(base, token, "/admin/v1/accounts", {"deposits": {"XBt": 100000000}})
        st["c"] = Client(base, st["me"]["apiKey"], st["me"]["apiSecret"])
        st["m"] = Client(base, st["mm"]["apiKey"], st["mm"]["apiSecret"])
        return "accounts %s, %s" % (st["me"]["account"], st["mm"]["account"])

    if "c" not in st:
        return 1
    c = st["c"]
    m = st["m"]

    @step("unsigned GET /instrument?symbol=XBTUSD")
    def _():
        code, body, r = Client(base).request("GET", "/instrument", params={"symbol": "XBTUSD"}, signed=False)
        expect(code == 200, "HTTP %d %s" % (code, body))
        expect(r.headers.get("Content-Type", "").startswith("application/json"),
               "Content-Type %r" % r.headers.get("Content-Type"))
        expect(isinstance(body, list) and len(body) == 1, "expected one row, got %r" % (body,))
        ins = body[0]
        expect(ins.get("symbol") == "XBTUSD", "symbol %r" % ins.get("symbol"))
        for k in ("lastPrice", "tickSize", "lotSize", "bidPrice", "askPrice", "markPrice"):
            expect(k in ins, "field %s missing" % k)
        expect(ins["tickSize"] == 0.5, "tickSize %r" % ins["tickSize"])
        expect(ins["lotSize"] == 100, "lotSize %r" % ins["lotSize"])
        expect(isinstance(ins["markPrice"], (int, float)) and 50000 < ins["markPrice"] < 70000,
               "markPrice %r" % ins["markPrice"])
        return "mark %s last %s bid %s ask %s" % (ins["markPrice"], ins["lastPrice"],
                                                  ins["bidPrice"], ins["askPrice"])

    @step("signed GET /user/margin?currency=XBt")
    def _():
        code, body, _r = c.request("GET", "/user/margin", params={"currency": "XBt"})
        expect(code == 200, "HTTP %d %s" % (code, body))
        row = body[0] if isinstance(body, list) and len(body) == 1 else body
        expect(isinstance(row, dict), "expected an object, got %r" % (body,))
        expect(row.get("currency") == "XBt", "currency %r" % row.get("currency"))
        expect(row.get("account") == st["me"]["account"], "account %r" % row.get("account"))
        expect(row.get("walletBalance") == 100000000, "walletBalance %r" % row.get("walletBalance"))
        expect(row.get("marginBalance") == 100000000, "marginBalance %r" % row.get("marginBalance"))
        expect(row.get("availableMargin") == 100000000, "availableMargin %r" % row.get("availableMargin"))
        return "walletBalance %s" % row["walletBalance"]

    @step("a bad signature gives 401 'Signature not valid.'")
    def _():
        code, body, r = c.request("GET", "/user/margin", params={"currency": "XBt"},
                                  secret=st["me"]["apiSecret"] + "x")
        expect(code == 401, "HTTP %d %s" % (code, body))
        expect(r.headers.get("Content-Type", "").startswith("application/json"),
               "error reply Content-Type %r" % r.headers.get("Content-Type"))
        expect(isinstance(body, dict) and body.get("error", {}).get("message") == "Signature not valid.",
               "body %r" % (body,))
        expect(body["error"].get("name") == "HTTPError", "error.name %r" % body["error"].get("name"))

    @step("an unknown key gives 401 'Invalid API Key.'")
    def _():
        code, body, _r = c.request("GET", "/user/margin", params={"currency": "XBt"}, key="NoSuchKey000000000000000")
        expect(code == 401, "HTTP %d %s" % (code, body))
        expect(body.get("error", {}).get("message") == "Invalid API Key.", "body %r" % (body,))

    @step("an expired api-expires is refused (BitMEX: 400 'This request has expired')")
    def _():
        # Every captured BitMEX reply to an expired request is HTTP 400 with
        # this text (e.g. BitMEX/sample-market-maker#49); 401 would do as well.
        code, body, _r = c.request("GET", "/user/margin", params={"currency": "XBt"},
                                   expires=int(time.time()) - 10)
        expect(code in (400, 401), "HTTP %d %s" % (code, body))
        msg = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
        expect("expired" in msg, "message %r does not say the request expired" % msg)
        return msg

    @step("a signed POST whose body was altered after signing gives 401")
    def _():
        # sign one body, send another: the server must check the raw body
        expires = int(time.time()) + EXPIRES_IN
        signed_body = json.dumps({"symbol": "XBTUSD", "side": "Buy", "orderQty": 100,
                                  "price": 50000.0, "ordType": "Limit"})
        sent_body = signed_body.replace("100", "200")
        headers = {"Content-Type": "application/json", "api-key": c.key, "api-expires": str(expires),
                   "api-signature": generate_signature(c.secret, "POST", "/api/v1/order", expires, signed_body)}
        r = requests.post(base + "/api/v1/order", data=sent_body, headers=headers, timeout=15)
        expect(r.status_code == 401, "HTTP %d %s" % (r.status_code, r.text))

    @step("POST /order (limit) echoes the order with its fields")
    def _():
        cl = "py-limit-%d" % int(time.time() * 1000)
        code, o, _r = c.request("POST", "/order", body={"symbol": "XBTUSD", "side": "Buy", "orderQty": 100,
                                                        "price": 55000.0, "ordType": "Limit", "clOrdID": cl})
        expect(code == 200, "HTTP %d %s" % (code, o))
        expect(isinstance(o, dict), "expected one order object, got %r" % (o,))
        expect(o.get("account") == st["me"]["account"], "account %r" % o.get("account"))
        expect(is_iso(o.get("timestamp")), "timestamp %r" % o.get("timestamp"))
        expect(is_iso(o.get("transactTime")), "transactTime %r" % o.get("transactTime"))
        expect(o.get("currency") == "USD", "currency %r" % o.get("currency"))
        expect(o.get("settlCurrency") == "XBt", "settlCurrency %r" % o.get("settlCurrency"))
        expect(o.get("workingIndicator") is True, "workingIndicator %r" % o.get("workingIndicator"))
        expect(o.get("clOrdID") == cl, "clOrdID %r" % o.get("clOrdID"))
        expect(o.get("timeInForce") == "GoodTillCancel", "timeInForce %r" % o.get("timeInForce"))
        expect(o.get("ordStatus") == "New", "ordStatus %r" % o.get("ordStatus"))
        expect(o.get("ordType") == "Limit" and o.get("side") == "Buy", "ordType/side %r/%r"
               % (o.get("ordType"), o.get("side")))
        expect(o.get("orderQty") == 100 and o.get("leavesQty") == 100 and o.get("cumQty") == 0,
               "qty %r leaves %r cum %r" % (o.get("orderQty"), o.get("leavesQty"), o.get("cumQty")))
        expect(o.get("price") == 55000, "price %r" % o.get("price"))
        expect(o.get("symbol") == "XBTUSD", "symbol %r" % o.get("symbol"))
        expect(isinstance(o.get("orderID"), str) and o["orderID"], "orderID %r" % o.get("orderID"))
        st["order"] = o
        return o["orderID"]

    @step('GET /order with filter {"open": true}')
    def _():
        code, rows, resp = c.request("GET", "/order", params={"symbol": "XBTUSD",
                                                              "filter": json.dumps({"open": True})})
        expect("+" in resp.request.path_url, "requests did not encode the space as '+': %s" % resp.request.path_url)
        expect(code == 200, "HTTP %d %s" % (code, rows))
        expect(isinstance(rows, list), "expected an array, got %r" % (rows,))
        expect(any(r.get("orderID") == st["order"]["orderID"] for r in rows), "the open order is missing")
        for r in rows:
            expect(r.get("ordStatus") in ("New", "PartiallyFilled", "Untriggered"),
                   "row %s has ordStatus %r" % (r.get("orderID"), r.get("ordStatus")))
        return "%d open" % len(rows)

    @step("DELETE /order cancels it (array reply)")
    def _():
        code, rows, _r = c.request("DELETE", "/order", body={"orderID": st["order"]["orderID"]})
        expect(code == 200, "HTTP %d %s" % (code, rows))
        expect(isinstance(rows, list) and len(rows) == 1, "expected a one-row array, got %r" % (rows,))
        expect(rows[0].get("orderID") == st["order"]["orderID"], "orderID %r" % rows[0].get("orderID"))
        expect(rows[0].get("ordStatus") == "Canceled", "ordStatus %r" % rows[0].get("ordStatus"))
        expect(rows[0].get("leavesQty") == 0, "leavesQty %r" % rows[0].get("leavesQty"))
        code, rows, _r = c.request("GET", "/order", params={"filter": json.dumps({"open": True})})
        expect(code == 200 and not any(r.get("orderID") == st["order"]["orderID"] for r in rows),
               "the canceled order is still listed open")

    @step("DELETE /order of the same order again reports the existing state")
    def _():
        code, rows, _r = c.request("DELETE", "/order", body={"orderID": st["order"]["orderID"]})
        if code == 200:
            expect(isinstance(rows, list) and rows and "Unable to cancel order due to existing state"
                   in (rows[0].get("error") or ""), "row %r" % (rows,))
        else:
            expect(400 <= code < 500 and "Unable to cancel order due to existing state"
                   in rows.get("error", {}).get("message", ""), "HTTP %d %r" % (code, rows))

    @step("trade 100 XBTUSD against the maker to open a position")
    def _():
        code, a, _r = m.request("POST", "/order", body={"symbol": "XBTUSD", "side": "Sell", "orderQty": 100,
                                                        "price": 60050.0, "ordType": "Limit"})
        expect(code == 200 and a.get("ordStatus") == "New", "maker ask: HTTP %d %r" % (code, a))
        code, b, _r = c.request("POST", "/order", body={"symbol": "XBTUSD", "side": "Buy", "orderQty": 100,
                                                        "price": 60050.0, "ordType": "Limit"})
        expect(code == 200, "HTTP %d %r" % (code, b))
        expect(b.get("ordStatus") == "Filled" and b.get("cumQty") == 100,
               "ordStatus %r cumQty %r" % (b.get("ordStatus"), b.get("cumQty")))
        expect(b.get("workingIndicator") is False, "a filled order's workingIndicator %r" % b.get("workingIndicator"))
        return "avgPx %s" % b.get("avgPx")

    @step('GET /position with filter {"symbol": "XBTUSD"} (space kept) and count')
    def _():
        code, rows, resp = c.request("GET", "/position", params={"filter": json.dumps({"symbol": "XBTUSD"}),
                                                                 "count": 10})
        expect("%7B%22symbol%22%3A+%22XBTUSD%22%7D" in resp.request.path_url, resp.request.path_url)
        expect(code == 200, "HTTP %d %s" % (code, rows))
        expect(isinstance(rows, list) and len(rows) == 1, "expected one XBTUSD row, got %r" % (rows,))
        p = rows[0]
        expect(p.get("symbol") == "XBTUSD", "symbol %r" % p.get("symbol"))
        expect(p.get("account") == st["me"]["account"], "account %r" % p.get("account"))
        expect(p.get("currentQty") == 100, "currentQty %r" % p.get("currentQty"))
        expect(p.get("isOpen") is True, "isOpen %r" % p.get("isOpen"))
        expect(abs(p.get("avgEntryPrice", 0) - 60050) <= 0.5, "avgEntryPrice %r" % p.get("avgEntryPrice"))
        expect(isinstance(p.get("liquidationPrice"), (int, float)) and p["liquidationPrice"] > 0,
               "liquidationPrice %r" % p.get("liquidationPrice"))
        expect(p.get("homeNotional", 0) > 0 and p.get("foreignNotional", 0) < 0,
               "homeNotional %r foreignNotional %r" % (p.get("homeNotional"), p.get("foreignNotional")))
        return "currentQty %s liq %s" % (p["currentQty"], p["liquidationPrice"])

    @step("GET /position with a filter matching nothing gives []")
    def _():
        code, rows, _r = c.request("GET", "/position", params={"filter": json.dumps({"symbol": "NOSUCHSYM"})})
        expect(code == 200, "HTTP %d %s" % (code, rows))
        expect(rows == [], "expected [], got %r" % (rows,))
        code, rows, _r = c.request("GET", "/position", params={"filter": json.dumps({"symbol": "ETHUSD"})})
        expect(code == 200 and all(r.get("symbol") == "ETHUSD" and r.get("currentQty") == 0 for r in rows),
               "ETHUSD filter: HTTP %d %r" % (code, rows))

    @step("GET /position without a filter lists XBTUSD among the account's rows")
    def _():
        code, rows, _r = c.request("GET", "/position")
        expect(code == 200 and isinstance(rows, list), "HTTP %d %r" % (code, rows))
        expect(any(r.get("symbol") == "XBTUSD" and r.get("currentQty") == 100 for r in rows),
               "no XBTUSD row with currentQty 100 in %r" % ([(r.get("symbol"), r.get("currentQty")) for r in rows],))
        for r in rows:
            expect(r.get("account") == st["me"]["account"], "foreign account %r" % r.get("account"))

    @step("close the position (execInst Close) and flatten")
    def _():
        code, a, _r = m.request("POST", "/order", body={"symbol": "XBTUSD", "side": "Buy", "orderQty": 100,
                                                        "price": 59950.0, "ordType": "Limit"})
        expect(code == 200, "maker bid: HTTP %d %r" % (code, a))
        code, o, _r = c.request("POST", "/order", body={"symbol": "XBTUSD", "side": "Sell", "execInst": "Close"})
        expect(code == 200 and o.get("ordStatus") == "Filled", "HTTP %d %r" % (code, o))
        code, rows, _r = c.request("GET", "/position", params={"filter": json.dumps({"symbol": "XBTUSD"})})
        expect(code == 200 and rows and rows[0].get("currentQty") == 0, "after close: %r" % (rows,))

    if failed:
        print("python_client: %d step(s) FAILED, %d passed" % (failed, passed))
        return 1
    print("python_client: all %d steps passed" % passed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
