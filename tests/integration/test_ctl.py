#!/usr/bin/env python3
"""dht-ctl against a real dht-node: every command, --json, and bad input.

Starts a seed and one node that bootstraps from it, on 127.0.0.1 with free
ports and temporary state dirs, and stops both by PID at the end."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import kmtest

BIN = os.environ.get("KM_BIN", "build/bin")
NODE = os.path.join(BIN, "dht-node")
CTL = os.path.join(BIN, "dht-ctl")
TARGET = "22" * 20


def start(state, *args):
    p = subprocess.Popen([NODE, "--port", "0", "--bind", "127.0.0.1", "--no-lan",
                          "--state-dir", state, *args],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("ready "), f"no ready line: {line!r}"
    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    return p, fields


def ctl(sock, *args, timeout=30):
    return subprocess.run([CTL, "--control", sock, *args], text=True,
                          capture_output=True, timeout=timeout)


def ctl_json(sock, *args):
    r = ctl(sock, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def check_status_and_table(sock, fields):
    st = ctl_json(sock, "status")
    assert st["id"] == fields["id"] and st["port"] == int(fields["port"])
    for key in ("uptime_s", "routing_table_size", "buckets_nonempty",
                "packets_in", "packets_out", "errors"):
        assert key in st, key
    table = ctl_json(sock, "table")
    assert isinstance(table, list)
    for e in table:
        assert len(e["id"]) == 40 and ":" in e["addr"]
        assert e["state"] in ("good", "questionable", "bad")
        assert e["last_seen_s"] >= 0
    human = ctl(sock, "status")
    assert human.returncode == 0 and "id:" in human.stdout, human
    return st, table


def check_lookup(sock, seed_id):
    r = ctl(sock, "lookup", TARGET)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("# rounds="), lines
    ids = [ln.split()[0] for ln in lines[:-1]]
    assert seed_id in ids, (seed_id, ids)
    dist = [int(i, 16) ^ int(TARGET, 16) for i in ids]
    assert dist == sorted(dist)
    res = ctl_json(sock, "get-peers", TARGET)
    assert "peers" in res and "nodes" in res
    res = ctl_json(sock, "announce", TARGET, "4242")
    assert res["port"] == 4242


def check_errors(sock):
    for args, words in ((["lookup", "xyz"], "malformed ID"),
                        (["announce", TARGET, "port"], "bad port")):
        r = ctl(sock, *args)
        assert r.returncode == 1 and words in r.stderr, r
    r = ctl(sock + ".missing", "status")
    assert r.returncode == 2 and sock + ".missing" in r.stderr, r
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(b"x" * 5000 + b"\n")
        data = s.makefile().readline()
        assert json.loads(data)["ok"] is False
        try:
            closed = s.recv(1) == b""
        except ConnectionResetError:
            # The server hung up with the rest of our line unread, which
            # the kernel reports as a reset: closed all the same.
            closed = True
        assert closed
    assert ctl(sock, "status").returncode == 0  # still serving


def wait_joined(sock, deadline):
    while time.time() < deadline:
        if ctl_json(sock, "status")["routing_table_size"] > 0:
            return
        time.sleep(0.2)
    raise AssertionError("the node never joined")


def main():
    if not os.path.exists(NODE):
        kmtest.skip(f"{NODE} is not built")
    procs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seed, sf = start(os.path.join(tmp, "seed"), "--seed")
            procs.append(seed)
            node, nf = start(os.path.join(tmp, "node"), "--bootstrap",
                             f"127.0.0.1:{sf['port']}")
            procs.append(node)
            sock = nf["control"]
            assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
            wait_joined(sock, time.time() + 20)
            check_status_and_table(sock, nf)
            check_lookup(sock, sf["id"])
            check_errors(sock)
            for p in procs:
                p.send_signal(signal.SIGTERM)
                assert p.wait(timeout=10) == 0
            assert not os.path.exists(sock)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
