#!/usr/bin/env python3
"""Neighbours and broadcast on a small network, and hostile overlay peers.

- 3 nodes form a full mesh, and a broadcast from each is delivered exactly
  once by the other two (dht-ctl subscribe on every node).
- A peer that never answers PING is dropped with GOODBYE TIMEOUT.
- A peer that sends a frame of an unknown type gets GOODBYE with a reason.
- 100 connections from one IP are capped at --max-per-ip.
Every node is stopped by PID (kmtest.Cluster), also on failure.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

HELLO, PING = kmtest.F_HELLO, kmtest.F_PING
BYE_PROTOCOL_ERROR, BYE_TIMEOUT = kmtest.BYE_PROTOCOL_ERROR, kmtest.BYE_TIMEOUT
PING_MS = 300
frame, goodbye_of = kmtest.frame, kmtest.goodbye_of


def test_three_nodes_form_a_full_mesh_and_deliver_each_broadcast_once(c):
    opts = ["--ping-interval", str(PING_MS)]
    seed = c.start(seed=True, extra=opts)
    nodes = [seed] + [c.start(bootstrap=[seed], extra=opts) for _ in range(2)]

    def mesh():
        for n in nodes:
            peers = kmtest.control(n, "peers")
            if sorted(p["id"] for p in peers) != sorted(
                    m.id for m in nodes if m is not n):
                return False
        return True
    kmtest.wait_until(mesh, timeout=30, what="a full mesh of 3")
    subs = kmtest.subscribe_all(nodes)
    try:
        for origin in nodes:
            text = "hello from %s" % origin.id[:8]
            msg_id = c.ctl(origin, "broadcast", text).strip()
            kmtest.wait_until(lambda: all(s.count(msg_id) >= 1 for s in subs),
                              timeout=20, what="delivery of " + text)
        # Any duplicate arrives before the subscribers stop changing.
        kmtest.wait_stable(lambda: [len(s.messages) for s in subs],
                           what="duplicates")
        for s in subs:
            ids = [m[0] for m in s.messages]
            assert len(ids) == 3 and len(set(ids)) == 3, s.messages
            for m in s.messages:
                assert m[3].startswith("hello from "), m
        print("full mesh: 3 messages, each delivered once on each node")
    finally:
        for s in subs:
            s.stop()


def test_a_peer_that_never_answers_ping_is_dropped(c):
    node = c.start(seed=True, extra=["--ping-interval", str(PING_MS)])
    with socket.create_connection((kmtest.HOST, node.port), timeout=5) as s:
        reader, _, _ = kmtest.overlay_handshake(s)
        t0 = time.monotonic()
        frames = reader.until_closed(timeout=20)
        took = time.monotonic() - t0
    assert frames is not None, "the silent peer was never dropped"
    pings = sum(1 for t, _ in frames if t == PING)
    bye = goodbye_of(frames)
    assert bye and bye[0] == BYE_TIMEOUT, frames
    assert pings == 3, "%d PINGs before giving up" % pings
    assert kmtest.control(node, "status")["neighbours"]["ping_timeouts"] == 1
    print("silent peer: dropped after %d PINGs in %.1f s: GOODBYE %r" %
          (pings, took, bye))


def test_a_frame_of_unknown_type_gets_goodbye_with_a_reason(c):
    node = c.start(seed=True)
    with socket.create_connection((kmtest.HOST, node.port), timeout=5) as s:
        reader, _, _ = kmtest.overlay_handshake(s)
        s.sendall(frame(0xEE, b"whatever"))
        frames = reader.until_closed(timeout=10)
    bye = goodbye_of(frames)
    assert bye and bye[0] == BYE_PROTOCOL_ERROR and bye[1], frames
    assert frames[0][0] == kmtest.F_PEER_LIST, "the handshake came first"
    print("bad frame type: GOODBYE %r" % (bye,))


def still_open(sock):
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_100_connections_from_one_ip_are_capped(c):
    cap = 4
    node = c.start(seed=True, extra=["--max-per-ip", str(cap),
                                     "--cap-loopback"])
    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection((kmtest.HOST, node.port),
                                                  timeout=5))

        def refused():
            return kmtest.control(node, "status")["neighbours"]["refused_ip"]
        kmtest.wait_until(lambda: refused() >= 100 - cap, timeout=20,
                          what="the per-IP cap")
        open_now = sum(1 for s in socks if still_open(s))
        assert open_now <= cap, "%d connections still open" % open_now
        assert refused() == 100 - cap, refused()
        print("100 connections from one IP: %d refused, %d left open" %
              (refused(), open_now))
    finally:
        for s in socks:
            s.close()
    assert kmtest.krpc_ping(node.port)


def main():
    tests = [test_three_nodes_form_a_full_mesh_and_deliver_each_broadcast_once,
             test_a_peer_that_never_answers_ping_is_dropped,
             test_a_frame_of_unknown_type_gets_goodbye_with_a_reason,
             test_100_connections_from_one_ip_are_capped]
    kmtest.run_cluster_tests(tests)


if __name__ == "__main__":
    main()
