"""Flood defence, end to end: 100,000 find_node queries from one source
(a socket on 127.0.0.2) against a daemon with the default rate limits,
while a client on 127.0.0.3 keeps running small lookups.  The lookups must
still succeed (>= 99%) and status must show the flooder banned."""

import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

FLOOD = 100000
LOOKUPS = 50

# Runs in its own process so the GIL does not slow the lookups down.
FLOODER = r"""
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
s.setblocking(False)
tail = b"6:target20:" + b"T" * 20 + b"e1:q9:find_node1:t4:"
head = b"d1:ad2:id20:" + b"F" * 20
answered, last, t0 = 0, 0.0, time.monotonic()
def drain():
    global answered, last
    while True:
        try:
            s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        answered += 1
        last = time.monotonic() - t0
for i in range(n):
    pkt = head + tail + i.to_bytes(4, "big") + b"1:y1:qe"
    while True:
        try:
            s.sendto(pkt, ("127.0.0.1", port))
            break
        except (BlockingIOError, InterruptedError):
            drain()
    if i % 64 == 0:
        drain()
end = time.monotonic()
# Every late answer is counted: read until none has come for 1 s.
s.settimeout(1.0)
try:
    while True:
        s.recv(65536)
        answered += 1
        last = time.monotonic() - t0
except socket.timeout:
    pass
print(answered, "%.3f" % (end - t0), "%.3f" % last)
"""


def query_from(sock, port, target, tid, timeout=2.0):
    """One find_node from sock; the compact nodes of the reply, or None."""
    q = kmtest.bencode({b"t": tid, b"y": b"q", b"q": b"find_node", b"ro": 1,
                        b"a": {b"id": kmtest.random_id(), b"target": target}})
    sock.sendto(q, ("127.0.0.1", port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            return None
        try:
            r = kmtest.bdecode(data)
        except ValueError:
            continue
        if r.get(b"t") == tid and r.get(b"y") == b"r":
            nodes = r[b"r"].get(b"nodes", b"")
            return [int.from_bytes(nodes[i + 24:i + 26], "big")
                    for i in range(0, len(nodes) - 25, 26)]
    return None


def lookup(sock, port, n):
    """A two-step lookup: ask the attacked node, then two of the nodes it
    names.  Succeeds if the attacked node answers and so does one other."""
    target = kmtest.random_id()
    ports = query_from(sock, port, target, b"a%03d" % n)
    if not ports:
        return False
    others = [p for p in ports if p != port][:2]
    return any(query_from(sock, p, target, b"b%03d%d" % (n, i)) is not None
               for i, p in enumerate(others))


def test_flooder_is_banned_and_lookups_still_succeed(c):
    seed = c.start(seed=True)
    peers = [c.start(bootstrap=[seed]) for _ in range(5)]
    kmtest.wait_until(lambda: c.ctl(seed, "--json", "status")
                      ["routing_table_size"] >= 5, timeout=30,
                      what="the seed to know its peers")
    legit = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    legit.bind(("127.0.0.3", 0))
    flood = subprocess.Popen([sys.executable, "-c", FLOODER, str(seed.port),
                              str(FLOOD)], stdout=subprocess.PIPE, text=True)
    ok, done = [0], threading.Event()

    def run_lookups():
        for n in range(LOOKUPS):
            ok[0] += lookup(legit, seed.port, n)
            time.sleep(0.1)
        done.set()

    try:
        t = threading.Thread(target=run_lookups)
        t.start()
        out, _ = flood.communicate(timeout=120)
        t.join(120)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait(10)
        legit.close()
    assert done.is_set()
    answered, secs, last = out.split()
    st = c.ctl(seed, "--json", "status")["limits"]["rate"]
    pct = 100.0 * ok[0] / LOOKUPS
    print("flood: %d queries in %s s, %s answered (last reply at +%s s); "
          "limited %d, dropped while banned %d, bans %d, banned now %d; "
          "lookups ok %d/%d (%.0f%%)" %
          (FLOOD, secs, answered, last, st["limited"], st["banned_drops"],
           st["bans_total"], st["banned_now"], ok[0], LOOKUPS, pct))
    assert pct >= 99.0
    assert st["bans_total"] >= 1 and st["banned_now"] >= 1
    assert int(answered) < 1000, "the flooder got far too many answers"
    for p in peers + [seed]:
        assert p.alive()


def test_defence_options_show_in_status(c):
    n = c.start(seed=True, extra=["--strict-subnets", "--bep42-strict",
                                  "--rate-limit", "5", "--rate-burst", "7",
                                  "--ban-time", "30"])
    lim = c.ctl(n, "--json", "status")["limits"]
    assert lim["subnets"]["strict"] is True and lim["bep42"]["strict"] is True
    assert lim["rate"]["qps"] == 5 and lim["rate"]["burst"] == 7
    assert lim["rate"]["ban_s"] == 30
    assert lim["transactions"]["limit"] == 2048


def test_bad_defence_options_are_refused():
    for args in (["--rate-limit", "-1"], ["--rate-burst", "0"],
                 ["--ban-time", "x"], ["--save-interval-ms", "0"]):
        r = subprocess.run([kmtest.bin_path("dht-node"), "--seed"] + args,
                           capture_output=True, timeout=10)
        assert r.returncode != 0 and r.stderr, args


def main():
    random.seed(7)
    with kmtest.Cluster() as c:
        test_flooder_is_banned_and_lookups_still_succeed(c)
    print("ok test_flooder_is_banned_and_lookups_still_succeed")
    with kmtest.Cluster() as c:
        test_defence_options_show_in_status(c)
    print("ok test_defence_options_show_in_status")
    test_bad_defence_options_are_refused()
    print("ok test_bad_defence_options_are_refused")


if __name__ == "__main__":
    main()
