#!/usr/bin/env python3
"""30 dht-node processes on 127.0.0.1 join one network; for 50 random targets,
`dht-lookup --bootstrap <random node>` must return exactly the k closest node
IDs, computed by XOR from each node's own `dht-ctl status --json`.

Prints the mean and max rounds, queries and elapsed ms of the lookups.
Every node is stopped by PID in a finally block: SIGTERM, then SIGKILL.
Starting nodes and reading their ready lines is kmtest.py's job.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import kmtest

NODES = 30
TARGETS = 50
K = 8
CONVERGE_TIMEOUT = 30.0
LOOKUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
PARALLEL_LOOKUPS = 4
SANITIZER_MARKS = ("Sanitizer", "runtime error:")


def stop_all(nodes):
    """SIGTERM every node, then SIGKILL whatever is still running."""
    for n in nodes:
        if n.proc.poll() is None:
            n.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    bad = []
    for n in nodes:
        try:
            n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()
            bad.append("node %s did not stop on SIGTERM" % n.port)
            continue
        err = n.stderr()
        if n.proc.returncode != 0 or any(m in err for m in SANITIZER_MARKS):
            bad.append("node %s exited %d:\n%s" % (n.port, n.proc.returncode,
                                                     err[-3000:]))
    return bad


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


def converged(cluster, nodes, ids):
    """Every node's table holds its own k closest: then any lookup, from
    anywhere, can walk to the true closest set."""
    missing = 0
    for n in nodes:
        known = {e["id"] for e in ctl(cluster, n, "table")}
        want = xor_closest(n.id, [i for i in ids if i != n.id], K)
        missing += len(set(want) - known)
    return missing


def wait_converged(cluster, nodes):
    start = time.monotonic()
    ids = []
    while True:
        statuses = [ctl(cluster, n, "status") for n in nodes]
        ids = [s["id"] for s in statuses]
        sizes = [s["routing_table_size"] for s in statuses]
        missing = converged(cluster, nodes, ids) if min(sizes) >= K else None
        elapsed = time.monotonic() - start
        print("converging: %.1f s, table sizes min=%d max=%d, "
              "closest-k entries missing=%s" % (elapsed, min(sizes),
                                                max(sizes), missing),
              flush=True)
        if missing == 0:
            return ids
        if elapsed > CONVERGE_TIMEOUT and missing is not None:
            # Lookups may still find every node; they are the real test.
            print("not fully converged after %.0f s; looking up anyway"
                  % CONVERGE_TIMEOUT, flush=True)
            return ids
        if elapsed > 3 * CONVERGE_TIMEOUT:
            raise AssertionError("some routing table still holds fewer than "
                                 "%d nodes after %.0f s" % (K, elapsed))
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
            failures += stop_all(cluster.nodes)
    for f in failures:
        print("FAIL: " + f, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
