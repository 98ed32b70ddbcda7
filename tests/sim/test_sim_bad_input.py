"""Bad options: a clear message on stderr and a non-zero exit."""

import simtest

for args, word in [
    (["--nodes", 1, "--seed", 1, "--scenario", "lookup"], "--nodes"),
    (["--nodes", 10, "--seed", 1, "--scenario", "nope"], "scenario"),
    (["--nodes", 10, "--seed", 1, "--scenario", "lookup", "--loss", 2], "--loss"),
    (["--nodes", 10, "--scenario", "lookup"], "required"),
    (["--nodes", "ten", "--seed", 1, "--scenario", "lookup"], "--nodes"),
]:
    rc, out, err = simtest.run(*args)
    simtest.check(rc != 0 and word in err, f"{args} is refused ({err.strip()})")

rc, out, _ = simtest.run("--help")
simtest.check(rc == 0 and "--scenario" in out and "--no-timing" in out,
              "--help lists the options")
