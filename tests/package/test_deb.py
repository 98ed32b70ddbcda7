#!/usr/bin/env python3
"""The Debian package, as a user meets it: `cpack -G DEB` builds a .deb
whose control fields and contents are right (dpkg-deb --info/--contents).
Then, only as root on Debian with kadmesh not installed, `dpkg -i` installs
it for real: the installed dht-node runs as a seed and the installed dht-ctl
queries it, `man -w` finds the pages, `systemd-analyze verify` passes the
installed unit, and the unit's own ExecStart runs (through systemctl when
systemd is PID 1; else exactly as the unit has it, with its Environment,
StateDirectory, UMask and an unprivileged user standing in for systemd).
`dpkg --purge` then leaves the system as it was, whatever happened.

Steps that cannot run here are skipped with a reason, never failed."""
import fcntl
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import kmtest  # noqa: E402
from pkgtest import BUILD, run  # noqa: E402

PROGRAMS = ["dht-node", "dht-ctl", "dht-lookup", "dht-sim"]
UNIT = "/usr/lib/systemd/system/dht-node.service"
# One test at a time per machine may install the package (other build
# trees run this same test); the lock lives as long as this process.
LOCK = "/run/lock/kadmesh-test-deb.lock"
NODE_ARGS = "--port 0 --bind 127.0.0.1 --seed --no-lan"



def skip(what, why):
    kmtest.skip_check("test_deb: " + what, why)


# --- building and inspecting --------------------------------------------------

def build_deb(tmp):
    out = f"{tmp}/deb"
    run(["cpack", "-G", "DEB", "-B", out, "--config",
         f"{BUILD}/CPackConfig.cmake"])
    found = glob.glob(f"{out}/*.deb")
    assert len(found) == 1, found
    return found[0]


def check_deb(deb):
    info = run(["dpkg-deb", "--info", deb]).stdout
    for field in ("Package: kadmesh", "Version: 0.1.0", "Section: net",
                  "Architecture: ", "Maintainer: ", "Description: "):
        assert field in info, f"{field!r} not in\n{info}"
    depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    for dep in ("libuv1", "libssl3", "libcjson1"):
        assert dep in depends, depends
    contents = run(["dpkg-deb", "--contents", deb]).stdout
    # "perms owner size date time path[ -> target]"
    paths = [l.split(None, 5)[5].split(" -> ")[0]
             for l in contents.splitlines()]
    wanted = ["./usr/bin/" + p for p in PROGRAMS] + [
        "./usr/share/man/man1/" + p + ".1" for p in PROGRAMS] + [
        "./usr/include/kadmesh.h", "./usr/include/kadmesh_uv.h", "." + UNIT,
        "./usr/lib/pkgconfig/kadmesh.pc", "./usr/lib/libkadmesh.a",
        "./usr/lib/libkadmesh.so.0", "./usr/lib/cmake/kadmesh/kadmeshConfig.cmake"]
    missing = [p for p in wanted if p not in paths]
    assert not missing, f"missing from the .deb: {missing}"
    owners = {l.split()[1] for l in contents.splitlines()}
    assert owners == {"root/root"}, f"files not owned by root: {owners}"
    print(f"{os.path.basename(deb)}: {len(paths)} entries; Depends: "
          f"{depends.strip()}")
    return [p[1:].rstrip("/") for p in paths if p != "./"]


# --- installing for real --------------------------------------------------------

def install_blocker(files):
    """Why dpkg -i must not run here, or None."""
    if os.geteuid() != 0:
        return "not root (dpkg -i needs root)"
    if not os.path.exists("/etc/debian_version") or not shutil.which("dpkg"):
        return "not a Debian system with dpkg"
    st = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "kadmesh"],
                        capture_output=True, text=True)
    if "installed" in st.stdout.split():
        return "kadmesh is already installed: leaving it alone"
    there = [f for f in files
             if os.path.lexists(f) and not os.path.isdir(f)]
    if there:
        return f"{there[0]} already exists (not from this package)"
    return None


def take_lock():
    f = open(LOCK, "w")
    deadline = time.monotonic() + 120
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.close()
                return None
            time.sleep(0.5)


def start(args, **kw):
    proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            **kw)
    try:
        return proc, kmtest.read_ready(proc, timeout=20)
    except Exception:
        stop(proc)
        raise


def stop(proc):
    """SIGTERM; the node must leave cleanly (exit 0) within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError("dht-node ignored SIGTERM")
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{err}"
    return err


def query(ready, what):
    st = run(["/usr/bin/dht-ctl", "--control", ready["control"], "status"])
    assert re.search(r"^id:\s+" + ready["id"] + "$", st.stdout, re.M), \
        st.stdout
    print(f"{what}: port {ready['port']}, installed dht-ctl status ok")


def manual_seed(tmp):
    """The README's way: a seed by hand, its state under a temp dir."""
    proc, ready = start(["/usr/bin/dht-node", "--state-dir", f"{tmp}/seed",
                         *shlex.split(NODE_ARGS)])
    try:
        query(ready, "/usr/bin/dht-node --seed")
    finally:
        stop(proc)


def unit_settings(text):
    """ExecStart, Environment (in order), StateDirectory and UMask."""
    env, keys = {}, {}
    for line in text.splitlines():
        key, eq, value = line.strip().partition("=")
        if not eq or key.startswith("#"):
            continue
        if key == "Environment":
            for word in shlex.split(value):
                name, _, val = word.partition("=")
                env[name] = val
        else:
            keys[key] = value
    return keys["ExecStart"], env, keys["StateDirectory"], keys.get("UMask")


def expand(cmdline, env):
    """systemd's rules: ${VAR} stays one word, a lone $VAR splits."""
    words = []
    for word in shlex.split(cmdline):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            words += env.get(m.group(1), "").split()
        else:
            words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                                lambda m: env.get(m.group(1), ""), word))
    return words


def unit_without_systemd(tmp):
    exec_start, env, state_name, umask = unit_settings(open(UNIT).read())
    state = f"{tmp}/state/{state_name}"
    os.makedirs(state, mode=0o700)
    os.chown(state, 65534, 65534)  # DynamicUser: an unprivileged user
    # What an operator's /etc/default/dht-node (EnvironmentFile) would set,
    # so that the test stays on loopback.
    env = {**env, "DHT_NODE_ARGS": NODE_ARGS, "STATE_DIRECTORY": state}
    argv = expand(exec_start, env)
    assert argv[:3] == ["/usr/bin/dht-node", "--state-dir", state], argv
    proc, ready = start(argv, user=65534, group=65534, extra_groups=[],
                        umask=int(umask or "0022", 8), cwd="/",
                        env={"PATH": "/usr/bin:/bin",
                             "STATE_DIRECTORY": state})
    try:
        query(ready, "the unit's ExecStart (" + " ".join(argv) + ")")
        mode = os.stat(ready["control"]).st_mode & 0o777
        assert mode & 0o077 == 0, f"control socket mode {oct(mode)}"
    finally:
        stop(proc)
    skip("systemctl start dht-node", "systemd is not PID 1 here; ran the "
         "unit's ExecStart as the unit has it instead")


def unit_with_systemctl(tmp):
    """systemd runs the installed unit, kept on loopback by a drop-in."""
    dropin = "/run/systemd/system/dht-node.service.d"
    os.makedirs(dropin, exist_ok=True)
    with open(f"{dropin}/kadmesh-test.conf", "w") as f:
        f.write(f'[Service]\nEnvironment="DHT_NODE_ARGS={NODE_ARGS}"\n')
    try:
        run(["systemctl", "daemon-reload"])
        run(["systemctl", "start", "dht-node.service"])
        sock = "/var/lib/dht-node/control.sock"
        kmtest.wait_until(lambda: os.path.exists(sock), timeout=20,
                          what="the service's control socket")
        st = run(["/usr/bin/dht-ctl", "--control", sock, "status"])
        assert re.search(r"^id:\s+[0-9a-f]{40}$", st.stdout, re.M), st.stdout
        print("systemctl start dht-node: active, dht-ctl status ok")
    finally:
        subprocess.run(["systemctl", "stop", "dht-node.service"],
                       capture_output=True, timeout=60)
        shutil.rmtree(dropin, ignore_errors=True)
        subprocess.run(["systemctl", "daemon-reload"], capture_output=True,
                       timeout=60)


def check_installed(tmp):
    manual_seed(tmp)
    for p in PROGRAMS:
        where = run(["man", "-w", p]).stdout.strip() if shutil.which("man") \
            else None
        if where is None:
            skip("man -w", "man is not installed")
            break
        assert where == f"/usr/share/man/man1/{p}.1", where
    else:
        print("man -w finds the four installed pages")
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", UNIT],
                           capture_output=True, text=True, timeout=60)
        complaints = [l for l in (r.stdout + r.stderr).splitlines()
                      if "dht-node.service" in l]
        assert r.returncode == 0 and not complaints, r.stdout + r.stderr
        print("systemd-analyze verify " + UNIT + ": clean")
    else:
        skip("systemd-analyze verify", "systemd-analyze not installed")
    if os.path.isdir("/run/systemd/system"):
        unit_with_systemctl(tmp)
    else:
        unit_without_systemd(tmp)


def purge():
    run(["dpkg", "--purge", "kadmesh"], timeout=120)


def install_and_use(deb, files, tmp):
    why = install_blocker(files)
    if why:
        skip("dpkg -i", why)
        return
    lock = take_lock()
    if not lock:
        skip("dpkg -i", f"another test holds {LOCK}")
        return
    try:
        if install_blocker(files):  # installed while we waited
            skip("dpkg -i", install_blocker(files))
            return
        before = {f for f in files if os.path.lexists(f)}  # /usr, /usr/bin...
        t0 = time.monotonic()
        run(["dpkg", "-i", deb])
        try:
            print(f"dpkg -i: {time.monotonic() - t0:.1f} s")
            check_installed(tmp)
        finally:
            purge()
            left = [f for f in files
                    if os.path.lexists(f) and f not in before]
            assert not left, f"dpkg --purge left {left}"
            print("dpkg --purge kadmesh: nothing left behind")
    finally:
        lock.close()


def main():
    if not shutil.which("cpack") or not shutil.which("dpkg-deb"):
        kmtest.skip("test_deb: cpack or dpkg-deb missing (tools/setup "
                    "installs them on Debian)")
    with tempfile.TemporaryDirectory(prefix="kadmesh-deb-") as tmp:
        os.chmod(tmp, 0o755)  # the unprivileged run must reach its state
        deb = build_deb(tmp)
        files = check_deb(deb)
        install_and_use(deb, files, tmp)
    print("test_deb: ok")


if __name__ == "__main__":
    main()
