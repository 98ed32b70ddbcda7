#!/usr/bin/env python3
"""Every --json output, and every control protocol answer, parses with a
strict JSON parser (python's json over UTF-8) after hostile bytes went in:
broadcast payloads of every byte value, command names and arguments with
quotes, backslashes, control characters and invalid UTF-8, KRPC queries
with hostile method names and client versions, GOODBYE reasons from a fake
peer with quotes, backslashes, control characters and invalid UTF-8."""
import base64
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

HOSTILE = [b'"', b"\\", b"\x00", b"\x01\x1f\x7f", b"\xff\xfe", b"\xc3(",
           b"\xed\xa0\x80", b"</script>", b'{"ok":true}', b"\u2028".decode(
               "unicode_escape").encode(), "é✓".encode()]


def strict(raw, what):
    """raw: bytes of one JSON document; fails on invalid UTF-8 too."""
    try:
        return json.loads(raw.decode("utf-8", errors="strict"))
    except (UnicodeDecodeError, ValueError) as e:
        raise AssertionError(f"{what}: not valid JSON ({e}): {raw[:300]!r}")


def raw_control(node, line):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(node.control)
        s.sendall(line + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, "control socket closed"
            buf += chunk
    return strict(buf.split(b"\n", 1)[0], f"answer to {line!r}")


def ctl_json(node, *args, stdin=None):
    r = subprocess.run([kmtest.bin_path("dht-ctl"), "--control", node.control,
                        "--json", *args], input=stdin, capture_output=True,
                       timeout=30)
    assert r.returncode == 0, (args, r.stderr)
    return [strict(l, f"dht-ctl --json {args[0]}")
            for l in r.stdout.splitlines()]


def goodbye_from_fake_peer(node, code, text):
    body = bytes([code, len(text)]) + text
    with socket.create_connection((kmtest.HOST, node.port), 5) as s:
        s.sendall(kmtest.frame(kmtest.F_GOODBYE, body))  # before any HELLO
        s.settimeout(5)
        try:
            while s.recv(4096):  # the node hangs up
                pass
        except OSError:
            pass


def last_goodbye(node):
    return ctl_json(node, "status")[0]["last_goodbye"]


def check_goodbyes(seed):
    """The last GOODBYE's reason reaches `status --json` escaped, and a
    text that is not UTF-8 leaves only the code; the human view prints no
    control character raw."""
    text = 'bye "x" \\ \x01\x1b[31m\x7f\u2028 é✓'.encode()
    goodbye_from_fake_peer(seed, 5, text)
    kmtest.wait_until(lambda: (last_goodbye(seed) or {}).get("text")
                      == text.decode(), timeout=10, what="last_goodbye")
    g = last_goodbye(seed)
    assert g["code"] == 5 and g["reason"] == "PROTOCOL_ERROR", g
    assert g["id"] is None, "an unauthenticated peer's ID is not claimed"
    assert g["from"].startswith(kmtest.HOST + ":"), g
    r = subprocess.run([kmtest.bin_path("dht-ctl"), "--control",
                        seed.control, "status"], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines()
            if l.startswith(b"last_goodbye.text:")]
    assert line and not any(c < 0x20 or c == 0x7f for c in line[0]), line
    goodbye_from_fake_peer(seed, 200, b"\xff\xfe\xc3(")
    kmtest.wait_until(lambda: last_goodbye(seed)["code"] == 200,
                      timeout=10, what="the second GOODBYE")
    g = last_goodbye(seed)
    assert g["text"] is None and g["reason"] == "UNKNOWN", g
    print(f"GOODBYE texts: {text!r} -> {line[0]!r}; invalid UTF-8 -> {g}")


def main():
    with kmtest.Cluster() as c:
        seed = c.start(seed=True)
        node = c.start(bootstrap=[seed])
        kmtest.wait_linked(seed, node)
        # Hostile KRPC from the network: method names, versions, ids.
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for h in HOSTILE:
            # ro (BEP 43): the closed socket must not enter the table.
            for q in ({b"t": h, b"y": b"q", b"q": h, b"v": h, b"ro": 1,
                       b"a": {b"id": kmtest.random_id()}},
                      {b"t": b"x", b"y": b"q", b"q": b"find_node", b"v": h,
                       b"ro": 1,
                       b"a": {b"id": kmtest.random_id(), b"target": h * 20}}):
                udp.sendto(kmtest.bencode(q), (kmtest.HOST, seed.port))
        udp.close()
        # Hostile control requests: every answer is one valid JSON line.
        answers = 0
        for h in HOSTILE:
            for line in (h, b"lookup " + h, b"broadcast " + h,
                         b"announce " + h + b" " + h, b"status " + h):
                raw_control(seed, line)
                answers += 1
        check_goodbyes(seed)
        # A broadcast payload of every byte value reaches the other node
        # intact through subscribe --json (base64).
        payload = bytes(range(256)) + b"".join(HOSTILE)
        sub = subprocess.Popen([kmtest.bin_path("dht-ctl"), "--control",
                                node.control, "--json", "subscribe", "1"],
                               stdout=subprocess.PIPE)
        try:
            kmtest.wait_until(lambda: kmtest.control(node, "status")
                              ["subscribers"] == 1,
                              timeout=10, what="the subscriber")
            ctl_json(seed, "broadcast", "-", stdin=payload)
            out, _ = sub.communicate(timeout=30)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
        ev = strict(out.splitlines()[0], "subscribe --json")
        assert base64.b64decode(ev["payload_b64"]) == payload
        # Every other --json output.
        target = kmtest.random_id().hex()
        for args in (["status"], ["table"], ["peers"], ["help"], ["metrics"],
                     ["lookup", target], ["get-peers", target],
                     ["announce", target, "7"]):
            ctl_json(seed, *args)
        for extra in (["--control", seed.control],
                      ["--bootstrap", seed.addr()]):
            r = subprocess.run([kmtest.bin_path("dht-lookup"), "--json",
                                *extra, "--name", "é\"\\\x01"],
                               capture_output=True, timeout=60)
            assert r.returncode == 0, r.stderr
            strict(r.stdout.strip(), "dht-lookup --json")
        r = subprocess.run([kmtest.bin_path("dht-sim"), "--nodes", "50",
                            "--seed", "1", "--scenario", "lookup",
                            "--lookups", "10", "--json"],
                           capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        strict(r.stdout.splitlines()[-1], "dht-sim --json")
        print(f"{answers} hostile control requests, {len(HOSTILE)} hostile "
              f"KRPC strings, a 256-byte-value payload: all JSON valid")
    print("test_json_hostile: ok")


if __name__ == "__main__":
    main()
