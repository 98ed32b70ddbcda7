#!/usr/bin/env python3
"""Writes the hand-made seed corpora under tests/fuzz/<target>/.

The seeds are committed; this script documents how they were made and can
rewrite them after a format change.  Each seed is one small valid example."""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ID_A = bytes(range(20))
ID_B = bytes([0xAB] * 20)


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(ftype, payload):
    return struct.pack(">BI", ftype, len(payload)) + payload


def v4(ip, port):
    return bytes([4]) + bytes(ip) + struct.pack(">H", port)


def hello():
    return (struct.pack(">BI", 1, 0x6B6D3031) + ID_A + struct.pack(">H", 6881)
            + v4([127, 0, 0, 1], 6882))


def peer_list():
    v6 = bytes([6]) + bytes(15) + b"\x01" + struct.pack(">H", 7000)
    return struct.pack(">H", 2) + ID_A + v4([10, 0, 0, 1], 6881) + ID_B + v6


def message():
    return (bytes(range(20, 40)) + ID_A + struct.pack(">QH", 42, 3)
            + b"hello, mesh")


def goodbye():
    return bytes([1, 8]) + b"shutdown"


def bstr(s):
    return str(len(s)).encode() + b":" + s


def krpc_seeds():
    q = b"d1:ad2:id20:" + ID_A
    return {
        "ping": q + b"e1:q4:ping1:t2:aa1:y1:qe",
        "find_node": q + b"6:target20:" + ID_B + b"e1:q9:find_node1:t2:aa1:y1:qe",
        "get_peers": q + b"9:info_hash20:" + ID_B + b"e1:q9:get_peers1:t2:aa1:y1:qe",
        "announce": q + b"12:implied_porti1e9:info_hash20:" + ID_B
        + b"4:porti6881e5:token4:abcde1:q13:announce_peer1:t2:aa1:y1:qe",
        "reply_nodes": b"d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:" + ID_B
        + b"5:nodes26:" + ID_A + b"\x7f\x00\x00\x02\x1a\xe1"
        + b"e1:t2:aa1:v4:KM\x00\x011:y1:re",
        "reply_values": b"d1:rd2:id20:" + ID_B + b"5:token4:abcd6:valuesl6:"
        + b"\x7f\x00\x00\x02\x1a\xe1ee1:t2:aa1:y1:re",
        "error": b"d1:eli201e13:Generic Errore1:t2:aa1:y1:ee",
        "want_ro": q + b"6:target20:" + ID_B + b"4:wantl2:n42:n6ee1:q9:find_node"
        + b"2:roi1e1:t2:aa1:y1:qe",
    }


def state():
    body = b"KMST" + bytes([1]) + ID_A + struct.pack(">H", 2)
    body += ID_B + bytes([4, 127, 0, 0, 2]) + struct.pack(">H", 6881)
    body += bytes(range(1, 21)) + bytes([6]) + bytes(15) + b"\x01" + struct.pack(">H", 6882)
    return body + hashlib.sha1(body).digest()[:4]


def main():
    put("frame", "ping", b"\x40" + frame(3, struct.pack(">Q", 7)))
    put("frame", "hello_split", b"\x03" + frame(1, hello()))
    put("frame", "two_frames", b"\x01" + frame(2, peer_list()) + frame(6, goodbye()))
    put("frame", "graft_prune", b"\x07" + frame(8, struct.pack(">H", 1) + ID_B) + frame(9, b""))
    put("frame", "dial_result", b"\x40" + frame(26, struct.pack(">QB", 7, 3)))
    for i, (name, body) in enumerate([("hello", hello()), ("peer_list", peer_list()),
                                      ("ping", struct.pack(">Q", 7)),
                                      ("message", message()), ("goodbye", goodbye()),
                                      ("ihave", struct.pack(">H", 2) + ID_A + ID_B),
                                      ("prune", b""),
                                      ("dial_result", struct.pack(">QB", 7, 3))]):
        put("msg", name, bytes([i]) + body)
    for name, pkt in krpc_seeds().items():
        put("krpc", name, pkt)
        put("bencode", name, b"\x01" + pkt)
    put("bencode", "nested", b"\x00" + b"d1:ald1:bi-3eee1:c0:e")
    lines = {"status": b"status\n", "table": b"table\n", "help": b"help\r\n",
             "lookup": b"lookup " + ID_B.hex().encode() + b"\n",
             "get_peers": b"get-peers " + ID_B.hex().encode() + b"\n",
             "announce_split": b"ann\xffounce " + ID_B.hex().encode() + b" 6881\n",
             "many": b"status\ntable\n\nbogus x\n",
             "peers": b"peers\nlookup " + ID_B.hex().encode() + b" ipv6\n",
             "broadcast": b"subscribe\nbroadcast aGVsbG8=\nstatus\n"}
    for name, data in lines.items():
        put("control", name, data)
    put("state", "two_entries", state())


if __name__ == "__main__":
    main()
