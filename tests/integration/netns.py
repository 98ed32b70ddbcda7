"""Network namespaces for tests: hosts built from `ip netns` and veth pairs.

Every namespace is named with a per-run prefix (the PID) and deleted in
close(), which callers run in a finally block; nothing is created in the
root namespace except veth ends that are moved away at once.  skip_reason()
says why namespace tests cannot run here (not root, no `ip netns`)."""
import os
import shutil
import subprocess


def skip_reason():
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip"):
        return "needs `ip` (iproute2)"
    r = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if r.returncode != 0:
        return "`ip netns` does not work here: %s" % r.stderr.decode().strip()
    return None


def sh(*args, check=True, stdin=None):
    r = subprocess.run(list(args), capture_output=True, text=True, input=stdin)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class Lab:
    """A set of namespaces; close() deletes every one it made."""

    def __init__(self, tag):
        self.prefix = "km%s%d" % (tag, os.getpid())
        self.names = []

    def ns(self, short):
        name = "%s%s" % (self.prefix, short)
        sh("ip", "netns", "add", name)
        self.names.append(name)
        self.run(name, "ip", "link", "set", "lo", "up")
        return name

    def run(self, ns, *args, check=True, stdin=None):
        return sh("ip", "netns", "exec", ns, *args, check=check, stdin=stdin)

    def prefix_cmd(self, ns):
        return ["ip", "netns", "exec", ns]

    def link(self, ns_a, addr_a, ns_b, addr_b):
        """A veth pair between two namespaces (the same one is fine), with
        an address (CIDR) on each end; returns the two interface names."""
        n = len(getattr(self, "_links", []))
        self._links = getattr(self, "_links", []) + [n]
        a, b = "kv%da%d" % (n, os.getpid() % 10000), "kv%db%d" % (n, os.getpid() % 10000)
        sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer",
           "name", b, "netns", ns_b)
        for ns, ifname, addr in ((ns_a, a, addr_a), (ns_b, b, addr_b)):
            if addr:
                self.run(ns, "ip", "addr", "add", addr, "dev", ifname)
            self.run(ns, "ip", "link", "set", ifname, "up")
        return a, b

    def close(self):
        for name in reversed(self.names):
            sh("ip", "netns", "del", name, check=False)
        self.names = []


def main(tests, tag, what, extra_skip=None):
    """Runs every test_* in tests (a module's globals()) as fn(cluster, lab)
    with a fresh Lab each, deleting its namespaces whatever happens."""
    import kmtest
    why = skip_reason() or extra_skip
    if why:
        kmtest.skip("%s: %s" % (what, why))
    for name, fn in sorted(tests.items()):
        if not name.startswith("test_"):
            continue
        lab = Lab(tag)
        try:
            with kmtest.Cluster() as c:
                fn(c, lab)
        finally:
            lab.close()
        print("ok", name)
    return 0
