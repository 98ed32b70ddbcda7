#!/usr/bin/env python3
"""Logs at the default level: every line has a timestamp, a level and the
node ID prefix, and a flood of bad packets and connections adds no line per
packet."""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                  r"(error|warn |info |debug) \[[0-9a-f]{8}\] .+$")


def main():
    with kmtest.Cluster(log_level="info") as c:
        seed = c.start(seed=True)
        node = c.start(bootstrap=[seed])
        kmtest.wait_linked(seed, node)
        before = len(seed.stderr().splitlines())
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(500):
            udp.sendto(bytes([i % 256]) * (1 + i % 40), (kmtest.HOST, seed.port))
        udp.close()
        for i in range(30):
            with socket.create_connection((kmtest.HOST, seed.port), 5) as t:
                t.sendall(b"\xff" * 64)
        for i in range(20):
            c.ctl(node, "broadcast", f"message {i}")
        kmtest.wait_until(lambda: c.ctl(seed, "--json", "status") is not None,
                          timeout=10)
        lines = seed.stderr().splitlines()
        added = len(lines) - before
        print(f"{added} log lines after 500 bad datagrams, 30 bad "
              f"connections and 20 broadcasts")
        assert added <= 10, "\n".join(lines[before:])
        bad = [l for l in lines if not LINE.match(l)]
        assert not bad, bad
    print("test_logs: ok")


if __name__ == "__main__":
    main()
