#!/usr/bin/env python3
"""40 dht-node processes with --max-out 4 --max-in 8: bounded neighbour
sets, broadcast to everyone, and recovery from churn.

- Every node's neighbour counts are sampled all through the test (a
  background thread polls `status`); out <= 4 and in <= 8 must always hold.
- 20 broadcasts from random origins: every node delivers each exactly once
  (dht-ctl subscribe on every node); the payload copies each node received
  (delivered + duplicates counters) stay below 2 per message.  Prints the
  copies per node and the hops.
- SIGKILL 25% of the nodes: within 60 s the survivors' links re-form (only
  survivors as neighbours, every survivor dialled up to --max-out again,
  one connected overlay), and a new broadcast reaches every survivor.
Every process is stopped by PID (kmtest.Cluster and Subscriber.stop), also
on failure.
"""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

NODES = 40
MAX_OUT, MAX_IN = 4, 8
MESSAGES = 20
KILL = NODES // 4
PING_MS = 1000
OPTS = ["--max-out", str(MAX_OUT), "--max-in", str(MAX_IN),
        "--ping-interval", str(PING_MS)]


class BoundsSampler(threading.Thread):
    """Polls every live node's neighbour counts until stopped."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.nodes, self.samples, self.violations = nodes, 0, []
        self.max_in = self.max_out = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            for n in list(self.nodes):
                if not n.alive():
                    continue
                try:
                    nb = kmtest.control(n, "status", timeout=5)["neighbours"]
                except (OSError, RuntimeError, ValueError):
                    continue   # killed meanwhile
                self.samples += 1
                self.max_in = max(self.max_in, nb["in"])
                self.max_out = max(self.max_out, nb["out"])
                if nb["in"] > MAX_IN or nb["out"] > MAX_OUT:
                    self.violations.append((n.port, nb["in"], nb["out"]))
            self._halt.wait(0.2)

    def stop(self):
        self._halt.set()
        self.join(30)


def neighbour_graph(nodes):
    return {n.id: {p["id"] for p in kmtest.control(n, "peers")} for n in nodes}


def connected(graph):
    if not graph:
        return True
    start = next(iter(graph))
    seen, todo = {start}, [start]
    while todo:
        for m in graph.get(todo.pop(), ()):
            if m in graph and m not in seen:
                seen.add(m)
                todo.append(m)
    return len(seen) == len(graph)


def settled(nodes):
    """Every node has dialled --max-out neighbours, every neighbour is one
    of nodes, and the overlay is connected."""
    ids = {n.id for n in nodes}
    for n in nodes:
        if kmtest.control(n, "status")["neighbours"]["out"] < MAX_OUT:
            return False
    g = neighbour_graph(nodes)
    return all(peers <= ids for peers in g.values()) and connected(g)


def bcast_counters(nodes):
    return {n.id: kmtest.control(n, "status")["broadcast"] for n in nodes}


def broadcast_and_wait(c, origin, subs, text, timeout=30):
    msg_id = c.ctl(origin, "broadcast", text, timeout=20).strip()
    kmtest.wait_until(lambda: all(s.count(msg_id) >= 1 for s in subs),
                      timeout=timeout, interval=0.05,
                      what="every node delivering " + text)
    return msg_id


def start_network(c, rng):
    nodes = [c.start(seed=True, extra=OPTS)]
    while len(nodes) < NODES:
        nodes.append(c.start(bootstrap=[rng.choice(nodes)], extra=OPTS))
    return nodes


def check_deliveries(nodes, subs, msg_ids, before, after):
    """Exactly once everywhere; returns (copies per node, max hops)."""
    copies = {}
    max_hops = 0
    for n, s in zip(nodes, subs):
        for m in msg_ids:
            assert s.count(m) == 1, "node %d delivered %s %d times" % (
                n.port, m[:8], s.count(m))
            max_hops = max([max_hops] + s.hops(m))
        a, b = after[n.id], before[n.id]
        received = (a["delivered"] - b["delivered"]) - \
            (a["originated"] - b["originated"]) + \
            (a["duplicates"] - b["duplicates"])
        originated = a["originated"] - b["originated"]
        copies[n.port] = received / float(len(msg_ids) - originated)
    return copies, max_hops


def main():
    rng = random.Random(int(os.environ.get("KM_SEED", "5")))
    with kmtest.Cluster() as c:
        t0 = time.monotonic()
        nodes = start_network(c, rng)
        sampler = BoundsSampler(nodes)
        sampler.start()
        subs = []
        try:
            kmtest.wait_until(lambda: settled(nodes), timeout=90,
                              interval=0.5, what="neighbour sets to settle")
            print("%d nodes settled in %.1f s" % (NODES, time.monotonic() - t0))
            subs = kmtest.subscribe_all(nodes)
            before = bcast_counters(nodes)
            msg_ids = []
            for i in range(MESSAGES):
                origin = rng.choice(nodes)
                msg_ids.append(broadcast_and_wait(
                    c, origin, subs, "message-%02d-from-%s" % (i, origin.id[:8])))
                if i == 0:
                    after_first = kmtest.wait_stable(
                        lambda: bcast_counters(nodes),
                        what="the first message's late copies")
            after = kmtest.wait_stable(lambda: bcast_counters(nodes),
                                       what="late duplicates")
            copies, max_hops = check_deliveries(nodes, subs, msg_ids, before,
                                                after)
            rest, _ = check_deliveries(nodes, subs, msg_ids[1:], after_first,
                                       after)
            print("messages 2-%d alone (the tree formed by the first): mean "
                  "%.2f, max %.2f copies per node per message" % (
                      MESSAGES, sum(rest.values()) / len(rest),
                      max(rest.values())))
            mean = sum(copies.values()) / len(copies)
            print("copies per node per message: mean %.2f, max %.2f; "
                  "max hops %d" % (mean, max(copies.values()), max_hops))
            print("copies per node: " + " ".join(
                "%.2f" % copies[p] for p in sorted(copies)))
            assert max(copies.values()) < 2.0, copies

            victims = rng.sample(nodes[1:], KILL)
            survivors = [n for n in nodes if n not in victims]
            dead_ids = {v.id for v in victims}
            g = neighbour_graph(survivors)
            cut = sum(len(p & dead_ids) for p in g.values())
            assert cut > 0, "no survivor had a victim as a neighbour"
            for v in victims:
                v.kill()
            sub_of = dict(zip([n.id for n in nodes], subs))
            t1 = time.monotonic()
            kmtest.wait_until(lambda: settled(survivors), timeout=60,
                              interval=0.5, what="survivors re-forming links")
            print("killed %d (%d survivor links cut); survivors re-formed "
                  "links in %.1f s" % (KILL, cut, time.monotonic() - t1))
            origin = rng.choice(survivors)
            msg = broadcast_and_wait(c, origin,
                                     [sub_of[n.id] for n in survivors],
                                     "after-churn")
            hops = max(h for n in survivors for h in sub_of[n.id].hops(msg))
            print("after churn: every survivor delivered it (max hops %d)" %
                  hops)
        finally:
            sampler.stop()
            for s in subs:
                s.stop()
        print("bounds: %d samples, max in %d, max out %d" %
              (sampler.samples, sampler.max_in, sampler.max_out))
        assert not sampler.violations, sampler.violations[:10]
        assert sampler.samples >= NODES * 3
        for n in nodes:
            if n not in victims:
                assert n.stop() == 0, "node %d: %s" % (n.port, n.stderr()[-2000:])
    print("ok")


if __name__ == "__main__":
    main()
