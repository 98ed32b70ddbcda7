"""Crash safety: a node that saves its routing table every millisecond is
killed with SIGKILL at random moments, 50 times, each time restarted on
the same state dir with no bootstrap address.  The state file must never
be corrupt, never be empty, and the last restart must rejoin."""

import hashlib
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

ROUNDS = 50


def read_state(state_dir):
    """(ok, entries) for state_dir/nodes.dat, checked as dht/state.h says."""
    try:
        with open(os.path.join(state_dir, "nodes.dat"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False, 0
    if len(data) < 31 or data[:4] != b"KMST" or data[4] != 1:
        return False, 0
    body, digest = data[:-4], data[-4:]
    if hashlib.sha1(body).digest()[:4] != digest:
        return False, 0
    count, off = int.from_bytes(data[25:27], "big"), 27
    for _ in range(count):
        family = data[off + 20]
        if family not in (4, 6):
            return False, 0
        off += 23 + (16 if family == 6 else 4)
    return off == len(body), count


def test_kill_9_while_saving_never_corrupts_or_empties_the_table(c):
    fast = ["--save-interval-ms", "1"]
    seed = c.start(seed=True)
    for _ in range(3):
        c.start(bootstrap=[seed])
    victim = c.start(bootstrap=[seed], extra=fast)
    kmtest.wait_until(lambda: read_state(victim.state_dir)[1] >= 3,
                      timeout=30, what="the victim to save its peers")
    rng = random.Random(42)
    corrupt = empty = 0
    for _ in range(ROUNDS):
        victim.kill()
        ok, n = read_state(victim.state_dir)
        corrupt += not ok
        empty += ok and n == 0
        victim = c.restart(victim, extra=fast)
        time.sleep(rng.uniform(0.0, 0.15))
    recovered = kmtest.wait_until(
        lambda: c.ctl(victim, "--json", "status")["routing_table_size"],
        timeout=30, what="the last restart to rejoin")
    print("crash safety: %d kills, %d corrupt files, %d empty tables, "
          "%d nodes in the table after the last restart" %
          (ROUNDS, corrupt, empty, recovered))
    assert corrupt == 0 and empty == 0
    assert "nodes.dat:" not in victim.stderr(), victim.stderr()


def main():
    with kmtest.Cluster() as c:
        test_kill_9_while_saving_never_corrupts_or_empties_the_table(c)
    print("ok test_kill_9_while_saving_never_corrupts_or_empties_the_table")


if __name__ == "__main__":
    main()
