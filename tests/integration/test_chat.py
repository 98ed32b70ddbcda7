#!/usr/bin/env python3
"""examples/chat over loopback: two instances, built against the shared
libkadmesh, find each other and a line typed into one appears in the other."""
import os
import queue
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402


def start(*args):
    p = subprocess.Popen([kmtest.bin_path("chat"), *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.rstrip("\n"))
                                     for l in p.stdout], daemon=True).start()
    return p, lines


def expect(lines, pred, what, timeout=15.0):
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {what} within {timeout}s; saw {seen}")
        seen.append(line)
        if pred(line):
            return line


def main():
    procs = []
    try:
        a, a_out = start("127.0.0.1:0", "seed")
        procs.append(a)
        port = expect(a_out, lambda l: l.startswith("port "), "port").split()[1]
        b, b_out = start("127.0.0.1:0", "127.0.0.1:" + port)
        procs.append(b)
        for out in (a_out, b_out):
            expect(out, lambda l: l == "neighbours 1", "neighbour")
        b.stdin.write("hello over \x1b[31mkadmesh\n")
        b.stdin.flush()
        got = expect(a_out, lambda l: l.endswith(": hello over ?[31mkadmesh"),
                     "the line from b")
        print("a got:", got)
        for p in (a, b):
            p.stdin.close()
        for p in (a, b):
            assert p.wait(timeout=10) == 0, "chat exits 0 at end of input"
        print("test_chat: ok")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
