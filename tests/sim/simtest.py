"""Helpers for the dht-sim tests: run the simulator, parse its JSON line."""

import json
import os
import subprocess
import sys


def sim_path():
    d = os.environ.get("KM_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "bin")
    return os.path.join(d, "dht-sim")


def run(*args, timeout=300):
    """Runs dht-sim with args; returns (exit code, stdout, stderr)."""
    p = subprocess.run([sim_path(), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def run_json(*args):
    """Runs dht-sim --json and returns (stdout, the parsed last line)."""
    rc, out, err = run(*args, "--json")
    if rc != 0:
        sys.exit(f"dht-sim {' '.join(map(str, args))} exited {rc}: {err}")
    return out, json.loads(out.strip().splitlines()[-1])


def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
    print(f"ok: {what}")
