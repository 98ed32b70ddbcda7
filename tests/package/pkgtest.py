"""Shared helpers for the package tests (tests/package/test_*.py)."""
import os
import subprocess

# The build tree: ctest passes its bin/ directory in KM_BIN.
BUILD = os.path.dirname(os.path.abspath(os.environ["KM_BIN"]))


def run(cmd, timeout=300, **kw):
    """Runs cmd; fails with its output unless it exits 0."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       **kw)
    if r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n"
                             f"{r.stdout}\n{r.stderr}")
    return r
