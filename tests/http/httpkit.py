"""
httpkit.py - what the HTTP tests share: start perpsim on a free port and
stop it, requests on one keep-alive connection, the admin API, BitMEX's
request signing (HMAC-SHA256 over verb + path + expires + body), and a
check counter that ends the run on the first failure.
"""
import hashlib
import hmac
import http.client
import json
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse

TOKEN = secrets.token_hex(16)
checks = 0


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        fail(msg)


def qs(params):
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote) if params else ""


class Server:
    """perpsim on 127.0.0.1:0 with the admin token, no demo account and,
    unless market=True, no living market."""

    client_class = None  # Client, set below; a test may subclass both

    def __init__(self, binary, *args, market=False):
        quiet_market = [] if market else ["--no-market"]
        self.p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--admin-token", TOKEN, "--no-demo", *quiet_market, *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 20
        self.port = None
        self.banner = ""
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            self.banner += line
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if not self.port:
            fail(f"server did not start: {self.banner}")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self):
        self.conn.close()
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail("server did not stop on SIGTERM")
        check(rc == 0, f"server exit status {rc}")

    def raw(self, verb, target, body=b"", headers=None):
        """One request on the keep-alive connection; returns (status, headers, parsed body)."""
        h = dict(headers or {})
        if body and "Content-Type" not in h:
            h["Content-Type"] = "application/json"
        try:
            self.conn.request(verb, target, body=body, headers=h)
            r = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            raise
        data = r.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode(errors="replace")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed

    def get(self, target):
        st, _, r = self.raw("GET", target)
        check(st == 200, f"GET {target}: {st} {r}")
        return r

    def admin(self, verb, path, body=None):
        b = json.dumps(body).encode() if body is not None else b""
        return self.raw(verb, "/admin/v1/" + path, b, {"Authorization": "Bearer " + TOKEN})

    def account(self, deposits=None, **kw):
        body = {"deposits": deposits or {"XBt": 100_000_000, "USDt": 1_000_000_000_000}}
        body.update(kw)
        st, _, a = self.admin("POST", "accounts", body)
        check(st == 200 and a.get("apiKey") and a.get("apiSecret"), f"create account: {st} {a}")
        return (self.client_class or Client)(self, a)

    def audit(self):
        """The money audit, which must be exact; returns the whole report."""
        st, _, a = self.admin("GET", "audit")
        check(st == 200 and a["ok"] is True and a["report"] == "", f"audit: {st} {a}")
        for c in a["currencies"]:
            check(c["difference"] == 0 and c["total"] == c["expected"], f"audit {c['currency']}: {c}")
        return a


class Client:
    """An account's API key, signing every request as BitMEX documents."""

    def __init__(self, srv, a):
        self.srv, self.account, self.key, self.secret = srv, a["account"], a["apiKey"], a["apiSecret"]

    def req(self, verb, path, body=None, params=None, expires=None, secret=None, raw_body=None):
        target = "/api/v1/" + path + (("?" + qs(params)) if params else "")
        b = raw_body if raw_body is not None else (json.dumps(body, separators=(",", ":")).encode() if body is not None else b"")
        exp = str(expires if expires is not None else int(time.time()) + 60)
        sig = hmac.new((secret or self.secret).encode(), (verb + target + exp).encode() + b, hashlib.sha256).hexdigest()
        h = {"api-key": self.key, "api-expires": exp, "api-signature": sig}
        if b:
            h["Content-Type"] = "application/json"
        return self.srv.raw(verb, target, b, h)

    def ok(self, verb, path, body=None, params=None):
        st, h, r = self.req(verb, path, body, params)
        check(st == 200, f"{verb} {path} {body or params}: {st} {r}")
        return r
