#!/usr/bin/env python3
"""Reachability right from the first minute: public nodes never declare
themselves unreachable.

30 dht-node processes on 127.0.0.1 with the default options (no --bind,
LAN discovery on), each joined with --bootstrap to one seed.  They run in a
network namespace this test creates (named with its PID, deleted in a
finally block) holding lo and one veth pair with 192.0.2.2/24 (TEST-NET-1,
classed global) on one end and a multicast route over it: like a host with
a global LAN address, the nodes also find each other through the multicast
announce and link over 192.0.2.2, a wider scope than loopback and one IP
for all 30, where the per-IP cap applies; the announces cannot leave the
namespace, so concurrent runs do not mix.  After ~15 s no node may report
`read_only` or `reachability: private`, and `reachability` must agree with
`external_addr` as docs/CONTROL.md says.  Five rounds, each with fresh
nodes.  Before the fix 3, 5, 4, 4 and 2 of 30 nodes went private and
read-only in five rounds, and no node had an external address although
most said `public`.  It
skips itself only where namespaces cannot be made (not root, no `ip
netns`).

KM_REACH_NODES and KM_REACH_ROUNDS override the sizes (for reproducing by
hand); the verdict counts of each round are printed."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402
import netns  # noqa: E402

NODES = int(os.environ.get("KM_REACH_NODES", "30"))
ROUNDS = int(os.environ.get("KM_REACH_ROUNDS", "5"))
SETTLE_S = 15


def build_host(lab):
    """A namespace like a host on a LAN with a global address."""
    ns = lab.ns("r")
    a, _ = lab.link(ns, "192.0.2.2/24", ns, None)
    lab.run(ns, "ip", "route", "add", "224.0.0.0/4", "dev", a)
    return ns


def one_round(c, lab, r):
    ns = build_host(lab)
    # bind=() and lan=True: the daemon's defaults, wildcard listening
    # addresses and LAN discovery on.
    pre = lab.prefix_cmd(ns)
    seed = c.start(seed=True, bind=(), lan=True, prefix=pre)
    nodes = [seed]
    for _ in range(NODES - 1):
        nodes.append(c.start(bootstrap=["127.0.0.1:%d" % seed.port], bind=(),
                             lan=True, prefix=pre))
    time.sleep(SETTLE_S)
    bad, counts = [], {}
    # What made them public: dial-backs, inbound links, KRPC queries.
    how = dict.fromkeys(("dialbacks_ok", "inbound_proofs", "krpc_proofs"), 0)
    for n in nodes:
        assert n.alive(), "a node died"
        st = kmtest.control(n, "status")
        reach = st["reachability"]
        counts[reach] = counts.get(reach, 0) + 1
        for k in how:
            how[k] += st["nat"][k]
        ro = st["read_only"]
        # The two fields agree: unknown exactly while no address is adopted.
        odd = (reach == "unknown") != (st["external_addr"] is None)
        if ro or reach == "private" or odd:
            bad.append((n.port, reach, st["external_addr"], st["nat"],
                        st["neighbours"]))
    print("round %d: %d nodes, %d read-only, private or contradicting; %s; "
          "proofs %s" % (r + 1, len(nodes), len(bad), counts, how))
    for b in bad:
        print("  port %d: %s external %s nat %s neighbours %s" % b)
    return len(bad)


def main():
    why = netns.skip_reason()
    if why:
        kmtest.skip("reachability test: %s" % why)
    t0 = time.monotonic()
    total = []
    for r in range(ROUNDS):
        lab = netns.Lab("rch")
        try:
            with kmtest.Cluster() as c:
                total.append(one_round(c, lab, r))
                for n in c.nodes:
                    assert n.stop() == 0
        finally:
            lab.close()
    print("read-only/private per round: %s (%.0f s)" %
          (total, time.monotonic() - t0))
    assert sum(total) == 0, "public nodes went private: %s" % total
    print("ok test_thirty_public_nodes_on_one_host_never_turn_private")
    return 0


if __name__ == "__main__":
    sys.exit(main())
