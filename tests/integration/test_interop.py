#!/usr/bin/env python3
"""kadmesh against webtorrent's bittorrent-dht (npm, pinned in
tests/interop/package-lock.json), on 127.0.0.1 only.

Builds a mixed network of 20 bittorrent-dht nodes (one Node.js process,
tests/interop/driver.js) and 20 dht-node processes, each side partly
bootstrapped from the other, has the JS nodes repeat their join lookup
(the library never refreshes its buckets), waits until the routing tables
settle, then:

  1. `dht-lookup --bootstrap <JS node>` finds exactly the true k closest of
     all 40 nodes;
  2. a JS node's get_peers lookup finds the peer a kadmesh node announced
     with `dht-ctl announce`, and ends on the true k closest;
  3. kadmesh (`dht-ctl get-peers`) finds the peers JS nodes announced, one
     with an explicit port and one with implied_port;
  4. kadmesh tables hold JS nodes and JS tables hold kadmesh nodes, at the
     addresses they really use;
  5. no JS node logged a warning or error (their parser took all our
     packets), and no kadmesh node counted a malformed packet (ours took
     all theirs);
and that kadmesh's replies carry v = "KM" 0x00 0x01.

It then prints what it observes of bittorrent-dht's own habits (no `v`,
unknown methods) for docs/PROTOCOL.md.  Runs `npm ci` first when
tests/interop/node_modules does not match the lockfile.  Every process is
stopped by PID in a finally block.
"""
import fcntl
import hashlib
import json
import os
import random
import select
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402
from test_join_lookup import xor_closest  # noqa: E402

JS_NODES = 20
KM_NODES = 20
K = 8
LOOKUPS = 8
CONVERGE_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0
INTEROP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "interop")


BEGAN = time.monotonic()


def log(fmt, *args):
    print("[%5.1f s] %s" % (time.monotonic() - BEGAN, fmt % args), flush=True)


def npm_ci():
    """Installs the locked modules unless the stamp says they are there.
    The lock keeps two test runs of one checkout from racing."""
    lock = os.path.join(INTEROP, "package-lock.json")
    stamp = os.path.join(INTEROP, "node_modules", ".kadmesh-lock-sha256")
    with open(lock, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            with open(stamp) as s:
                if s.read().strip() == want:
                    return
        except OSError:
            pass
        log("npm ci in %s", INTEROP)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=INTEROP,
                       check=True, timeout=600, stdout=subprocess.DEVNULL)
        with open(stamp, "w") as s:
            s.write(want + "\n")


class JsNodes:
    """The driver process; request() sends one JSON line, awaits one."""

    def __init__(self, log):
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(["node", "driver.js"], cwd=INTEROP,
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log)
        self.buf = b""

    def request(self, cmd, **args):
        args["cmd"] = cmd
        self.proc.stdin.write(json.dumps(args).encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + REQUEST_TIMEOUT
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError("driver: no answer to %s" % cmd)
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("driver exited %r" % self.proc.poll())
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        reply = json.loads(line)
        if "error" in reply:
            raise AssertionError("driver %s: %s" % (cmd, reply["error"]))
        return reply

    def stop(self):
        try:
            self.proc.stdin.close()  # the driver destroys its nodes and exits
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def addr(port):
    return "%s:%d" % (kmtest.HOST, port)


def start_network(cluster, js, rng):
    """JS node 0 starts alone; kadmesh node 0 joins through it.  After that
    half of each side's nodes join through the other side."""
    jsn = [js.request("start", bootstrap=False)]
    kmn = [cluster.start(bootstrap=[addr(jsn[0]["port"])])]
    for i in range(1, max(JS_NODES, KM_NODES)):
        if i < JS_NODES:
            via = rng.choice(kmn).port if i % 2 else rng.choice(jsn)["port"]
            jsn.append(js.request("start", bootstrap=[addr(via)]))
        if i < KM_NODES:
            via = rng.choice(jsn)["port"] if i % 2 else rng.choice(kmn).port
            kmn.append(cluster.start(bootstrap=[addr(via)]))
    return jsn, kmn


def tables(cluster, js, kmn):
    """{node id: {(id, port) in its table}} for all 40 nodes."""
    out = {}
    for n in kmn:
        out[n.id] = {(e["id"], int(e["addr"].rsplit(":", 1)[1]))
                     for e in cluster.ctl(n, "table", "--json", timeout=20)}
    for n in js.request("tables")["nodes"]:
        out[n["id"]] = {(e["id"], e["port"]) for e in n["table"]}
    return out


def wait_converged(cluster, js, kmn, ids):
    """Every kadmesh table holds k nodes, every JS table some, every node is
    in another's table, and every kadmesh node is idle (kmtest.dht_idle:
    its joins are over; the JS nodes' ended before `start` answered, and
    only kadmesh's queries still add to their tables).
    (bittorrent-dht never refreshes buckets: it knows the nodes its join
    lookup met and those that query it, which for a loner may be fewer
    than k.)"""
    start = time.monotonic()
    while True:
        t = tables(cluster, js, kmn)
        sizes = [len(t[i]) for i in ids]
        small = [i for i in ids if len(t[i]) < (K if i in kmn_ids(kmn) else 1)]
        known = {e[0] for i in t for e in t[i]} & set(ids)
        log("converging: table sizes %d..%d, %d/%d known to others",
            min(sizes), max(sizes), len(known), len(ids))
        if not small and len(known) == len(ids) and all(
                kmtest.dht_idle(kmtest.control(n, "status")) for n in kmn):
            return t
        if time.monotonic() - start > CONVERGE_TIMEOUT:
            raise AssertionError("tables did not settle in %.0f s: unknown "
                                 "%s, too small %s" % (
                                     CONVERGE_TIMEOUT, set(ids) - known, small))
        time.sleep(0.5)


def kmn_ids(kmn):
    return {n.id for n in kmn}


def check_tables(t, jsn, kmn):
    """Check 4: each side holds the other's nodes at their real ports."""
    port = {n["id"]: n["port"] for n in jsn}
    port.update({n.id: n.port for n in kmn})
    fails = []
    for holders, others, what in (([n.id for n in kmn], [n["id"] for n in jsn],
                                   "kadmesh tables"),
                                  ([n["id"] for n in jsn], [n.id for n in kmn],
                                   "JS tables")):
        held = set()
        for h in holders:
            mine = {i for i, _ in t[h]} & set(others)
            if not mine:
                fails.append("%s: %s holds none of the other side" % (what, h))
            held |= mine
            fails += ["%s: %s lists %s at port %d, not %d" % (what, h, i, p, port[i])
                      for i, p in t[h] if i in port and port[i] != p]
        log("check 4: %s hold %d/%d of the other side's nodes", what,
            len(held), len(others))
        if held != set(others):
            fails.append("%s miss %s" % (what, sorted(set(others) - held)))
    return fails


def check_kadmesh_announce(cluster, js, kmn, jsn, ids, rng):
    """Check 2: kadmesh announces, a JS node's get_peers lookup finds it."""
    ih = hashlib.sha1(b"kadmesh interop: announced by kadmesh").hexdigest()
    by, asker = rng.choice(kmn), rng.choice(jsn)
    res = cluster.ctl(by, "announce", ih, "6001", "--json", timeout=30)
    got_by_js = [n["id"] for n in res["nodes"] if n["id"] in
                 {j["id"] for j in jsn}]
    r = js.request("lookup", index=asker["index"], info_hash=ih, k=K)
    want = xor_closest(ih, [i for i in ids if i != asker["id"]], K)
    log("check 2: kadmesh announced to %d nodes (%d JS); JS lookup found "
        "peers %s", len(res["nodes"]), len(got_by_js), r["peers"])
    fails = []
    if addr(6001) not in r["peers"]:
        fails.append("check 2: JS lookup did not find %s" % addr(6001))
    if r["closest"] != want:
        fails.append("check 2: JS lookup ended on %s, not %s"
                     % (r["closest"], want))
    if not got_by_js:
        fails.append("check 2: no JS node took kadmesh's announce")
    return fails


def check_js_announce(cluster, js, kmn, jsn, rng):
    """Check 3: JS nodes announce (port 6002, and implied_port), kadmesh's
    get_peers finds both."""
    fails = []
    for name, port in ((b"explicit port", 6002), (b"implied_port", 0)):
        ih = hashlib.sha1(b"kadmesh interop: JS, " + name).hexdigest()
        by = rng.choice(jsn)
        hits = js.request("announce", index=by["index"], info_hash=ih,
                          port=port)["hits"]
        want = addr(port or by["port"])
        asker = rng.choice(kmn)
        res = cluster.ctl(asker, "get-peers", ih, "--json", timeout=30)
        log("check 3 (%s): JS announced to %d nodes; kadmesh found %s",
            name.decode(), hits, res["peers"])
        if want not in res["peers"]:
            fails.append("check 3: kadmesh get-peers missed %s (%s)"
                         % (want, name.decode()))
    return fails


def lookup_via(port, target):
    r = subprocess.run([kmtest.bin_path("dht-lookup"), "--bootstrap",
                        addr(port), "-k", str(K), "--json", target],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "dht-lookup exit %d: %s" % (r.returncode,
                                                           r.stderr)
    return [n["id"] for n in json.loads(r.stdout)["nodes"]]


def check_lookups(jsn, ids, rng):
    """Check 1: dht-lookup through a JS node finds the true k closest."""
    targets = ["%040x" % rng.getrandbits(160) for _ in range(LOOKUPS)]
    via = [rng.choice(jsn)["port"] for _ in targets]
    # All at once: bittorrent-dht ignores BEP 43's ro and hands out each
    # lookup's read-only node, which never answers, so a later lookup
    # would wait out a timeout on every earlier one.
    with ThreadPoolExecutor(LOOKUPS) as pool:
        got = list(pool.map(lookup_via, via, targets))
    fails = ["check 1: target %s via JS port %d: got %s, want %s"
             % (t, p, g, xor_closest(t, ids, K))
             for t, p, g in zip(targets, via, got)
             if g != xor_closest(t, ids, K)]
    log("check 1: %d/%d lookups through JS nodes exact",
        LOOKUPS - len(fails), LOOKUPS)
    return fails


def check_clean(cluster, js, kmn):
    """Check 5: nothing either side could not parse."""
    fails = ["check 5: " + p for p in js.request("problems")["problems"]]
    for n in kmn:
        bad = cluster.ctl(n, "status", "--json")["errors"]["malformed_in"]
        if bad:
            fails.append("check 5: kadmesh %s counted %d malformed packets"
                         % (n.id, bad))
    log("check 5: %d problems", len(fails))
    return fails


def check_version(kmn):
    """kadmesh's `v`: "KM" and version 0.1 (README, BEP 20 style)."""
    r = kmtest.krpc_ping(kmn[0].port)
    v = r and r.get(b"v")
    log("kadmesh ping reply has v=%r", v)
    return [] if v == b"KM\x00\x01" else ["kadmesh sent v=%r" % v]


def observe(js, jsn, ids):
    """Prints bittorrent-dht's own habits, which kadmesh must tolerate.
    Last, because the library ignores BEP 43's ro and keeps our probes."""
    ro = {e["id"] for n in js.request("tables")["nodes"]
          for e in n["table"]} - set(ids)
    log("observed: JS tables hold %d read-only nodes (dht-lookup's)", len(ro))
    port = jsn[0]["port"]
    ping = kmtest.krpc_query(port, "ping")
    unknown = kmtest.krpc_query(port, "vote", timeout=1.0)
    log("observed: bittorrent-dht ping reply has v=%r; an unknown method "
        "gets %s", ping and ping.get(b"v"),
        "no answer" if unknown is None else unknown)


def main():
    if not shutil.which("node") or not shutil.which("npm"):
        print("FAIL: node and npm are needed (./tools/setup installs them)")
        return 1
    npm_ci()
    seed = int(os.environ.get("KM_TEST_SEED", random.randrange(1 << 30)))
    log("seed=%d (set KM_TEST_SEED to repeat)", seed)
    rng = random.Random(seed)
    fails = []
    with kmtest.Cluster() as cluster:
        js = JsNodes(os.path.join(cluster.tmp, "driver.log"))
        try:
            jsn, kmn = start_network(cluster, js, rng)
            ids = [n["id"] for n in jsn] + [n.id for n in kmn]
            js.request("rejoin")
            log("started %d JS and %d kadmesh nodes", len(jsn), len(kmn))
            t = wait_converged(cluster, js, kmn, ids)
            fails += check_tables(t, jsn, kmn)
            fails += check_kadmesh_announce(cluster, js, kmn, jsn, ids, rng)
            fails += check_js_announce(cluster, js, kmn, jsn, rng)
            fails += check_lookups(jsn, ids, rng)
            fails += check_clean(cluster, js, kmn)
            fails += check_version(kmn)
            observe(js, jsn, ids)
        finally:
            js.stop()
            fails += kmtest.stop_and_scan(cluster.nodes)
            if fails:
                with open(os.path.join(cluster.tmp, "driver.log"),
                          errors="replace") as f:
                    print("--- driver stderr:\n" + f.read()[-3000:])
    log("done")
    for f in fails:
        print("FAIL: " + f, flush=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
