#!/usr/bin/env python3
"""IPv6 (BEP 32) on ::1, with real dht-node processes.

1. An IPv6-only network: 10 nodes with --bind ::1, joined through
   [::1]:PORT.  `dht-lookup --bootstrap [::1]:PORT` must return exactly the
   k closest of the 10 IDs.
2. A mixed network: dual-stack nodes (--bind 127.0.0.1 --bind ::1) joined
   over IPv4 or over IPv6, plus IPv4-only and IPv6-only nodes.  Each
   family's lookups (dht-lookup --family 4|6, through a bootstrap of either
   family, and `lookup ID ipv6` over a node's control socket) must return
   exactly the k closest nodes *of that family*.  Dual-stack nodes joined
   over one family fill their other table through `want` (n4 and n6).

Skips (exit 77 with a message) only if the host cannot bind ::1.
"""
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import kmtest

K = 8
TARGETS = 12
CONVERGE_TIMEOUT = float(os.environ.get("KM_CONVERGE", 60))
LOOKUP_TIMEOUT = 60.0
V4, V6 = kmtest.HOST, kmtest.HOST6
DUAL = (V4, V6)


def ctl(cluster, node, *args):
    return cluster.ctl(node, *args, "--json", timeout=20)


def xor_closest(target, ids, k=K):
    t = int(target, 16)
    return sorted(ids, key=lambda i: int(i, 16) ^ t)[:k]


def family_ids(nodes, v6):
    """IDs of the nodes that listen on the family (v6: True for IPv6)."""
    return [n.id for n in nodes if any((":" in h) == v6 for h in n.hosts)]


def wait_converged(cluster, nodes):
    """Every node's table of each family it runs holds at least half of
    min(k, others of that family) nodes, and every node is idle
    (kmtest.dht_idle: its joins are over).  Kademlia promises no more (a node nobody's lookups pass
    by learns of few others); the lookups check the rest."""
    want = {}
    for v6, key in ((False, "routing_table_size4"), (True, "routing_table_size6")):
        count = len(family_ids(nodes, v6))
        for n in nodes:
            if any((":" in h) == v6 for h in n.hosts):
                want[(n.id, key)] = (min(K, count - 1) + 1) // 2
    start = time.monotonic()
    while True:
        sizes, idle = {}, True
        for n in nodes:
            st = ctl(cluster, n, "status")
            idle = idle and kmtest.dht_idle(st)
            for key in ("routing_table_size4", "routing_table_size6"):
                sizes[(n.id, key)] = st[key]
        short = [k for k, v in want.items() if sizes[k] < v]
        elapsed = time.monotonic() - start
        print("converging: %.1f s, %d tables short" % (elapsed, len(short)),
              flush=True)
        if not short and idle:
            return
        if elapsed > CONVERGE_TIMEOUT:
            for n in nodes:
                if any(k[0] == n.id for k in short):
                    print("short: %s %s bootstrap=%s table=%s" % (
                        n.id, n.hosts, getattr(n, "via", "-"),
                        [(e["id"][:8], e["addr"]) for e in ctl(cluster, n, "table")]))
            raise AssertionError("tables did not converge: %r" % [
                (k, sizes[k], want[k]) for k in short[:5]])
        time.sleep(0.5)


def run_lookup(args):
    res = subprocess.run([kmtest.bin_path("dht-lookup"), "-k", str(K),
                          "--json"] + list(args), capture_output=True,
                         text=True, timeout=LOOKUP_TIMEOUT)
    assert res.returncode == 0, ("dht-lookup %s: exit %d: %s"
                                 % (" ".join(args), res.returncode, res.stderr))
    return json.loads(res.stdout)


def check(label, jobs, failures):
    """jobs: (args, expected ids, expected family).  Runs them 4 at a time."""
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run_lookup, [j[0] for j in jobs]))
    bad = 0
    for (args, want, v6), r in zip(jobs, results):
        got = [n["id"] for n in r["nodes"]]
        fams = {n["addr"].startswith("[") for n in r["nodes"]}
        if got != want or fams - {v6}:
            bad += 1
            failures.append("%s: dht-lookup %s\n  got  %s\n  want %s"
                            % (label, " ".join(args), r["nodes"], want))
    print("%s: %d/%d lookups returned exactly the true %d closest"
          % (label, len(jobs) - bad, len(jobs), K), flush=True)


def ipv6_only(cluster, rng, failures):
    nodes = [cluster.start(seed=True, bind=(V6,))]
    while len(nodes) < 10:
        via = rng.choice(nodes)
        nodes.append(cluster.start(bind=(V6,), bootstrap=[via.addr(True)]))
    wait_converged(cluster, nodes)
    ids = [n.id for n in nodes]
    jobs = []
    for _ in range(TARGETS):
        t = "%040x" % rng.getrandbits(160)
        jobs.append((["--bootstrap", rng.choice(nodes).addr(True), t],
                     xor_closest(t, ids), True))
    check("ipv6-only, 10 nodes", jobs, failures)
    st = ctl(cluster, nodes[1], "status")
    assert st["families"] == ["ipv6"] and st["family"] == "ipv6", st
    table = ctl(cluster, nodes[1], "table")
    assert table and all(e["addr"].startswith("[::1]:") for e in table), table


def mixed(cluster, rng, failures):
    seed = cluster.start(seed=True, bind=DUAL)
    nodes = [seed]
    # Dual-stack nodes joined over IPv4 only or over IPv6 only, so that
    # their other table must fill through `want`.
    for i in range(6):
        nodes.append(cluster.start(bind=DUAL, bootstrap=[
            rng.choice(nodes).addr(ipv6=bool(i % 2))]))
    duals = list(nodes)
    for _ in range(3):
        nodes.append(cluster.start(bind=(V4,),
                                   bootstrap=[rng.choice(duals).addr(False)]))
    for _ in range(3):
        nodes.append(cluster.start(bind=(V6,),
                                   bootstrap=[rng.choice(duals).addr(True)]))
    wait_converged(cluster, nodes)
    ids4, ids6 = family_ids(nodes, False), family_ids(nodes, True)
    print("mixed: %d nodes, %d on IPv4, %d on IPv6"
          % (len(nodes), len(ids4), len(ids6)), flush=True)
    jobs = []
    for i in range(TARGETS):
        t = "%040x" % rng.getrandbits(160)
        via = rng.choice(duals)
        # Ask for one family through a bootstrap of the other, too.
        jobs.append((["--bootstrap", via.addr(ipv6=bool(i % 2)),
                      "--family", "4", t], xor_closest(t, ids4), False))
        jobs.append((["--bootstrap", via.addr(ipv6=not i % 2),
                      "--family", "6", t], xor_closest(t, ids6), True))
    for i in range(4):
        t = "%040x" % rng.getrandbits(160)
        via = rng.choice(duals)
        jobs.append((["--control", via.control, "--family", "6", t],
                     xor_closest(t, [x for x in ids6 if x != via.id]), True))
        jobs.append((["--control", via.control, "--family", "4", t],
                     xor_closest(t, [x for x in ids4 if x != via.id]), False))
    check("mixed dual-stack, %d nodes" % len(nodes), jobs, failures)


def main():
    if not kmtest.have_ipv6_loopback():
        kmtest.skip("this host cannot bind ::1 (no IPv6 loopback)")
    seed = int(os.environ.get("KM_TEST_SEED", random.randrange(1 << 30)))
    print("seed=%d (set KM_TEST_SEED to repeat)" % seed, flush=True)
    rng = random.Random(seed)
    failures = []
    for scenario in (ipv6_only, mixed):
        with kmtest.Cluster() as cluster:
            try:
                scenario(cluster, rng, failures)
            finally:
                failures += kmtest.stop_and_scan(cluster.nodes)
    for f in failures:
        print("FAIL: " + f, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
