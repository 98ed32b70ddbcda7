#!/usr/bin/env python3
"""A flash crowd: a seed, then 29 dht-node processes started at once on
127.0.0.1, all bootstrapping from the seed.  Within 2 s of the start every
one of the 30 must hold at least k (8) good contacts -- nodes that have
answered a query of its own (BEP 5) -- in its routing table.

The issue reported early joiners with 2 known nodes after 3 s.  On this
machine the code before the flash-crowd change passed this test (0.2-1.8 s
in release and ASan builds): the overlay's PEER_LIST and the 1 s
maintenance pings filled the tables in time.  Nodes that only queried us
are not good until they answer a query of ours, which the self-lookups
after a crowd now ask for sooner.

Prints how long the crowd took; keeps polling past the deadline (up to
POLL_LIMIT) so that a failure says how far off it was.
"""
import subprocess
import time

import kmtest

NODES = 30
K = 8
DEADLINE_S = 2.0
POLL_LIMIT_S = 15.0


def start_together(cluster, seed, count):
    """Starts count nodes bootstrapping from seed without waiting for any
    of them in between; returns them once each has printed its ready line."""
    procs = []
    for _ in range(count):
        state = cluster.new_state_dir()
        log = "%s.log" % state
        args = [kmtest.bin_path("dht-node"), "--port", "0", "--bind",
                kmtest.HOST, "--no-lan", "--log-level", cluster.log_level,
                "--bootstrap", seed.addr(), "--state-dir", state]
        with open(log, "wb") as errf:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf,
                                    stdin=subprocess.DEVNULL)
        node = kmtest.Node(proc, state, log)
        cluster.nodes.append(node)  # stopped by the cluster, by PID
        procs.append(node)
    for node in procs:
        f = kmtest.read_ready(node.proc)
        node.id, node.port = f["id"], int(f["port"])
        node.control = f.get("control")
    return procs


def good_contacts(node):
    return sum(1 for e in kmtest.control(node, "table")
               if e["state"] == "good")


def poll_until_all_good(nodes, t0):
    """Seconds from t0 until every node held >= K good contacts, or None;
    and the good counts of the last poll."""
    counts = {}
    while time.monotonic() - t0 < POLL_LIMIT_S:
        counts = {n.port: good_contacts(n) for n in nodes}
        if min(counts.values()) >= K:
            return time.monotonic() - t0, counts
        time.sleep(0.05)
    return None, counts


def main():
    with kmtest.Cluster() as c:
        seed = c.start(seed=True)
        t0 = time.monotonic()
        nodes = [seed] + start_together(c, seed, NODES - 1)
        started = time.monotonic() - t0
        took, counts = poll_until_all_good(nodes, t0)
        print("%d nodes started in %.2f s; good contacts per node: min %d, "
              "max %d" % (NODES, started, min(counts.values()),
                          max(counts.values())))
        if took is None:
            short = sorted(v for v in counts.values() if v < K)
            raise SystemExit("FAIL: after %.0f s, %d nodes still held fewer "
                             "than %d good contacts: %s" %
                             (POLL_LIMIT_S, len(short), K, short))
        print("every node held >= %d good contacts %.2f s after the start"
              % (K, took))
        if took > DEADLINE_S:
            raise SystemExit("FAIL: took %.2f s, more than %.1f s" %
                             (took, DEADLINE_S))
        print("ok: a flash crowd of %d fills every table within %.1f s"
              % (NODES, DEADLINE_S))


if __name__ == "__main__":
    main()
