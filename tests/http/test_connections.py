#!/usr/bin/env python3
"""Connections a misbehaving client holds (issue 19, item 2), over raw
sockets against the real server with short deadlines:

- one address holding more connections than its cap: the extra ones are
  closed at once, and a client from another address (127.0.0.2) is served;
- a client trickling a request's headers a byte at a time (slowloris: each
  byte resets libmicrohttpd's idle timeout) is closed at the header
  deadline; one sending a body too slowly at the body deadline;
- a connection that sends nothing, or nothing after its last reply, is
  closed at the idle deadline (BitMEX's keep-alive: 90 s by default);
- meanwhile a normal client is served, and /metrics counts the closes;
- 32 connections opened at once are spread evenly over the HTTP threads.
"""
import socket
import sys
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/perpsim"
import httpkit
from httpkit import Server as KitServer, check

CAP = 40


def connect(port, src="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def closed_within(s, seconds, trickle=None):
    """Whether the server closes s within seconds (sending trickle's next
    byte every 0.3 s meanwhile, when given)."""
    deadline = time.time() + seconds
    s.settimeout(0.3)
    i = 0
    while time.time() < deadline:
        if trickle is not None:
            try:
                s.sendall(trickle[i % len(trickle):i % len(trickle) + 1])
            except OSError:
                return True
            i += 1
        try:
            d = s.recv(4096)
            if d == b"":
                return True
            if b"HTTP/1.1" in d and trickle is None:
                continue  # a reply (e.g. a 408) before the close
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def served(port, src):
    s = connect(port, src)
    try:
        s.sendall(b"GET /api/v1/announcement HTTP/1.1\r\nHost: x\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        s.close()


def metric(srv, name):
    """{labels: value} of a /metrics family ("" when it has no labels)."""
    st, _, text = srv.raw("GET", "/metrics")
    out = {}
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            key, value = line.rsplit(" ", 1)
            out[key[len(name):]] = int(value)
    return out


def spread(threads):
    """32 keep-alive connections opened at once, as a benchmark client opens
    them, land evenly on the HTTP threads (libmicrohttpd's own pool let one
    thread take a whole burst); each is served; closed, they leave."""
    srv = KitServer(BIN, "--http-threads", str(threads))
    try:
        socks = [connect(srv.port) for _ in range(32)]
        for s in socks:  # each one answers: they are all being served
            s.sendall(b"GET /api/v1/announcement HTTP/1.1\r\nHost: x\r\n\r\n")
        check(all(s.recv(64).startswith(b"HTTP/1.1 200") for s in socks), "each connection served")
        per = metric(srv, "perpsim_http_thread_connections")
        counts = sorted(per.values())
        # the 32 and the kit's own keep-alive connection
        check(len(counts) == threads and sum(counts) == 33 and counts[-1] - counts[0] <= 1,
              f"33 connections over {threads} HTTP threads, evenly: {per}")
        for s in socks:
            s.close()
        deadline = time.time() + 5
        while sum(metric(srv, "perpsim_http_thread_connections").values()) != 1 and time.time() < deadline:
            time.sleep(0.05)
        check(sum(metric(srv, "perpsim_http_thread_connections").values()) == 1, "closed ones leave their thread")
    finally:
        srv.stop()


def main():
    spread(2)
    spread(3)
    srv = KitServer(BIN, "--http-max-per-ip", str(CAP), "--http-idle-s", "2", "--http-header-s", "2",
                    "--http-body-s", "2")
    port = srv.port
    try:
        # Over the cap from one address: the extra ones are closed at once.
        held = [connect(port) for _ in range(CAP)]
        extra = [connect(port) for _ in range(10)]
        shut = sum(closed_within(s, 1.0) for s in extra)
        check(shut == 10, f"connections past the per-address cap of {CAP}: {shut} of 10 closed")
        check(served(port, "127.0.0.2"), "another address is served while one holds its cap")
        for s in held + extra:
            s.close()
        time.sleep(0.3)
        srv.conn.close()  # the kit's own was past the cap too
        refused = metric(srv, "perpsim_http_connections_refused_total")[""]
        check(refused >= 10, f"counted as refused: {refused}")

        # Slowloris: the request line, then a header a byte every 0.3 s.
        t0 = time.time()
        slow = connect(port, "127.0.0.2")
        slow.sendall(b"GET /api/v1/announcement HTTP/1.1\r\nHost: x\r\n")
        check(closed_within(slow, 6, trickle=b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"),
              "a client trickling its headers is closed at the header deadline")
        took = time.time() - t0
        check(2 <= took <= 5, f"closed after {took:.1f} s (deadline 2 s, checked every second)")
        check(served(port, "127.0.0.3"), "a normal client is served meanwhile")

        # A body sent too slowly.
        body = connect(port, "127.0.0.2")
        body.sendall(b"POST /api/v1/order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n{")
        check(closed_within(body, 6, trickle=b"aaaa"), "a body trickled past the body deadline is closed")

        # Idle: nothing at all, and nothing after a reply.
        idle = connect(port, "127.0.0.2")
        check(closed_within(idle, 5), "a connection that sends nothing is closed at the idle deadline")
        ka = connect(port, "127.0.0.2")
        ka.sendall(b"GET /api/v1/announcement HTTP/1.1\r\nHost: x\r\n\r\n")
        check(ka.recv(64).startswith(b"HTTP/1.1 200"), "keep-alive request")
        check(closed_within(ka, 5), "a keep-alive connection idle past the deadline is closed")

        srv.conn.close()
        st, _, text = srv.raw("GET", "/metrics")
        n = int(next(l.split()[1] for l in text.splitlines()
                     if l.startswith("perpsim_http_connections_deadline_total")))
        check(n >= 2, f"deadline closes counted (the slow headers and body; idle ones libmicrohttpd closes itself): {n}")
    finally:
        srv.stop()
    print(f"connections: all {httpkit.checks} checks passed")


if __name__ == "__main__":
    main()
