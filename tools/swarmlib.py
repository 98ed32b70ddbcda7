"""Helpers shared by tools/swarm and tools/bench/neighbour-mem: one
dht-node process on its own loopback address, its control socket, its
memory, and stopping many of them by PID."""

import json
import os
import signal
import socket
import subprocess
import time


class Node:
    """A dht-node process with a state directory under workdir."""

    def __init__(self, index, addr, workdir):
        self.index = index
        self.addr = addr
        self.dir = os.path.join(workdir, f"n{index}")
        self.control = os.path.join(self.dir, "control.sock")
        self.proc = None
        self.id = None
        self.port = None

    def spawn(self, binary, extra):
        """Starts the node; extra: options beyond --bind/--state-dir."""
        os.makedirs(self.dir, mode=0o700)
        cmd = [binary, "--bind", self.addr, "--state-dir", self.dir,
               "--no-lan", "--log-level", "warn"] + extra
        with open(os.path.join(self.dir, "stdout"), "wb") as out, \
             open(os.path.join(self.dir, "stderr"), "wb") as err:
            # Own session: a Ctrl-C in the terminal reaches only the
            # driver, which stops the nodes itself, by PID.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err,
                                         start_new_session=True)

    def poll_ready(self):
        """True once the node printed its ready line."""
        if self.id:
            return True
        if self.proc.poll() is not None:
            raise RuntimeError(f"node {self.index} ({self.addr}) exited with "
                               f"status {self.proc.returncode}; see "
                               f"{self.dir}/stderr")
        try:
            with open(os.path.join(self.dir, "stdout")) as f:
                line = f.readline()
        except OSError:
            return False
        if not line.endswith("\n") or not line.startswith("ready "):
            return False
        fields = dict(w.split("=", 1) for w in line.split()[1:])
        self.id, self.port = fields["id"], int(fields["port"])
        return True

    def endpoint(self):
        return f"{self.addr}:{self.port}"

    def ctl(self, lines, timeout=10.0):
        """Sends request lines; returns one parsed result per line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control)
            s.sendall("".join(l + "\n" for l in lines).encode())
            buf = b""
            while buf.count(b"\n") < len(lines):
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise RuntimeError(f"node {self.index}: control socket "
                                       "closed early")
                buf += chunk
        answers = [json.loads(l) for l in buf.split(b"\n")[:len(lines)]]
        for a in answers:
            if not a.get("ok"):
                raise RuntimeError(f"node {self.index}: {a.get('error')}")
        return [a["result"] for a in answers]

    def mem_kib(self):
        """VmRSS and RssAnon (from /proc/PID/status) and Pss (shared pages
        divided among the processes sharing them, from smaps_rollup), in
        KiB; zeros once the process is gone."""
        vals = {"VmRSS": 0, "RssAnon": 0, "Pss": 0}
        for name in ("status", "smaps_rollup"):
            try:
                with open(f"/proc/{self.proc.pid}/{name}") as f:
                    for line in f:
                        key, _, rest = line.partition(":")
                        if key in vals:
                            vals[key] = int(rest.split()[0])
            except OSError:
                pass
        return vals


    def fds(self):
        """Open file descriptors of the process (0 once it is gone)."""
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return 0


def wait_ready(nodes, timeout=60.0):
    """Waits until every node listens; raises RuntimeError otherwise."""
    end = time.monotonic() + timeout
    pending = list(nodes)
    while pending:
        pending = [nd for nd in pending if not nd.poll_ready()]
        if not pending:
            return
        if time.monotonic() > end:
            raise RuntimeError(f"{len(pending)} nodes not ready after "
                               f"{timeout:.0f} s (first: "
                               f"{pending[0].dir}/stderr)")
        time.sleep(0.02)


# A report from ASan, UBSan or LeakSanitizer in a node's stderr.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_report(nd):
    """The first sanitizer report line in the node's stderr, or None."""
    try:
        with open(os.path.join(nd.dir, "stderr"), errors="replace") as f:
            for line in f:
                if any(m in line for m in SANITIZER_MARKS):
                    return line.strip()
    except OSError:
        pass
    return None


def stop_all(nodes, grace=60.0):
    """SIGTERM to every node by PID, SIGKILL after the grace time.
    Returns how many did not exit 0 by themselves or left a sanitizer
    report in their stderr (printed here); leaks show only at a clean
    exit, so this is where they are found."""
    procs = [nd.proc for nd in nodes if nd.proc]
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    end = time.monotonic() + grace
    bad = 0
    for p in procs:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        bad += p.returncode != 0
    for nd in nodes:
        report = nd.proc and sanitizer_report(nd)
        if report:
            print(f"node {nd.index} ({nd.dir}/stderr): {report}", flush=True)
            bad += nd.proc.returncode == 0
    return bad
