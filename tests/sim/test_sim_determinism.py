"""The same seed replays the same run byte for byte; another seed does not.

wall_s, peak_rss_mb and dht_state_bytes_per_node vary from run to run, so
the runs use --no-timing, which leaves exactly those out."""

import simtest

ARGS = ["--nodes", 300, "--scenario", "lookup", "--lookups", 200,
        "--dead", 0.1, "--no-timing"]

out1, j1 = simtest.run_json(*ARGS, "--seed", 1)
out2, j2 = simtest.run_json(*ARGS, "--seed", 1)
out3, j3 = simtest.run_json(*ARGS, "--seed", 2)
simtest.check(out1 == out2, "seed 1 twice gives byte-identical output")
simtest.check(j1 != j3, "seed 2 gives different JSON")
simtest.check("wall_s" not in j1 and "peak_rss_mb" not in j1,
              "--no-timing leaves out wall_s and peak_rss_mb")

m1, _ = simtest.run_json("--nodes", 1000, "--seed", 3, "--scenario", "mesh",
                         "--no-timing")
m2, _ = simtest.run_json("--nodes", 1000, "--seed", 3, "--scenario", "mesh",
                         "--no-timing")
simtest.check(m1 == m2, "mesh scenario repeats too")

B = ["--nodes", 300, "--scenario", "broadcast", "--broadcasts", 10,
     "--no-timing"]
b1, _ = simtest.run_json(*B, "--seed", 1)
b2, _ = simtest.run_json(*B, "--seed", 1)
b3, _ = simtest.run_json(*B, "--seed", 2)
simtest.check(b1 == b2, "broadcast: seed 1 twice gives byte-identical output")
simtest.check(b1 != b3, "broadcast: seed 2 differs")
C = ["--nodes", 200, "--scenario", "churn", "--churn", 0.5, "--broadcasts", 3,
     "--lookups", 20, "--no-timing"]
c1, _ = simtest.run_json(*C, "--seed", 1)
c2, _ = simtest.run_json(*C, "--seed", 1)
simtest.check(c1 == c2, "churn: seed 1 twice gives byte-identical output")

_, t = simtest.run_json("--nodes", 50, "--seed", 1, "--scenario", "lookup",
                        "--lookups", 10)
simtest.check(t["wall_s"] >= 0 and t["peak_rss_mb"] > 0,
              "timing keys are present by default")
