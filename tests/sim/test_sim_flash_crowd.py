"""A flash crowd: 2,000 nodes join within 2 s of virtual time, the network
settles for 60 s, then lookups must find exactly the true k closest nodes
at least 99.5% of the time.  Before nodes looked themselves up again and
refreshed after the crowd, this gave 83.8% (seed 1); an early joiner whose
join query was lost made an island of everyone who joined through it (63%,
test_sim_lost_join).  2,000 nodes is the size the issue sets, and each
network runs in about 15 s (release build).

The rate is measured over three networks (seeds 1-3, 1,000 lookups each),
not one: at 1% loss a lookup now and then misses a true-closest node that
every table holds (both tries lost), so one network's figure wanders by
+-0.3 points with any change to the random draws: seeds 1-5 gave 99.3, 99.9,
99.6, 99.5 and 99.6% on the code of 2026-12-03.  The bar stays 99.5% for the
three together, and each network must reach 99%: an island, the failure
this test is for, costs far more than that (the code before the join-await
fix gave 72.7% at seed 5)."""

import simtest

SEEDS = (1, 2, 3)
exact = []
for seed in SEEDS:
    out, j = simtest.run_json("--nodes", 2000, "--seed", seed, "--scenario",
                              "lookup", "--join-over", 2, "--settle", 60)
    print(out)
    exact.append(j["lookup_success_rate"])
print("exact by seed:", ", ".join(f"{e:.3f}" for e in exact))
simtest.check(min(exact) >= 0.99,
              "flash crowd of 2,000 in 2 s: every network >= 99% exact")
simtest.check(sum(exact) / len(exact) >= 0.995,
              "flash crowd of 2,000 in 2 s: lookup success >= 99.5% "
              "over three networks")
