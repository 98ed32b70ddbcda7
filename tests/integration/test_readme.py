#!/usr/bin/env python3
"""Runs every example the README marks `<!-- checked -->`, in order, as a
reader would: `dht-node ... &` lines start nodes (and the test waits for
them to be ready and linked), other `... &` lines run in the background and
must exit 0 in the end, and every other line must exit 0.  Every command's
output is checked against what the README says it prints (EXPECT below; a
checked example with no entry there fails the test).  /tmp/km-* paths move
into a temporary directory and port 6881 to a free one, so that the run
disturbs nothing."""
import hashlib
import json
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


# --- what each example prints ---------------------------------------------
# ctx: {"nodes": {"km-seed": ready fields, "km-a": ...}, "line": command}.

def node_of(ctx):
    """The ready fields of the node the command's --control names."""
    m = re.search(r"--control \S*/(km-[\w-]+)/control\.sock", ctx["line"])
    return ctx["nodes"][m.group(1)]


def others(ctx):
    me = node_of(ctx)["id"]
    return {f["id"] for f in ctx["nodes"].values()} - {me}


def all_ids(ctx):
    return {f["id"] for f in ctx["nodes"].values()}


def check_status(out, ctx):
    me = node_of(ctx)
    assert re.search(r"^id:\s+%s$" % me["id"], out, re.M), out
    assert re.search(r"^port:\s+%s$" % me["port"], out, re.M), out
    assert int(re.search(r"^routing_table_size4:\s+(\d+)$", out,
                         re.M).group(1)) >= 1, out


def check_table_json(out, ctx):
    ids = {e["id"] for e in json.loads(out)}
    assert ids and ids <= others(ctx), (ids, others(ctx))


def check_peers(out, ctx):
    assert others(ctx) & set(out.split()), out


def closest_first(out, target, ids):
    """Result lines `ID IP:PORT rtt_ms` sorted by XOR distance to target,
    every ID one of ids, then the `# rounds= queries= elapsed_ms=` line."""
    lines = out.strip().splitlines()
    assert re.fullmatch(r"# rounds=\d+ queries=\d+ elapsed_ms=\d+",
                        lines[-1]), out
    found = [l.split()[0] for l in lines[:-1] if not l.startswith("peer ")]
    assert found and set(found) <= ids, (found, ids)
    dist = [int(i, 16) ^ int(target, 16) for i in found]
    assert dist == sorted(dist), out


def check_lookup(out, ctx):
    target = ctx["line"].split()[-1]
    closest_first(out, target, all_ids(ctx))
    # Every node of the README's network is among the k closest.
    assert {l.split()[0] for l in out.splitlines()[:-1]} == all_ids(ctx), out


def check_lookup_json(out, ctx):
    j = json.loads(out)
    assert j["target"] == hashlib.sha1(b"hello").hexdigest(), j
    assert j["nodes"] and {n["id"] for n in j["nodes"]} <= others(ctx), j


def check_announce(out, ctx):
    m = re.search(r"^# announced %s port=%s to (\d+) nodes$" % (
        ctx["line"].split()[-1], node_of(ctx)["port"]), out, re.M)
    assert m and int(m.group(1)) >= 1, out


def check_get_peers(out, ctx):
    target = ctx["line"].split()[-1]
    closest_first(out, target, all_ids(ctx))
    announcer = ctx["nodes"]["km-a"]
    assert "peer 127.0.0.1:%s" % announcer["port"] in out.splitlines(), out


def check_msg_id(out, ctx):
    assert re.fullmatch(r"[0-9a-f]{40}\n", out), out


def check_metrics(out, ctx):
    assert "# TYPE kadmesh_krpc_packets_sent_total counter" in out, out
    sent = re.search(r"^kadmesh_krpc_packets_sent_total (\d+)", out, re.M)
    assert sent and int(sent.group(1)) > 0, out


def check_histogram(out, ctx):
    assert out.startswith("# ipv4 buckets (nodes per bucket)"), out
    assert re.search(r"^ +\d+ \|#+ \d+$", out, re.M), out


def check_subscriber(out, ctx):
    # `id origin hops payload`: one message, the first broadcast.
    words = out.rstrip("\n").split(" ", 3)
    assert out.count("\n") == 1 and words[3] == "hello, mesh", out
    assert words[1] == ctx["nodes"]["km-a"]["id"], out


EXPECT = [
    (r" status$", check_status),
    (r" table --json$", check_table_json),
    (r" peers$", check_peers),
    (r"^dht-lookup --bootstrap ", check_lookup),
    (r"^dht-lookup --control .* --name hello --json$", check_lookup_json),
    (r" announce [0-9a-f]{40}$", check_announce),
    (r" get-peers [0-9a-f]{40}$", check_get_peers),
    (r" broadcast (\"hello, mesh\"|-)$", check_msg_id),
    (r" metrics$", check_metrics),
    (r" table --histogram$", check_histogram),
    (r" subscribe 1 &$", check_subscriber),
]


def check_output(line, out, ctx):
    checks = [f for pat, f in EXPECT if re.search(pat, line)]
    assert len(checks) == 1, f"no single output check for: {line}"
    checks[0](out, dict(ctx, line=line))


def main():
    text = open(README).read()
    tmp = tempfile.mkdtemp(prefix="kadmesh-readme-")
    port = str(free_port())
    env = {**os.environ, "PATH": os.environ["KM_BIN"] + ":" + os.environ["PATH"]}
    nodes, background, ready = [], [], {}
    ctx = {"nodes": ready}
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
                name = os.path.basename(state_dir(args))
                ready[name] = kmtest.read_ready(p, 15)
                if "--bootstrap" in args:
                    ctl = kmtest.Node(p, state_dir(args), None)
                    ctl.control = state_dir(args) + "/control.sock"
                    kmtest.wait_until(
                        lambda: kmtest.control(ctl, "peers"), timeout=30,
                        what="the joining node's first neighbour")
            elif line.endswith("&"):
                out = open(os.path.join(tmp, "bg%d.out" % len(background)),
                           "w+")
                p = subprocess.Popen(["bash", "-c", line[:-1]], env=env,
                                     stdout=out)
                background.append((line, p, out))
                m = re.search(r"--control (\S+) subscribe", line)
                if m:
                    ctl = kmtest.Node(None, None, None)
                    ctl.control = m.group(1)
                    kmtest.wait_until(lambda: kmtest.control(
                        ctl, "status")["subscribers"] > 0, timeout=10,
                        what="the subscriber")
            else:
                r = subprocess.run(["bash", "-c", line], env=env, timeout=60,
                                   capture_output=True, text=True)
                print(r.stdout, end="")
                assert r.returncode == 0, f"exit {r.returncode}: {line}"
                check_output(line, r.stdout, ctx)
        for line, p, out in background:
            assert p.wait(timeout=30) == 0, f"background command: {line}"
            out.seek(0)
            check_output(line, out.read(), ctx)
        for p in nodes:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0, "dht-node exits 0 on SIGTERM"
        print(f"test_readme: ok ({len(checked_lines(text))} commands)")
    finally:
        for p in nodes + [b[1] for b in background]:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    main()
