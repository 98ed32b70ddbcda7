#!/usr/bin/env python3
"""A neighbour that stops reading is disconnected; memory does not grow.

Node B is a real dht-node that is frozen with SIGSTOP after it became A's
neighbour, so it reads nothing (and answers no PING: the ping interval is
set to a minute so the heartbeat cannot be what drops it).  A then
broadcasts far more than the kernel's socket buffers hold.  A must close the
link once its own per-connection write queue (256 KiB) is full, log it, and
keep serving.  Every node is stopped by PID (kmtest.Cluster), also on
failure.
"""
import base64
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

PAYLOAD = base64.b64encode(os.urandom(2900)).decode()
MESSAGES = 10000   # ~29 MB: well past loopback's socket buffers


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def broadcast_many(node, count):
    """Pipelines broadcast requests over one control connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(node.control)
        line = ("broadcast %s\n" % PAYLOAD).encode()
        answered = 0
        for i in range(count):
            s.sendall(line)
            if i % 50 == 49 or i == count - 1:
                buf = b""
                while buf.count(b"\n") < (i + 1) - answered:
                    buf += s.recv(1 << 20)
                answered = i + 1


def main():
    # Under ASan freed memory sits in a quarantine (256 MiB by default),
    # which would read as growth; keep it small so RSS means something.
    # Plain builds ignore the variable.
    os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                  ":quarantine_size_mb=8").lstrip(":")
    opts = ["--ping-interval", "60000"]
    with kmtest.Cluster() as c:
        a = c.start(seed=True, extra=opts)
        b = c.start(bootstrap=[a], extra=opts)
        kmtest.wait_linked(a, b)
        os.kill(b.pid, signal.SIGSTOP)
        try:
            rss_before = rss_kib(a.pid)
            t0 = time.monotonic()
            broadcast_many(a, MESSAGES)
            kmtest.wait_until(lambda: not any(p["id"] == b.id for p in
                                              kmtest.control(a, "peers")),
                              timeout=30, what="A to drop its frozen neighbour")
            took = time.monotonic() - t0
            rss_after = rss_kib(a.pid)
        finally:
            os.kill(b.pid, signal.SIGCONT)
        assert "reads too slowly" in a.stderr(), a.stderr()[-2000:]
        assert kmtest.krpc_ping(a.port) is not None, "A stopped answering"
        # The broadcasts themselves are cached (16 MiB cap) and the link's
        # queue is capped: growth is bounded well below what was sent.
        growth = (rss_after - rss_before) / 1024
        assert growth < 64, "A grew by %.0f MiB" % growth
        print("slow reader: dropped after %.1f s of %d x 2900-byte "
              "broadcasts (%.0f MB sent); A grew by %.1f MiB" %
              (took, MESSAGES, MESSAGES * 2.9 / 1000, growth))
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
