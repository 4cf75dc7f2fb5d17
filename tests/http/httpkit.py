"""
httpkit.py - what the HTTP tests share: start perpsim on a free port and
stop it, requests on one keep-alive connection, the admin API, BitMEX's
request signing (HMAC-SHA256 over verb + path + expires + body), and a
check counter that ends the run on the first failure.
"""
import atexit
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

    def __init__(self, binary, *args, market=False, command=None, start_timeout=20):
        """command: what comes before the server's flags (default: the
        binary; `[binary, "backtest", "--serve", ...]` for a served backtest);
        start_timeout: seconds until it listens (a recovery replays first)."""
        quiet_market = [] if market else ["--no-market"]
        self.p = subprocess.Popen([*(command or [binary]), "--listen", "127.0.0.1:0", "--admin-token", TOKEN, "--no-demo",
                                   *quiet_market, *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # A test that fails (sys.exit in fail) leaves no server behind.
        atexit.register(lambda p=self.p: p.poll() is None and p.kill())
        deadline = time.time() + start_timeout
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


class RawWebSocket:
    """A minimal RFC 6455 client over a plain socket (the standard library
    has none): the handshake, masked text frames out, frames in. Enough to
    tell a close frame from a dropped connection."""

    def __init__(self, port, target="/realtime", timeout=5):
        import base64
        import os
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])

    def send_text(self, text):
        import os
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the connection ended")
            self.buf += chunk

    def recv_frame(self):
        """(opcode, payload); EOFError when the connection ends, socket.timeout."""
        self._need(2)
        op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        at = 2
        if n == 126:
            self._need(4)
            n, at = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self._need(10)
            n, at = int.from_bytes(self.buf[2:10], "big"), 10
        self._need(at + n)
        payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
        return op, payload

    def close(self):
        self.sock.close()
