"""1,000 nodes, k=8, alpha=3, 1% loss: lookups meet the issue's success,
rounds and memory targets under the conditions docs/BENCHMARKS.md measures
them in (10,000 nodes, 1% loss), scaled down in N only.  Then 10% of the
nodes fall silent: a silent node costs a lookup three RTOs, not the 4 s
timeout it used to (median 4.1 s, p99 5.4 s before the adaptive retry
timeout), and most lookups still find the true k closest live nodes."""

import os

import simtest

# 1,000 lookups, not 300: at 300 the 99.5% bar allowed one miss, and any
# change that moves the random draws moves a lookup across it (seed 11:
# 300/300 before only verified nodes were served, 298/300 after; over
# seeds 11-16, 1,792 and 1,791 of 1,800; with 1,000 lookups 99.8% / 99.6%).
out, j = simtest.run_json("--nodes", 1000, "--seed", 11, "--scenario",
                          "lookup", "--lookups", 1000, "--loss", 0.01)
print(out)
simtest.check(j["lookup_success_rate"] >= 0.995, "lookup success >= 99.5%")
simtest.check(j["lookup_rounds_median"] <= 4, "median rounds <= 4")
simtest.check(j["lookup_rounds_p90"] <= 5, "p90 rounds <= 5")
simtest.check(j["lookup_messages_mean"] < 40, "fewer than 40 queries a lookup")
# Under ASan the heap is ASan's, mallinfo2 means nothing and dht-sim leaves
# the figure out; the plain build must report it, so the check runs there.
if os.environ.get("KM_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE"):
    print("DHT state per node: checked in the build without ASan")
else:
    simtest.check(j.get("dht_state_bytes_per_node", 1e9) <= 64 * 1024,
                  "DHT state <= 64 KiB per node (reported, not left out)")

out, j = simtest.run_json("--nodes", 1000, "--seed", 11, "--scenario",
                          "lookup", "--lookups", 300, "--dead", 0.1,
                          "--loss", 0.01)
print(out)
# No target sets exactness with dead nodes, and the latency target (300 ms /
# 1 s) is missed (docs/BENCHMARKS.md, "Lookup latency"): these guard today's
# figures (92.0% here, 94.5% at 10,000 nodes; 1,302 / 2,476 ms here).
simtest.check(j["lookup_success_rate"] >= 0.9,
              "10% dead: >= 90% of lookups find the true k closest live nodes")
simtest.check(j["lookup_latency_ms_median"] < 2000,
              "10% dead: median latency < 2 s (was 4.1 s)")
simtest.check(j["lookup_latency_ms_p99"] < 3000,
              "10% dead: p99 latency < 3 s (was 5.4 s)")

# The mesh baseline: its connection counts are arithmetic, and its JSON
# names them "computed"; its broadcasts are simulated over the same RTTs.
_, m = simtest.run_json("--nodes", 10, "--seed", 1, "--scenario", "mesh")
simtest.check(m["connections_total_computed"] == 45,
              "a full mesh of 10 peers costs 45 connections (computed)")
simtest.check(m["connections_per_node_computed"] == 9,
              "9 connections per peer (computed)")
simtest.check("connections_total" not in m,
              "the mesh reports no connection count as measured")
simtest.check(20 / 2 <= m["broadcast_latency_ms_p99"] <= 300 / 2 + 600,
              "mesh broadcast latency p99 within one-way delay plus a resend")
