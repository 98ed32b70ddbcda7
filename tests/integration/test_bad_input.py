"""Hostile bytes on UDP and TCP get error replies, silence or a closed
connection, and the node still answers a valid ping afterwards.  A
well-formed query the node cannot serve always gets its KRPC error: 204 for
an unknown method, 203 for missing arguments (BEP 5; docs/BENCHMARKS.md)."""

import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402
from kmtest import bencode  # noqa: E402

GOODBYE = 6


def error_code(reply):
    """The KRPC error code in reply, or None."""
    try:
        if reply and reply.get(b"y") == b"e":
            return reply[b"e"][0]
    except (IndexError, TypeError, KeyError):
        pass
    return None


def send_udp_burst(port, payloads):
    """Sends every payload from one socket; returns the replies that came."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in payloads:
            s.sendto(p, (kmtest.HOST, port))
        s.settimeout(0.5)
        while True:
            try:
                replies.append(s.recvfrom(65536)[0])
            except socket.timeout:
                return replies


def test_random_bytes_and_truncated_bencode_cost_nothing(node):
    rnd = random.Random(1234)
    junk = [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 1400)))
            for _ in range(300)]
    ping = bencode({b"t": b"aa", b"y": b"q", b"q": b"ping",
                    b"a": {b"id": kmtest.random_id()}})
    junk += [ping[:i] for i in range(len(ping))]
    for r in send_udp_burst(node.port, junk):
        kmtest.bdecode(r)   # whatever comes back is well-formed
    assert kmtest.krpc_ping(node.port)


def test_unknown_methods_get_204_and_malformed_queries_203(node):
    unknown = kmtest.krpc_query(node.port, "frobnicate", timeout=2)
    assert error_code(unknown) == 204, unknown
    missing = bencode({b"t": b"ab", b"y": b"q", b"q": b"find_node",
                       b"a": {b"id": kmtest.random_id()}})
    reply = kmtest.udp_exchange(node.port, missing, timeout=2)
    assert reply is not None, "no 203 for a find_node without a target"
    assert error_code(kmtest.bdecode(reply)) == 203, reply
    assert kmtest.krpc_ping(node.port)


def test_huge_integers_and_deep_nesting_are_refused(node):
    huge = b"d1:ad2:id20:" + b"x" * 20 + b"6:targeti" + b"9" * 5000 + \
        b"ee1:q9:find_node1:t2:aa1:y1:qe"
    deep = b"l" * 10000 + b"e" * 10000
    neg = bencode({b"t": b"ac", b"y": b"q", b"q": b"announce_peer",
                   b"a": {b"id": kmtest.random_id(), b"port": -1,
                          b"info_hash": kmtest.random_id(), b"token": b"x"}})
    big_port = neg.replace(b"i-1e", b"i99999999999999999999999e")
    for r in send_udp_burst(node.port, [huge, deep, neg, big_port]):
        kmtest.bdecode(r)
    assert kmtest.krpc_ping(node.port)


def read_until_closed(sock, timeout=5.0):
    """Reads until the peer closes; returns the bytes, or None on timeout."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def assert_closed_after(node, payload):
    with socket.create_connection((kmtest.HOST, node.port), timeout=5) as s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            return
        data = read_until_closed(s)
    assert data is not None, "the node kept a bad connection open"
    if data:   # anything sent first must be a well-formed GOODBYE
        assert data[0] == GOODBYE, data[:16]
        assert int.from_bytes(data[1:5], "big") == len(data) - 5


def test_garbage_frames_close_the_connection(node):
    assert_closed_after(node, b"\xff" + b"\x00\x00\x00\x04junk")
    assert_closed_after(node, os.urandom(4096))
    assert kmtest.krpc_ping(node.port)


def test_a_4_gib_length_prefix_closes_the_connection(node):
    assert_closed_after(node, b"\x01\xff\xff\xff\xff")
    assert_closed_after(node, b"\x01\xff\xff\xff\xff" + b"\x00" * 1024)
    assert kmtest.krpc_ping(node.port)


def test_many_idle_connections_do_not_stop_the_node(node):
    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection((kmtest.HOST, node.port),
                                                  timeout=5))
        assert kmtest.krpc_ping(node.port)
    finally:
        for s in socks:
            s.close()
    assert kmtest.krpc_ping(node.port)


def main():
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    with kmtest.Cluster() as c:
        seed = c.start(seed=True)
        node = c.start(bootstrap=[seed])
        for t in tests:
            t(node)
            assert node.alive() and seed.alive()
            print("ok", t.__name__)
        assert node.stop() == 0 and seed.stop() == 0


if __name__ == "__main__":
    main()
