"""A flash crowd in which one early joiner's join query is lost: 1,000
nodes join within 1 s, and node 10's find_node to its bootstrap node never
arrives.  Every later joiner that bootstraps through node 10, or through
anyone who did, used to be told only of nodes that had found node 10: an
island that grew with the crowd and that no lookup of the rest entered
(31.3% of lookups exact at the end, 60 s later).  A node whose own join is
unanswered now files none of the nodes that query it, and sends its join
query once more."""

import simtest

out, j = simtest.run_json("--nodes", 1000, "--seed", 1, "--scenario",
                          "lookup", "--join-over", 1, "--settle", 60,
                          "--lose-join", 10)
print(out)
simtest.check(j["lookup_success_rate"] >= 0.99,
              "one lost join query early in a crowd: lookup success >= 99%")
