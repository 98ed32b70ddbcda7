#!/usr/bin/env python3
"""Authenticated links and signed broadcasts against real dht-node processes.

The test plays overlay peers itself (kmtest.overlay_handshake, Ed25519 from
the `cryptography` module):

- Impersonation: a peer authenticates as node ID X with key K1; a later
  connection claiming X with its own, correctly used key K2 gets GOODBYE
  AUTH, and `status` counts it.
- Replay: the first session's HELLO and AUTH, played back byte for byte on a
  new connection, get GOODBYE AUTH (the node's nonce is new).
- Forgery: in a 10-node network, the test joins node 0 as a neighbour and
  injects (1) a genuine message of node 5 with its payload changed and the
  ID recomputed, (2) a message in node 5's name signed with the test's own
  key, (3) a message from a made-up origin with a broken signature.  No node
  delivers any of them, and node 0 counts each as forged.
- /16 cap: with --max-per-16 2 --cap-loopback, four authenticated peers
  from four addresses in 127.0/16: two become neighbours, two get GOODBYE
  FULL, and `refused_subnet` says 2.
Every process is stopped by PID (kmtest.Cluster, Subscriber.stop), also on
failure.
"""
import hashlib
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

MSG_CONTEXT = b"kadmesh msg v2" + b"\x00\x00"
NODES = 10


def overlay_status(node):
    return kmtest.control(node, "status")["overlay"]


def test_impersonation_and_replay(c):
    node = c.start(seed=True)
    node_id, key = kmtest.random_id(), kmtest.OverlayKey()
    with socket.create_connection((kmtest.HOST, node.port), timeout=5) as s:
        reader, _, recorded = kmtest.overlay_handshake(s, node_id, key)
        f = reader.next()
        assert f and f[0] == kmtest.F_PEER_LIST, f
    assert overlay_status(node)["hellos_ok"] == 1

    with socket.create_connection((kmtest.HOST, node.port), timeout=5) as s:
        reader, _, _ = kmtest.overlay_handshake(s, node_id,
                                                kmtest.OverlayKey())
        bye = kmtest.goodbye_of(reader.until_closed(timeout=10))
    assert bye and bye[0] == kmtest.BYE_AUTH, bye
    kmtest.wait_until(lambda: overlay_status(node)["auth_key_refused"] == 1,
                      timeout=10, what="auth_key_refused")
    print("impersonation: GOODBYE %r" % (bye,))

    with socket.create_connection((kmtest.HOST, node.port), timeout=5) as s:
        s.sendall(recorded)
        bye = kmtest.goodbye_of(kmtest.FrameReader(s).until_closed(10))
    assert bye and bye[0] == kmtest.BYE_AUTH, bye
    st = overlay_status(node)
    assert st["auth_failed"] == 1 and st["hellos_ok"] == 1, st
    print("replayed HELLO+AUTH: GOODBYE %r" % (bye,))


def parse_message(body):
    return {"id": body[0:20], "origin": body[20:40],
            "seq": struct.unpack(">Q", body[40:48])[0],
            "pubkey": body[50:82], "sig": body[82:146], "payload": body[146:]}


def message_body(origin, seq, pubkey, sig, payload):
    msg_id = hashlib.sha1(origin + struct.pack(">Q", seq) + payload).digest()
    return (msg_id + origin + struct.pack(">QH", seq, 1) + pubkey + sig +
            payload), msg_id


def signed_message(key, origin, seq, payload):
    _, msg_id = message_body(origin, seq, key.pub, b"\0" * 64, payload)
    sig = key.sign(MSG_CONTEXT + msg_id + origin + struct.pack(">Q", seq) +
                   payload)
    return message_body(origin, seq, key.pub, sig, payload)[0]


def join_as_neighbour(node):
    s = socket.create_connection((kmtest.HOST, node.port), timeout=5)
    reader, _, _ = kmtest.overlay_handshake(s)
    f = reader.next()
    assert f and f[0] == kmtest.F_PEER_LIST, f
    return s, reader


def inject(node, body):
    """Sends one MESSAGE as a fresh neighbour; returns the GOODBYE."""
    s, reader = join_as_neighbour(node)
    with s:
        s.sendall(kmtest.frame(kmtest.F_MESSAGE, body))
        frames = reader.until_closed(timeout=10)
    return kmtest.goodbye_of(frames)


def test_forgeries_reach_no_node_of_ten(c):
    seed = c.start(seed=True)
    nodes = [seed] + [c.start(bootstrap=[seed]) for _ in range(NODES - 1)]
    kmtest.wait_until(
        lambda: all(kmtest.control(n, "status")["neighbours"]["out"] >= 1
                    for n in nodes[1:]), timeout=30, what="neighbours")
    subs = kmtest.subscribe_all(nodes)
    try:
        s, reader = join_as_neighbour(nodes[0])
        with s:
            msg_id = c.ctl(nodes[5], "broadcast", "pay 10").strip()
            kmtest.wait_until(lambda: all(x.count(msg_id) == 1 for x in subs),
                              timeout=20, what="the genuine broadcast")
            genuine = None
            deadline = time.monotonic() + 20
            while genuine is None and time.monotonic() < deadline:
                f = reader.next(timeout=1)   # eager push or IHAVE + GRAFT
                if f and f[0] == kmtest.F_MESSAGE:
                    genuine = parse_message(f[1])
                elif f and f[0] == 7:        # IHAVE: ask for it
                    s.sendall(kmtest.frame(8, f[1]))
        assert genuine and genuine["payload"] == b"pay 10", genuine
        origin = genuine["origin"]

        tampered, _ = message_body(origin, genuine["seq"], genuine["pubkey"],
                                   genuine["sig"], b"pay 99")
        thief = kmtest.OverlayKey()
        stolen_name = signed_message(thief, origin, genuine["seq"] + 1,
                                     b"forged in 5's name")
        made_up = bytearray(signed_message(thief, kmtest.random_id(), 1,
                                           b"forged origin"))
        made_up[100] ^= 1    # inside the signature
        for what, body in (("tampered payload", tampered),
                           ("another key", stolen_name),
                           ("bad signature", bytes(made_up))):
            bye = inject(nodes[0], body)
            assert bye and bye[0] == kmtest.BYE_PROTOCOL_ERROR, (what, bye)
            print("%s: GOODBYE %r" % (what, bye))
        kmtest.wait_until(lambda: kmtest.control(nodes[0], "status")
                          ["broadcast"]["forged"] == 3, timeout=10,
                          what="3 forgeries counted")
        # Anything relayed arrives before the counters stop changing.
        kmtest.wait_stable(lambda: ([len(x.messages) for x in subs],
                                    [kmtest.control(n, "status")["broadcast"]
                                     for n in nodes]),
                           what="anything relayed")
        for x in subs:
            payloads = [m[3] for m in x.messages]
            assert payloads == ["pay 10"], payloads
        print("%d nodes: only the genuine message delivered" % len(nodes))
    finally:
        for x in subs:
            x.stop()


def test_neighbours_per_16_are_capped(c):
    node = c.start(seed=True, extra=["--max-per-16", "2", "--cap-loopback"])
    socks, byes = [], []
    try:
        for i in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.settimeout(5)
            s.bind(("127.0.%d.1" % (i + 1), 0))
            s.connect((kmtest.HOST, node.port))
            reader, _, _ = kmtest.overlay_handshake(s)
            f = reader.next()
            assert f and f[0] == kmtest.F_PEER_LIST, f
            f = reader.next(timeout=1.0)
            byes.append(kmtest.goodbye_of([f]) if f else None)
    finally:
        for s in socks:
            s.close()
    assert byes[:2] == [None, None], byes
    assert [b and b[0] for b in byes[2:]] == [2, 2], byes   # FULL
    nb = kmtest.control(node, "status")["neighbours"]
    assert nb["refused_subnet"] == 2, nb
    print("4 peers in 127.0/16 with --max-per-16 2: %r" % (byes,))


def main():
    kmtest.run_cluster_tests([test_impersonation_and_replay,
                              test_forgeries_reach_no_node_of_ten,
                              test_neighbours_per_16_are_capped])


if __name__ == "__main__":
    main()
