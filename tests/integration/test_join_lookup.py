#!/usr/bin/env python3
"""30 dht-node processes on 127.0.0.1 join one network; for 50 random targets,
`dht-lookup --bootstrap <random node>` must return exactly the k closest node
IDs, computed by XOR from each node's own `dht-ctl status --json`.

Prints the mean and max rounds, queries and elapsed ms of the lookups.
Every node is stopped by PID in a finally block: SIGTERM, then SIGKILL
(kmtest.stop_and_scan, which also reads every log for sanitizer reports).
Starting nodes and reading their ready lines is kmtest.py's job.
"""
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import kmtest

NODES = 30
TARGETS = 50
K = 8
CONVERGE_TIMEOUT = 60.0
LOOKUP_TIMEOUT = 60.0
PARALLEL_LOOKUPS = 4
SANITIZER_MARKS = kmtest.SANITIZER_MARKS


def xor_closest(target, ids, k):
    t = int(target, 16)
    return sorted(ids, key=lambda i: int(i, 16) ^ t)[:k]


def start_network(cluster, rng):
    """A seed, then nodes that each join through a random earlier one."""
    nodes = [cluster.start(seed=True)]
    while len(nodes) < NODES:
        nodes.append(cluster.start(bootstrap=[rng.choice(nodes)]))
    return nodes


def ctl(cluster, node, *args):
    return cluster.ctl(node, *args, "--json", timeout=20)


def known_to_others(cluster, nodes):
    """How many nodes appear in some other node's routing table."""
    known = set()
    for n in nodes:
        known |= {e["id"] for e in ctl(cluster, n, "table")} - {n.id}
    return len(known & {n.id for n in nodes})


def wait_converged(cluster, nodes):
    """Converged: every table holds at least k nodes, every node is in
    someone else's table, and every node is idle (kmtest.dht_idle: its
    joins are over).  Kademlia promises no more than that (a full bucket
    may leave out one of a node's k closest); the lookups check the rest."""
    start = time.monotonic()
    while True:
        statuses = [ctl(cluster, n, "status") for n in nodes]
        sizes = [s["routing_table_size"] for s in statuses]
        known = known_to_others(cluster, nodes)
        elapsed = time.monotonic() - start
        print("converging: %.1f s, table sizes %d..%d, %d/%d nodes known "
              "to others" % (elapsed, min(sizes), max(sizes), known,
                             len(nodes)), flush=True)
        if min(sizes) >= K and known == len(nodes) and \
                all(kmtest.dht_idle(s) for s in statuses):
            return [s["id"] for s in statuses]
        if elapsed > CONVERGE_TIMEOUT:
            raise AssertionError("routing tables did not converge in %.0f s"
                                 % CONVERGE_TIMEOUT)
        time.sleep(0.5)


def lookup(node, target):
    res = subprocess.run([kmtest.bin_path("dht-lookup"), "--bootstrap",
                          node.addr(), "-k", str(K), "--json",
                          target], capture_output=True, text=True,
                         timeout=LOOKUP_TIMEOUT)
    if any(m in res.stderr for m in SANITIZER_MARKS):
        print(res.stderr, flush=True)
    assert res.returncode == 0, ("dht-lookup exit %d: %s"
                                 % (res.returncode, res.stderr))
    return json.loads(res.stdout)


def check_lookups(nodes, ids, rng):
    targets = ["%040x" % rng.getrandbits(160) for _ in range(TARGETS)]
    via = [rng.choice(nodes) for _ in targets]
    with ThreadPoolExecutor(PARALLEL_LOOKUPS) as pool:
        results = list(pool.map(lookup, via, targets))
    failures = []
    for target, node, r in zip(targets, via, results):
        got = [n["id"] for n in r["nodes"]]
        want = xor_closest(target, ids, K)
        if got != want:
            failures.append("target %s via port %d:\n  got  %s\n  want %s"
                            % (target, node.port, got, want))
    return results, failures


def print_stats(results):
    for key in ("rounds", "queries", "elapsed_ms"):
        vals = [r[key] for r in results]
        print("lookup %-10s mean=%.1f max=%d" % (key, sum(vals) / len(vals),
                                                 max(vals)), flush=True)


def main():
    seed = int(os.environ.get("KM_TEST_SEED", random.randrange(1 << 30)))
    print("seed=%d (set KM_TEST_SEED to repeat)" % seed, flush=True)
    rng = random.Random(seed)
    failures = []
    with kmtest.Cluster() as cluster:
        try:
            nodes = start_network(cluster, rng)
            print("started %d nodes" % len(nodes), flush=True)
            ids = wait_converged(cluster, nodes)
            results, failures = check_lookups(nodes, ids, rng)
            print_stats(results)
            print("%d/%d lookups returned exactly the true %d closest"
                  % (TARGETS - len(failures), TARGETS, K), flush=True)
        finally:
            # Every node the cluster started, even if start_network failed.
            failures += kmtest.stop_and_scan(cluster.nodes)
    for f in failures:
        print("FAIL: " + f, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
