"""Issue 14 at 1,000 nodes: lookups during churn (--session-median, Weibull
sessions of shape 0.5, leavers replaced by newcomers) and the latency floor
in the JSON.  The issue's latency targets (median <= 1.5 x floor) are not
met yet (docs/BENCHMARKS.md, "Lookups near the floor"), so this asserts
what holds: the floor is reported and is a floor, the churn happens, and
lookups during it stay exact (measured: 300 of 300)."""

import simtest

out, j = simtest.run_json("--nodes", 1000, "--seed", 11, "--scenario",
                          "lookup", "--lookups", 300, "--session-median", 1800)
print(out)
simtest.check("sessions: Weibull" in out and " 0 nodes left" not in out,
              "nodes leave and are replaced while the lookups run")
simtest.check(j["lookup_floor_ms_median"] >= 20 and
              j["lookup_floor_ms_p99"] <= 300,
              "the floor lies within the simulated RTTs (20-300 ms)")
simtest.check(j["lookup_latency_ms_median"] >= j["lookup_floor_ms_median"],
              "no lookup beats the floor")
# 0.95, below issue 14's 99.5% target, which is not met: 100% on the lookup
# branch alone, 97.7% (293/300) once merged with the flash-crowd refresh;
# the guard catches a collapse, the gap is open work in docs/BENCHMARKS.md.
simtest.check(j["lookup_success_rate"] >= 0.95,
              "session median 1800 s: >= 95% of lookups exact")
# Where the time goes (docs/BENCHMARKS.md): each node of the result is
# learned, then answers at least its RTT later, and the lookup ends no
# sooner than the last answer -- so per lookup, and so for the medians,
# found <= eager <= latency.
simtest.check(0 <= j["lookup_found_ms_median"] <= j["lookup_eager_ms_median"]
              <= j["lookup_latency_ms_median"],
              "found <= eager <= latency")
simtest.check(j["lookup_tail_ms_median"] >= 0 and
              j["lookup_tail_ms_p99"] >= j["lookup_tail_ms_median"],
              "the tail after the last answer is reported")
