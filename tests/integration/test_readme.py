#!/usr/bin/env python3
"""Runs every example the README marks `<!-- checked -->`, in order, as a
reader would: `dht-node ... &` lines start nodes (and the test waits for
them to be ready and linked), other `... &` lines run in the background and
must exit 0 in the end, and every other line must exit 0.  /tmp/km-* paths
move into a temporary directory and port 6881 to a free one, so that the
run disturbs nothing."""
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "README.md")


def checked_lines(text):
    """Command lines of the ```sh blocks right after <!-- checked -->."""
    blocks = re.findall(r"^<!-- checked -->\n```sh\n(.*?)^```", text,
                        re.M | re.S)
    assert blocks, "the README has checked examples"
    lines = []
    for b in blocks:
        for line in b.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def free_port():
    with socket.socket() as t, socket.socket(type=socket.SOCK_DGRAM) as u:
        t.bind((kmtest.HOST, 0))
        port = t.getsockname()[1]
        u.bind((kmtest.HOST, port))
        return port


def state_dir(args):
    return args[args.index("--state-dir") + 1]


def main():
    text = open(README).read()
    tmp = tempfile.mkdtemp(prefix="kadmesh-readme-")
    port = str(free_port())
    env = {**os.environ, "PATH": os.environ["KM_BIN"] + ":" + os.environ["PATH"]}
    nodes, background = [], []
    try:
        for line in checked_lines(text):
            line = line.replace("/tmp/km-", tmp + "/km-").replace("6881", port)
            print("$", line)
            if line.startswith("dht-node") and line.endswith("&"):
                # --no-lan: a test must not multicast onto the host's LAN.
                args = shlex.split(line[:-1])
                args.insert(1, "--no-lan")
                p = subprocess.Popen(args, stdout=subprocess.PIPE, env=env,
                                     stdin=subprocess.DEVNULL)
                nodes.append(p)
                kmtest.read_ready(p, 15)
                if "--bootstrap" in args:
                    ctl = kmtest.Node(p, state_dir(args), None)
                    ctl.control = state_dir(args) + "/control.sock"
                    kmtest.wait_until(
                        lambda: kmtest.control(ctl, "peers"), timeout=30,
                        what="the joining node's first neighbour")
            elif line.endswith("&"):
                p = subprocess.Popen(["bash", "-c", line[:-1]], env=env)
                background.append((line, p))
                m = re.search(r"--control (\S+) subscribe", line)
                if m:
                    ctl = kmtest.Node(None, None, None)
                    ctl.control = m.group(1)
                    kmtest.wait_until(lambda: kmtest.control(
                        ctl, "status")["subscribers"] > 0, timeout=10,
                        what="the subscriber")
            else:
                r = subprocess.run(["bash", "-c", line], env=env, timeout=60)
                assert r.returncode == 0, f"exit {r.returncode}: {line}"
        for line, p in background:
            assert p.wait(timeout=30) == 0, f"background command: {line}"
        for p in nodes:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0, "dht-node exits 0 on SIGTERM"
        print(f"test_readme: ok ({len(checked_lines(text))} commands)")
    finally:
        for p in nodes + [p for _, p in background]:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    main()
