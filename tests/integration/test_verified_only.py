"""Only verified nodes are served (BEP 5's "good nodes"): a socket that
pings a node under a made-up ID and never answers is not handed to other
askers in find_node replies, while one that answers the node's own query
is, within seconds."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402
from kmtest import bencode  # noqa: E402


class Peer:
    """A UDP socket on loopback that pings the node once under its own ID
    (not read-only, so the node files it) and then either answers every
    query the node sends it, or stays silent."""

    def __init__(self, node_port, answers):
        self.id = kmtest.random_id()
        self.answers = answers
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((kmtest.HOST, 0))
        self.sock.settimeout(0.1)
        self.node = (kmtest.HOST, node_port)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        ping = {b"t": b"pp", b"y": b"q", b"q": b"ping", b"a": {b"id": self.id}}
        self.sock.sendto(bencode(ping), self.node)

    def _serve(self):
        while not self.stopping:
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                m = kmtest.bdecode(data)
            except ValueError:
                continue
            if not isinstance(m, dict) or m.get(b"y") != b"q":
                continue
            self.queries += 1
            if self.answers:
                r = {b"t": m[b"t"], b"y": b"r", b"r": {b"id": self.id}}
                self.sock.sendto(bencode(r), src)

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


def served(node, peer):
    """Whether another asker's find_node for peer's ID gets peer back."""
    nodes = kmtest.krpc_find_node(node.port, target=peer.id)
    assert nodes is not None, "the node did not answer find_node"
    return any(n[0] == peer.id.hex() for n in nodes)


def main():
    with kmtest.Cluster() as c:
        seed = c.start(seed=True)
        node = c.start(bootstrap=[seed])
        seed_id = bytes.fromhex(seed.id)
        kmtest.wait_until(
            lambda: any(n[0] == seed.id for n in
                        kmtest.krpc_find_node(node.port, seed_id) or []),
            what="the node joined through the seed")
        silent, honest = Peer(node.port, False), Peer(node.port, True)
        try:
            silent.start()
            honest.start()
            # The issue saw the silent one served 0.5-2 s after its ping;
            # it must never be, however long we look.
            end = time.monotonic() + 4.0
            while time.monotonic() < end:
                assert not served(node, silent), \
                    "a node that never answered us was served"
                time.sleep(0.1)
            kmtest.wait_until(lambda: served(node, honest), timeout=15,
                              what="the answering peer served")
            assert honest.queries > 0
            assert silent.queries > 0, "the node never asked the silent one"
            assert not served(node, silent)
            print("ok: a silent pinger is never served; "
                  "one that answered us is")
        finally:
            silent.stop()
            honest.stop()
        assert node.stop() == 0 and seed.stop() == 0


if __name__ == "__main__":
    main()
