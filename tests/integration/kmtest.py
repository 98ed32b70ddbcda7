"""Shared helpers for kadmesh integration tests.

Everything runs on 127.0.0.1 with ports picked by the kernel (--port 0) and
temporary state directories.  Typical use:

    import kmtest
    with kmtest.Cluster() as c:              # stops and checks every node
        seed = c.start(seed=True)            # -> kmtest.Node
        a = c.start(bootstrap=[seed])        # state dir is created for it
        reply = kmtest.krpc_ping(a.port)     # decoded KRPC reply, or None
        st = c.ctl(a, "status", "--json")    # parsed JSON from dht-ctl

Node attributes: id (40 hex), port, control (path or None), state_dir, proc,
log (path of its stderr).  Node.stop() sends SIGTERM and returns the exit
code; Node.kill() sends SIGKILL (a crash test: that node's exit code is not
checked).  Leaving the Cluster SIGTERMs every node still running and fails
the test if a node exited non-zero or any log holds a sanitizer report
(kmtest.stop_and_scan).  Cluster.restart(node, ...) starts a new
process with the same state dir.  Every wait is bounded.

The KRPC helpers carry a tiny bencoder: bencode(obj) / bdecode(bytes), where
strings are bytes, and krpc_query(port, method, args) sends one query and
returns the reply dict (or None on timeout).
"""

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
HOST6 = "::1"

# A test that cannot run here exits SKIP (ctest's SKIP_RETURN_CODE), so a
# skip never reads as a pass.  A test that runs but leaves out one check
# says so with skip_check(): ./tools/test collects those lines, prints them
# and, under CI, fails on any not on its allowlist.
SKIP = 77


def skip(why):
    """Ends a test that cannot run here as skipped."""
    print("SKIP: " + why, flush=True)
    sys.exit(SKIP)


def skip_check(what, why):
    """Reports one check left out of a test that otherwise ran."""
    print("KM-SKIP-CHECK: %s: %s" % (what, why), flush=True)


def have_ipv6_loopback():
    """True if a UDP socket can bind ::1 (IPv6 tests skip otherwise)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind((HOST6, 0))
        return True
    except OSError:
        return False


def bin_path(name):
    """Path of a kadmesh program, from $KM_BIN (set by ctest) or build/bin."""
    d = os.environ.get("KM_BIN")
    if not d:
        here = os.path.dirname(os.path.abspath(__file__))
        d = os.path.join(here, "..", "..", "build", "bin")
    return os.path.join(d, name)


def have(name):
    return os.access(bin_path(name), os.X_OK)


# --- bencode -----------------------------------------------------------------

def bencode(v):
    if isinstance(v, bool):
        raise TypeError("no booleans in bencode")
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, (bytes, bytearray)):
        return b"%d:%s" % (len(v), bytes(v))
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x)
                       for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError("cannot bencode %r" % type(v))


def bdecode(data):
    """Decodes one complete value; raises ValueError on anything malformed."""
    v, i = _bdec(data, 0)
    if i != len(data):
        raise ValueError("trailing bytes")
    return v


def _bdec(d, i):
    if i >= len(d):
        raise ValueError("truncated")
    c = d[i:i + 1]
    if c == b"i":
        j = d.index(b"e", i)
        return int(d[i + 1:j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while d[i:i + 1] != b"e":
            v, i = _bdec(d, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while d[i:i + 1] != b"e":
            k, i = _bdec(d, i)
            out[k], i = _bdec(d, i)
        return out, i + 1
    if c.isdigit():
        j = d.index(b":", i)
        n = int(d[i:j])
        if j + 1 + n > len(d):
            raise ValueError("truncated string")
        return d[j + 1:j + 1 + n], j + 1 + n
    raise ValueError("bad byte %r" % c)


# --- KRPC over UDP -----------------------------------------------------------

def random_id():
    return bytes(random.getrandbits(8) for _ in range(20))


def udp_exchange(port, payload, timeout=2.0, host=HOST):
    """Sends one datagram and returns the first datagram back, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, (host, port))
        try:
            data, _ = s.recvfrom(65536)
            return data
        except socket.timeout:
            return None


def krpc_query(port, method, args=None, timeout=2.0, tid=b"kt", ro=True):
    """Sends a KRPC query; returns the decoded reply dict or None.  With ro
    (BEP 43, the default) the node does not add the test's throwaway socket
    to its routing table, so probing does not disturb the network."""
    a = {b"id": random_id()}
    a.update(args or {})
    q = {b"t": tid, b"y": b"q", b"q": method.encode(), b"a": a}
    if ro:
        q[b"ro"] = 1
    msg = bencode(q)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(msg, (HOST, port))
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _ = s.recvfrom(65536)
            except socket.timeout:
                return None
            try:
                r = bdecode(data)
            except ValueError:
                continue
            if isinstance(r, dict) and r.get(b"t") == tid:
                return r
    return None


def krpc_ping(port, timeout=2.0):
    """The reply to a ping if it is a proper response ('y' == 'r'), else None."""
    r = krpc_query(port, "ping", timeout=timeout)
    if r and r.get(b"y") == b"r" and len(r.get(b"r", {}).get(b"id", b"")) == 20:
        return r
    return None


def krpc_find_node(port, target=None, timeout=2.0):
    """[(id_hex, ip, port)] from a find_node reply's compact 'nodes', or None."""
    r = krpc_query(port, "find_node", {b"target": target or random_id()},
                   timeout=timeout)
    if not r or r.get(b"y") != b"r":
        return None
    nodes = r[b"r"].get(b"nodes", b"")
    out = []
    for i in range(0, len(nodes) - len(nodes) % 26, 26):
        e = nodes[i:i + 26]
        out.append((e[:20].hex(), socket.inet_ntoa(e[20:24]),
                    int.from_bytes(e[24:26], "big")))
    return out


# --- processes ---------------------------------------------------------------

class Node:
    def __init__(self, proc, state_dir, log, hosts=(HOST,)):
        self.proc, self.state_dir, self.log = proc, state_dir, log
        self.hosts = tuple(hosts)  # the --bind addresses, first one first
        self.id = self.port = self.control = None
        self.killed = False  # SIGKILLed by the test: no exit code to check
        self._termed = False

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after timeout; returns the exit code."""
        if self.alive():
            self.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
                return "hung on SIGTERM"
        return self.proc.wait(timeout)

    def terminate(self):
        """SIGTERM, once: a second one during shutdown kills the node."""
        if not self._termed and self.alive():
            self._termed = True
            self.proc.send_signal(signal.SIGTERM)

    def kill(self):
        """SIGKILL on purpose (a crash test): close() skips its exit code."""
        self.killed = True
        if self.alive():
            self.proc.kill()
        return self.proc.wait(10)

    def stderr(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def addr(self, ipv6=None):
        """HOST:PORT of its first --bind address, or of its IPv6 (ipv6=True)
        or IPv4 (ipv6=False) one; IPv6 as [::1]:PORT."""
        hosts = [h for h in self.hosts if ipv6 is None or (":" in h) == ipv6]
        h = hosts[0]
        return ("[%s]:%d" if ":" in h else "%s:%d") % (h, self.port)


def read_ready(proc, timeout=10.0):
    """Reads stdout until the ready line; returns its key=value fields."""
    buf = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            raise RuntimeError("no ready line (exit %r): %r" % (proc.poll(), buf))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk and proc.poll() is not None:
                raise RuntimeError("node exited %r before ready" % proc.poll())
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode()
    words = line.split()
    if not words or words[0] != "ready":
        raise RuntimeError("unexpected first line %r" % line)
    return dict(w.split("=", 1) for w in words[1:])


class Cluster:
    """Owns a temp dir and every node started through it; stops them all."""

    def __init__(self, log_level="info"):
        self.tmp = tempfile.mkdtemp(prefix="kmtest-")
        self.nodes = []
        self.log_level = log_level
        self._n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(keep_logs=exc[0] is not None)
        return False

    def close(self, keep_logs=False):
        """Stops every node with SIGTERM and reads every node's log.  A node
        the test killed on purpose (Node.kill) is not asked for an exit code.
        Raises, when the test itself passed (keep_logs False), if a node
        exited non-zero or any log holds a sanitizer report: leaks show only
        at a clean exit, so a SIGKILL at the end would hide them."""
        problems = stop_and_scan(self.nodes)
        if keep_logs or problems:
            for n in self.nodes:
                err = n.stderr()
                if err:
                    sys.stderr.write("--- node pid %d log (%s):\n%s\n" %
                                     (n.pid, n.log, sanitizer_tail(err)))
        subprocess.run(["rm", "-rf", self.tmp], check=False)
        if problems and not keep_logs:
            raise AssertionError("; ".join(problems))

    def new_state_dir(self):
        self._n += 1
        return os.path.join(self.tmp, "node%d" % self._n)

    def start(self, seed=False, bootstrap=(), state_dir=True, extra=(),
              timeout=10.0, prefix=(), bind=(HOST,), lan=False):
        """Starts dht-node with --port 0 on the addresses in bind (one
        --bind each; 127.0.0.1 by default).  bootstrap holds Nodes or
        "HOST:PORT" strings; state_dir=True makes a fresh one, a path
        reuses it, None runs without one.  prefix (e.g. valgrind, or
        `ip netns exec NS`) goes before the program.  lan=True leaves LAN
        discovery on (only inside a network namespace)."""
        if state_dir is True:
            state_dir = self.new_state_dir()
        # --no-lan: loopback tests must not multicast onto the host's LAN
        # (LAN discovery is tested inside a network namespace).
        args = list(prefix) + [bin_path("dht-node"), "--port", "0",
                               "--log-level", self.log_level]
        for h in bind:
            args += ["--bind", h]
        if not lan:
            args.append("--no-lan")
        if seed:
            args.append("--seed")
        for b in bootstrap:
            args += ["--bootstrap", b.addr() if isinstance(b, Node) else b]
        if state_dir:
            args += ["--state-dir", state_dir]
        args += list(extra)
        self._n += 1
        log = os.path.join(self.tmp, "log%d.txt" % self._n)
        with open(log, "wb") as errf:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf,
                                    stdin=subprocess.DEVNULL)
        node = Node(proc, state_dir, log, bind)
        self.nodes.append(node)
        try:
            f = read_ready(proc, timeout)
        except RuntimeError as e:
            raise RuntimeError("%s\nstderr:\n%s" % (e, node.stderr()))
        node.id, node.port = f["id"], int(f["port"])
        node.control = f.get("control") if f.get("control") != "none" else None
        return node

    def restart(self, node, **kw):
        """Starts a new process on node's state dir (after it has exited)."""
        if node.alive():
            node.kill()
        return self.start(state_dir=node.state_dir, **kw)

    def ctl(self, node, *args, timeout=10.0):
        """Runs dht-ctl against node; parses the output as JSON if it can."""
        r = subprocess.run([bin_path("dht-ctl"), "--control", node.control] +
                           list(args), capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("dht-ctl %s failed: %s" %
                               (" ".join(args), r.stderr.decode(errors="replace")))
        try:
            return json.loads(r.stdout)
        except ValueError:
            return r.stdout.decode()


# A report from ASan, UBSan or LeakSanitizer in a node's stderr.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_report(text):
    """The first sanitizer report line in text, or None."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            return line.strip()
    return None


def sanitizer_tail(text, tail=4000):
    """text's last tail characters, or from its sanitizer report on."""
    first = min((text.find(m) for m in SANITIZER_MARKS if m in text),
                default=-1)
    if first >= 0:
        return text[first:first + 4 * tail]
    return text[-tail:]


def stop_and_scan(nodes, timeout=10.0):
    """SIGTERMs every live node (all at once, then waits for each) and
    returns a list of problems: a non-zero exit of a node not killed on
    purpose, and every sanitizer report in any node's log."""
    for n in nodes:
        n.terminate()
    problems = []
    for n in nodes:
        code = n.stop(timeout)
        if code != 0 and not n.killed:
            problems.append("node pid %d exited %r" % (n.pid, code))
        report = sanitizer_report(n.stderr())
        if report:
            problems.append("node pid %d: %s" % (n.pid, report))
    return problems


def wait_until(pred, timeout=10.0, interval=0.1, what="condition"):
    """Polls pred() until it returns something truthy; raises on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def linked(a, b):
    """True when a and b list each other as neighbours.  The acceptor's
    list alone is no proof: a joiner's seed link is listed there until the
    joiner, having its PEER_LIST, closes it and dials whom its table picks
    (docs/PROTOCOL.md); that link never counts on the joiner's side."""
    return (any(p["id"] == b.id for p in control(a, "peers")) and
            any(p["id"] == a.id for p in control(b, "peers")))


def wait_linked(a, b, timeout=30.0):
    """Waits until linked(a, b)."""
    wait_until(lambda: linked(a, b), timeout=timeout,
               what="%s and %s to be neighbours" % (a.id[:8], b.id[:8]))


def wait_stable(fn, window=1.5, interval=0.25, timeout=30.0,
                what="values to stop changing"):
    """Polls fn() until it returns the same value for window seconds (and at
    least three polls in a row); returns that value, raises on timeout.
    For "nothing more will arrive" checks: window must exceed the longest
    timer that could still send something (Plumtree's IHAVE timeout is 1 s,
    hence 1.5 s by default)."""
    deadline = time.monotonic() + timeout
    last, since, polls = fn(), time.monotonic(), 1
    while True:
        time.sleep(interval)
        v = fn()
        now = time.monotonic()
        if v != last:
            last, since, polls = v, now, 1
        else:
            polls += 1
            if polls >= 3 and now - since >= window:
                return v
        if now >= deadline:
            raise AssertionError("timed out waiting for " + what)


def dht_idle(status):
    """True if a node's status shows no lookup running and no query
    awaiting a reply: its join is over and its table changes no more until
    a timer fires (a refresh, a ping), which is the convergence signal the
    multi-node tests wait for."""
    return status["lookups"]["running"] == 0 and status["transactions"] == 0


# --- overlay (TCP) peers played by a test -------------------------------------
#
# The handshake of docs/PROTOCOL.md, with Ed25519 from the `cryptography`
# module: overlay_handshake() connects as an inbound peer and proves a key.

NETWORK = 0x6b6d3031
PROTO_VERSION = 2
F_HELLO, F_PEER_LIST, F_PING, F_PONG, F_MESSAGE, F_GOODBYE = 1, 2, 3, 4, 5, 6
F_AUTH = 10
BYE_PROTOCOL_ERROR, BYE_TIMEOUT, BYE_AUTH = 5, 6, 9


def frame(ftype, body):
    import struct
    return struct.pack(">BI", ftype, len(body)) + body


class OverlayKey:
    """An Ed25519 key pair: .pub (32 bytes) and .sign(data)."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import \
            Ed25519PrivateKey
        from cryptography.hazmat.primitives import serialization
        self._k = Ed25519PrivateKey.generate()
        self.pub = self._k.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, data):
        return self._k.sign(data)


def verify(pub, sig, data):
    """Raises unless sig is pub's Ed25519 signature of data."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import \
        Ed25519PublicKey
    Ed25519PublicKey.from_public_bytes(pub).verify(sig, data)


def hello_body(node_id, key, nonce, network=NETWORK, version=PROTO_VERSION):
    import struct
    return (struct.pack(">BI", version, network) + node_id +
            struct.pack(">H", 0) + b"\x00" + struct.pack(">H", 0) +
            key.pub + nonce)


def parse_hello(body):
    """{id, pub, nonce} of a HELLO body."""
    fam = body[27]
    off = 28 + {0: 0, 4: 4, 6: 16}[fam] + 2
    return {"id": body[5:25], "pub": body[off:off + 32],
            "nonce": body[off + 32:off + 64]}


def auth_tbs(signer_id, signer_pub, signer_nonce, verifier_id,
             verifier_nonce, network=NETWORK):
    import struct
    return (b"kadmesh auth v2\x00" + struct.pack(">I", network) + signer_id +
            signer_pub + signer_nonce + verifier_id + verifier_nonce)


class FrameReader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _take(self):
        import struct
        if len(self.buf) < 5:
            return None
        t, n = struct.unpack(">BI", self.buf[:5])
        if len(self.buf) < 5 + n:
            return None
        f, self.buf = (t, self.buf[5:5 + n]), self.buf[5 + n:]
        return f

    def next(self, timeout=10.0):
        """The next frame, or None if the peer closed or time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._take()
            if f:
                return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk

    def until_closed(self, timeout):
        """Every frame until the peer closes; None if it never does."""
        frames, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.next(max(0.01, deadline - time.monotonic()))
            if f is None:
                return frames if self._closed() else None
            frames.append(f)
        return None

    def _closed(self):
        try:
            self.sock.settimeout(0.05)
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except socket.timeout:
            return False
        except OSError:
            return True


def goodbye_of(frames):
    """(reason, text) of the GOODBYE among frames, or None."""
    for t, body in frames or []:
        if t == F_GOODBYE and len(body) >= 2:
            return body[0], body[2:2 + body[1]].decode()
    return None


def overlay_handshake(sock, node_id=None, key=None, signer=None):
    """HELLO and AUTH as an inbound peer.  Returns (reader, their HELLO as
    parse_hello() gives it, the bytes we sent).  signer signs the AUTH
    (default: key) -- another key makes an impersonator."""
    node_id = node_id or random_id()
    key = key or OverlayKey()
    nonce = os.urandom(32)
    reader = FrameReader(sock)
    sent = frame(F_HELLO, hello_body(node_id, key, nonce))
    sock.sendall(sent)
    f = reader.next()
    assert f and f[0] == F_HELLO, f
    theirs = parse_hello(f[1])
    f = reader.next()
    assert f and f[0] == F_AUTH, f
    verify(theirs["pub"], f[1], auth_tbs(theirs["id"], theirs["pub"],
                                         theirs["nonce"], node_id, nonce))
    sig = (signer or key).sign(auth_tbs(node_id, key.pub, nonce, theirs["id"],
                                        theirs["nonce"]))
    auth = frame(F_AUTH, sig)
    sock.sendall(auth)
    return reader, theirs, sent + auth


def run_cluster_tests(tests):
    """Runs each test(c) on a fresh Cluster; every node must still be alive
    at the end and exit 0 on SIGTERM."""
    for t in tests:
        with Cluster() as c:
            t(c)
            for n in c.nodes:
                assert n.alive(), "a node died"
                assert n.stop() == 0
        print("ok", t.__name__)


# --- examples/chat: two instances exchange a line ----------------------------

def chat_start(exe, *args, env=None):
    """Starts a chat program; returns (process, queue of its stdout lines)."""
    import queue
    import threading
    p = subprocess.Popen([exe, *args], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.rstrip("\n"))
                                     for l in p.stdout], daemon=True).start()
    return p, lines


def chat_expect(lines, pred, what, timeout=15.0):
    """The first line pred accepts; raises after timeout without one."""
    import queue
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {what} within {timeout}s; saw {seen}")
        seen.append(line)
        if pred(line):
            return line


def chat_exchange(exe, env=None):
    """Two instances of exe (examples/chat) on loopback: b joins a, a line
    typed into b (with an escape byte, shown as `?`) arrives at a, and both
    exit 0 at the end of their input.  Returns the line a printed."""
    procs = []
    try:
        a, a_out = chat_start(exe, "127.0.0.1:0", "seed", env=env)
        procs.append(a)
        port = chat_expect(a_out, lambda l: l.startswith("port "),
                           "port").split()[1]
        b, b_out = chat_start(exe, "127.0.0.1:0", "127.0.0.1:" + port,
                              env=env)
        procs.append(b)
        for out in (a_out, b_out):
            chat_expect(out, lambda l: l == "neighbours 1", "neighbour")
        b.stdin.write("hello over \x1b[31mkadmesh\n")
        b.stdin.flush()
        got = chat_expect(a_out,
                          lambda l: l.endswith(": hello over ?[31mkadmesh"),
                          "the line from b")
        for p in (a, b):
            p.stdin.close()
        for p in (a, b):
            assert p.wait(timeout=10) == 0, "chat exits 0 at end of input"
        return got
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# --- the control socket, without a dht-ctl process per request -------------

def control(node, line, timeout=10.0):
    """Sends one control request line; returns the parsed "result" (raises
    RuntimeError on an error answer).  Much cheaper than Cluster.ctl when a
    test polls many nodes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(node.control)
        s.sendall(line.encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("control socket closed")
            buf += chunk
    reply = json.loads(buf.split(b"\n", 1)[0])
    if not reply.get("ok"):
        raise RuntimeError("%s: %s" % (line, reply.get("error")))
    return reply["result"]


class Subscriber:
    """`dht-ctl subscribe` on a node; a thread collects (id, origin, hops,
    payload) for every delivered message.  stop() ends the process."""

    def __init__(self, node):
        import threading
        self.node, self.messages = node, []
        self.proc = subprocess.Popen(
            [bin_path("dht-ctl"), "--control", node.control, "subscribe"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            parts = raw.decode(errors="replace").rstrip("\n").split(" ", 3)
            if len(parts) == 4:
                with self._lock:
                    self.messages.append((parts[0], parts[1], int(parts[2]),
                                          parts[3]))

    def count(self, msg_id):
        with self._lock:
            return sum(1 for m in self.messages if m[0] == msg_id)

    def hops(self, msg_id):
        with self._lock:
            return [m[2] for m in self.messages if m[0] == msg_id]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def subscribe_all(nodes, timeout=30.0):
    """A Subscriber per node, returned once every node reports it."""
    subs = [Subscriber(n) for n in nodes]
    wait_until(lambda: all(control(n, "status")["subscribers"] >= 1
                           for n in nodes),
               timeout=timeout, what="subscriptions")
    return subs
