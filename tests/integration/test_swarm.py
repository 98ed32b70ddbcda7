#!/usr/bin/env python3
"""Smoke tests of the two benchmark drivers on a small scale, asserting the
targets docs/BENCHMARKS.md reports as met: `tools/swarm --nodes 20` finds
>= 99.5% of lookups exactly, reaches every node with each broadcast and
costs few payload copies per node on broadcasts 2-20 (the 2,000-node run's
conditions, scaled down in N); `tools/bench/neighbour-mem
--neighbours 20` brings one node to 20 inbound links and finds them within
16 KiB each; and both stop every node they started (the big runs are
commands in docs/BENCHMARKS.md, not tests)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def run_json(cmd, timeout=240):
    """Runs a driver; returns its last line of output, parsed."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd[0]} exited {r.returncode}:\n" \
        f"{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stdout


def nodes_left(tmp):
    """dht-node processes whose state directory is under tmp."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True,
                         text=True).stdout
    return [l for l in out.splitlines() if "dht-node" in l and tmp in l]


def sanitized(binary):
    """True if binary is built with AddressSanitizer, whose allocator's
    redzones and quarantine make its memory figures meaningless."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def test_swarm_of_20_finds_every_lookup_and_reaches_every_node(tmp):
    # --settle 10 is the default the 2,000-node run used: with 1 s, nodes
    # still dialling their last neighbours put new eager links in the tree
    # and a later broadcast costs up to 4.7 copies per node.  --bcast-wait 1
    # instead of 2: on loopback every node has delivered within 0.5 s.
    res, out = run_json([os.path.join(ROOT, "tools", "swarm"), "--nodes",
                         "20", "--lookups", "40", "--broadcasts", "20",
                         "--bcast-wait", "1", "--settle", "10", "--tmp", tmp,
                         "--json"])
    assert res["join_s"] is not None, out
    # The figures asserted below, in the log of a passing run too, so that
    # repeated runs show how close each came.
    print("swarm: " + ", ".join(f"{k} {res.get(k)}" for k in (
        "lookup_success_rate", "broadcast_coverage_min",
        "broadcast_copies_per_node", "broadcast_control_bytes_ratio",
        "connections_total", "join_s")), flush=True)
    # The target.  The misses it once had (0.875-1.0 over 40 lookups) were
    # replies that carried the asker back to itself in a slot the 8th
    # closest needed (test_dht: twenty_nodes_find_the_true_k_closest_...).
    assert res["lookup_success_rate"] >= 0.995, out
    assert len(res["lookup_misses"]) == round(
        (1 - res["lookup_success_rate"]) * 40), out
    assert res["broadcast_coverage_min"] == 1.0, out
    # The target (flooding: 15).  The 1.24 once measured was the code of
    # then on a starved CPU: links that came and went during the first
    # broadcast made their nodes GRAFT lazy peers (4 per eager link lost),
    # and the second broadcast paid for the extra eager links.  Today's
    # code, starved the same way, opens no link after the join: 1.000 in
    # every run (BENCHMARKS.md, Real sockets).
    assert res["broadcast_copies_per_node"] <= 1.2, out   # broadcasts 2-20
    assert res["broadcast_control_bytes_ratio"] <= 0.15, out
    # 0.9: a node others dialled first may have fewer than 8 nodes left to
    # dial (in + out <= 19).  It failed at 141-143 while every joiner kept
    # its seed link: the seed ended with 19 inbound links and none out, 8
    # of the 160 gone in every run (150-159 in ten runs since).
    assert res["connections_total"] >= 20 * 8 * 0.9, out
    assert res["unclean_exits"] == 0, out
    assert "lookups exact" in out


def test_neighbour_mem_counts_the_links_of_one_node(tmp):
    res, out = run_json([os.path.join(ROOT, "tools", "bench",
                                      "neighbour-mem"), "--neighbours", "20",
                         "--broadcasts", "2", "--settle", "0.5", "--tmp", tmp,
                         "--json"])
    assert res["idle"]["neighbours_in"] == 20, out
    assert res["idle"]["sockets"] == 20, out
    assert res["per_neighbour_idle"]["kernel_static_kib"] > 0, out
    assert "KiB per neighbour" in out
    print("neighbour-mem: KiB per neighbour, idle " +
          f"{res['per_neighbour_idle']['total_kib']}, after broadcasts " +
          f"{res['per_neighbour_after']['total_kib']}", flush=True)
    binary = os.path.join(os.environ.get("KM_BIN", os.path.join(
        ROOT, "build", "bin")), "dht-node")
    if sanitized(binary):
        print("memory per neighbour not asserted: dht-node is built with "
              "AddressSanitizer (~77 KiB a link of redzones and quarantine); "
              "the plain build's pass asserts it")
        return
    # The target, at 20 neighbours instead of 200-500.  The node's fixed
    # I/O buffers are made resident before the baseline, and lookups no
    # longer allocate 128 candidates up front: the two made the figure
    # swing from 8.4 to 16.4 KiB with the load.  Growth that is not the
    # neighbours' own is spread over fewer links, so this is an upper
    # bound: 5.8-7.4 KiB here, 6.0-6.4 KiB with the CPU starved.
    for when in ("per_neighbour_idle", "per_neighbour_after"):
        assert res[when]["total_kib"] <= res["target_kib"] == 16, out


def test_swarm_refuses_bad_options():
    r = subprocess.run([os.path.join(ROOT, "tools", "swarm"), "--nodes", "1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "--nodes" in r.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="swarm-test-")
    try:
        test_swarm_refuses_bad_options()
        test_swarm_of_20_finds_every_lookup_and_reaches_every_node(tmp)
        test_neighbour_mem_counts_the_links_of_one_node(tmp)
        assert not nodes_left(tmp), "a node was left running"
        assert os.listdir(tmp) == [], "a state directory was left behind"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
