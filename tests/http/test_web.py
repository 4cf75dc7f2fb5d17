#!/usr/bin/env python3
"""The web page's files as the server serves them (api/web.c): from a
directory read once at start, only the regular files found in it.

- / is index.html (text/html, revalidated), a hashed asset is cached for a
  year with its content type, a HEAD answers like the GET without a body;
- nothing else is reachable: a link out of the directory, a hidden file,
  "..", a directory name, an unknown file: 404; a file written after the
  start is not served;
- a --web-dir that cannot be loaded (missing, no index.html) stops start-up
  with exit status 2 and a message; without a page, / says how to build it.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import http.client

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import httpkit
from httpkit import Server, check


def fetch(port, verb, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(verb, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def main():
    d = tempfile.mkdtemp(prefix="perpsim-web-")
    try:
        os.makedirs(f"{d}/assets")
        index = b"<!doctype html><title>t</title><h1>page</h1>"
        js = b"console.log('hello');\n" * 100
        open(f"{d}/index.html", "wb").write(index)
        open(f"{d}/assets/index-AbC_12-z.js", "wb").write(js)
        open(f"{d}/assets/logo.svg", "wb").write(b"<svg/>")
        open(f"{d}/web-manifest.json", "wb").write(b"{}")  # hash-shaped, but not a built asset
        open(f"{d}/.secret", "wb").write(b"hidden")
        os.symlink("/etc/hostname", f"{d}/link")
        s = Server(BIN, "--web-dir", d)
        st, h, b = fetch(s.port, "GET", "/")
        check(st == 200 and b == index and h["content-type"].startswith("text/html") and h["cache-control"] == "no-cache"
              and "default-src 'self'" in h.get("content-security-policy", "") and h["x-content-type-options"] == "nosniff",
              f"/: {st} {h}")
        st, h, b = fetch(s.port, "GET", "/web-manifest.json")
        check(st == 200 and h["cache-control"] == "no-cache", f"only /assets/ is immutable: {st} {h}")
        st, h, b = fetch(s.port, "GET", "/index.html")
        check(st == 200 and b == index, f"/index.html: {st}")
        st, h, b = fetch(s.port, "GET", "/assets/index-AbC_12-z.js")
        check(st == 200 and b == js and h["content-type"].startswith("text/javascript")
              and "immutable" in h["cache-control"] and h["x-content-type-options"] == "nosniff"
              and "content-security-policy" not in h, f"asset: {st} {h}")
        st, h, b = fetch(s.port, "HEAD", "/assets/index-AbC_12-z.js")
        check(st == 200 and b == b"" and h["content-length"] == str(len(js)), f"HEAD: {st} {h}")
        st, h, b = fetch(s.port, "GET", "/assets/logo.svg")
        check(st == 200 and h["content-type"] == "image/svg+xml" and h["cache-control"] == "no-cache", f"svg: {st} {h}")
        open(f"{d}/late.html", "wb").write(b"late")
        for path in ("/link", "/.secret", "/../etc/hostname", "/assets/../index.html", "/assets", "/late.html",
                     "/nope.js", "/index.html%00", "//index.html"):
            st, h, b = fetch(s.port, "GET", path)
            check(st == 404, f"{path}: {st} {b[:80]}")
        check(s.get("/api/v1/instrument?symbol=XBTUSD")[0]["symbol"] == "XBTUSD", "the API beside it")
        check("web page     http://127.0.0.1:" in s.banner, f"the banner names the page: {s.banner}")
        s.stop()

        # No page: / says how to build one; the API is unaffected.
        s = Server(BIN, "--web-dir", "")
        st, h, b = fetch(s.port, "GET", "/")
        check(st == 404 and h["content-type"].startswith("text/html") and b"make run" in b, f"no page: {st} {b}")
        s.stop()

        # A directory given that cannot be loaded stops start-up.
        for bad in (f"{d}/missing", f"{d}/assets"):
            r = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--web-dir", bad, "--no-market", "--no-demo"],
                               capture_output=True, text=True, timeout=30)
            check(r.returncode == 2 and "web page" in r.stderr, f"--web-dir {bad}: {r.returncode} {r.stderr}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"web: {httpkit.checks} checks passed")


if __name__ == "__main__":
    main()
