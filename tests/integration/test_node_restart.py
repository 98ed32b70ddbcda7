"""A node killed with SIGKILL and restarted on its state dir rejoins with no
bootstrap address; corrupt state files give a warning and a fresh start."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

FAST_SAVE = ["--save-interval", "1"]


def saved_ports(state_dir):
    """Ports of the contacts in state_dir/nodes.dat (format in dht/state.h)."""
    try:
        with open(os.path.join(state_dir, "nodes.dat"), "rb") as f:
            data = f.read()
    except OSError:
        return []
    if len(data) < 31 or data[:4] != b"KMST":
        return []
    count, off, ports = int.from_bytes(data[25:27], "big"), 27, []
    for _ in range(count):
        family = data[off + 20]
        iplen = 16 if family == 6 else 4
        ports.append(int.from_bytes(data[off + 21 + iplen:off + 23 + iplen], "big"))
        off += 23 + iplen
    return ports


def knows_real_nodes(node, others):
    """True once a find_node to node returns one of the other daemons."""
    want = {o.port for o in others}
    found = kmtest.krpc_find_node(node.port) or []
    return any(port in want for _, _, port in found)


def test_killed_node_rejoins_from_its_state_dir(c):
    seed = c.start(seed=True, extra=FAST_SAVE)
    peers = [c.start(bootstrap=[seed], extra=FAST_SAVE) for _ in range(3)]
    victim = peers[-1]
    others = [seed] + peers[:-1]
    real = {o.port for o in others}
    kmtest.wait_until(lambda: len(real & set(saved_ports(victim.state_dir))) >= 2,
                      timeout=20, what="the victim to save known nodes")
    old_id = victim.id
    victim.kill()

    back = c.restart(victim, extra=FAST_SAVE)   # no --seed, no --bootstrap
    assert back.id == old_id, "the node ID must survive a restart"
    kmtest.wait_until(lambda: knows_real_nodes(back, others), timeout=20,
                      what="the restarted node to know the others again")
    assert kmtest.krpc_ping(back.port), "the restarted node answers pings"
    if back.control and kmtest.have("dht-ctl"):
        st = c.ctl(back, "status", "--json")
        st = st.get("result", st) if isinstance(st, dict) else st
        assert st["routing_table_size"] > 0
    assert back.stop() == 0


def test_truncated_state_file_gives_a_warning_and_a_fresh_start(c):
    a = c.start(seed=True)
    assert a.stop() == 0
    path = os.path.join(a.state_dir, "nodes.dat")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) - 3])
    b = c.start(seed=True, state_dir=a.state_dir)
    assert b.id == a.id
    assert "nodes.dat" in b.stderr() and "warn" in b.stderr()
    assert kmtest.krpc_ping(b.port)
    assert b.stop() == 0


def test_corrupt_id_file_gives_a_warning_and_a_new_id(c):
    a = c.start(seed=True)
    assert a.stop() == 0
    with open(os.path.join(a.state_dir, "id"), "w") as f:
        f.write("not an id\n")
    b = c.start(seed=True, state_dir=a.state_dir)
    assert b.id != a.id and len(b.id) == 40
    assert "id is unreadable or corrupt" in b.stderr()
    with open(os.path.join(a.state_dir, "id")) as f:
        assert f.read().strip() == b.id
    assert b.stop() == 0


def test_nothing_to_join_is_a_clear_error(c):
    import subprocess
    d = c.new_state_dir()
    r = subprocess.run([kmtest.bin_path("dht-node"), "--port", "0",
                        "--no-lan", "--state-dir", d], capture_output=True,
                       timeout=10)
    assert r.returncode != 0
    assert b"nothing to join" in r.stderr


def main():
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    for t in tests:
        with kmtest.Cluster() as c:
            t(c)
        print("ok", t.__name__)


if __name__ == "__main__":
    main()
