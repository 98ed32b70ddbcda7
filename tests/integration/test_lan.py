#!/usr/bin/env python3
"""LAN discovery: two nodes started with no seed and no bootstrap, on one
LAN, find each other through the multicast announce, look each other up and
exchange broadcasts.

The LAN is a network namespace this test creates (named with its PID and
deleted in a finally block) holding only lo and one veth pair with both ends
inside it, and a multicast route over the veth: announces cannot leave it.
It skips itself, with a reason, only where namespaces cannot be made (not
root, no `ip netns`)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402
import netns  # noqa: E402


def build_lan(lab):
    ns = lab.ns("l")
    a, _ = lab.link(ns, "10.77.0.1/24", ns, "10.77.0.2/24")
    lab.run(ns, "ip", "route", "add", "224.0.0.0/4", "dev", a)
    links = lab.run(ns, "ip", "-o", "link", "show").splitlines()
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in links)
    assert len(names) == 3 and "lo" in names, \
        "the LAN namespace holds only lo and its veth pair: %r" % names
    return ns


def test_two_nodes_with_nothing_to_join_find_each_other_on_a_lan(c, lab):
    ns = build_lan(lab)
    t0 = time.monotonic()
    opts = ["--ping-interval", "500"]
    a = c.start(prefix=lab.prefix_cmd(ns), bind=("0.0.0.0",), lan=True, extra=opts)
    b = c.start(prefix=lab.prefix_cmd(ns), bind=("0.0.0.0",), lan=True, extra=opts)

    def linked():
        return all(any(p["id"] == m.id for p in kmtest.control(n, "peers"))
                   for n, m in ((a, b), (b, a)))
    kmtest.wait_until(linked, timeout=30, what="a link between the two nodes")
    found = time.monotonic() - t0
    r = kmtest.control(a, "lookup %s" % b.id, timeout=30)
    assert r["nodes"] and r["nodes"][0]["id"] == b.id, r
    subs = kmtest.subscribe_all([a, b])
    try:
        msg_id = c.ctl(a, "broadcast", "hello over the LAN").strip()
        kmtest.wait_until(lambda: subs[1].count(msg_id) == 1, timeout=20,
                          what="the broadcast on the other node")
    finally:
        for s in subs:
            s.stop()
    print("LAN: two nodes with no bootstrap linked in %.1f s; lookup found "
          "the other; broadcast delivered" % found)


def main():
    return netns.main(globals(), "lan", "LAN discovery test", None)


if __name__ == "__main__":
    sys.exit(main())
