#!/usr/bin/env python3
"""30 dht-node processes on 127.0.0.1 join one network; for 50 random targets,
`dht-lookup --bootstrap <random node>` must return exactly the k closest node
IDs, computed by XOR from each node's own `dht-ctl status --json`.

Prints the mean and max rounds, queries and elapsed ms of the lookups.
Every node is stopped by PID in a finally block: SIGTERM, then SIGKILL.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

NODES = 30
TARGETS = 50
K = 8
READY_TIMEOUT = 20.0
CONVERGE_TIMEOUT = 30.0
LOOKUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
PARALLEL_LOOKUPS = 4

BIN = os.environ.get("KM_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin")
SANITIZER_MARKS = ("Sanitizer", "runtime error:")


class Node:
    """One dht-node process; stdout and stderr go to files in its state dir,
    so that a chatty node can never block on a full pipe."""

    def __init__(self, state_dir, bootstrap=None):
        self.dir = state_dir
        os.makedirs(state_dir)
        self.out_path = os.path.join(state_dir, "stdout.log")
        self.err_path = os.path.join(state_dir, "stderr.log")
        args = [os.path.join(BIN, "dht-node"), "--port", "0",
                "--bind", "127.0.0.1", "--state-dir", state_dir]
        args += ["--bootstrap", bootstrap] if bootstrap else ["--seed"]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self.id = self.port = self.control = None

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out_path) as f:
                for line in f:
                    if line.startswith("ready ") and line.endswith("\n"):
                        self._parse_ready(line)
                        return
            if self.proc.poll() is not None:
                raise RuntimeError("dht-node exited with %d before ready:\n%s"
                                   % (self.proc.returncode, self.stderr()))
            time.sleep(0.02)
        raise RuntimeError("dht-node printed no ready line in %.0f s" % timeout)

    def _parse_ready(self, line):
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        self.id, self.port = fields["id"], int(fields["port"])
        self.control = fields["control"]
        assert len(self.id) == 40, line

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def ctl(self, *args):
        res = subprocess.run([os.path.join(BIN, "dht-ctl"), "--control",
                              self.control, *args, "--json"],
                             capture_output=True, text=True, timeout=20)
        if res.returncode != 0:
            raise RuntimeError("dht-ctl %s: exit %d: %s"
                               % (" ".join(args), res.returncode, res.stderr))
        return json.loads(res.stdout)


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
                                                     err))
    return bad


def xor_closest(target, ids, k):
    t = int(target, 16)
    return sorted(ids, key=lambda i: int(i, 16) ^ t)[:k]


def start_network(tmp, rng, nodes):
    """Appends to nodes as it goes, so that the caller can stop them all even
    if one fails to start."""
    for i in range(NODES):
        boot = None
        if nodes:
            boot = "127.0.0.1:%d" % rng.choice(nodes).port
        node = Node(os.path.join(tmp, "n%02d" % i), boot)
        nodes.append(node)
        node.wait_ready()


def converged(nodes, ids):
    """Every node's table holds its own k closest: then any lookup, from
    anywhere, can walk to the true closest set."""
    missing = 0
    for n in nodes:
        known = {e["id"] for e in n.ctl("table")}
        want = xor_closest(n.id, [i for i in ids if i != n.id], K)
        missing += len(set(want) - known)
    return missing


def wait_converged(nodes):
    start = time.monotonic()
    ids = []
    while True:
        statuses = [n.ctl("status") for n in nodes]
        ids = [s["id"] for s in statuses]
        sizes = [s["routing_table_size"] for s in statuses]
        missing = converged(nodes, ids) if min(sizes) >= K else None
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
    res = subprocess.run([os.path.join(BIN, "dht-lookup"), "--bootstrap",
                          "127.0.0.1:%d" % node.port, "-k", str(K), "--json",
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
    tmp = tempfile.mkdtemp(prefix="km-join-lookup-")
    nodes = []
    failures = []
    try:
        start_network(tmp, rng, nodes)
        print("started %d nodes" % len(nodes), flush=True)
        ids = wait_converged(nodes)
        results, failures = check_lookups(nodes, ids, rng)
        print_stats(results)
        print("%d/%d lookups returned exactly the true %d closest"
              % (TARGETS - len(failures), TARGETS, K), flush=True)
    finally:
        failures += stop_all(nodes)
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL: " + f, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
