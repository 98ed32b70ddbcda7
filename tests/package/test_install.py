#!/usr/bin/env python3
"""Install and package: `cmake --install` puts every file in its place, the
example builds against the installed kadmesh.pc and through
find_package(kadmesh) (shared and static) and two instances of each send a
line from one to the other, the systemd unit passes
`systemd-analyze verify`.  The .deb is test_deb.py's."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from pkgtest import BUILD, run

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import kmtest  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SANITIZE = os.environ.get("KM_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE")
CFLAGS = ["-fsanitize=address,undefined"] if SANITIZE else []
PROGRAMS = ["dht-node", "dht-ctl", "dht-lookup", "dht-sim"]


def one(pattern):
    found = glob.glob(pattern)
    assert len(found) == 1, f"{pattern}: {found}"
    return found[0]


def check_tree(prefix):
    for p in PROGRAMS:
        assert os.access(f"{prefix}/bin/{p}", os.X_OK), p
        assert os.path.isfile(f"{prefix}/share/man/man1/{p}.1"), p
    assert os.path.isfile(f"{prefix}/include/kadmesh.h")
    assert os.path.isfile(f"{prefix}/include/kadmesh_uv.h")
    lib = os.path.dirname(one(f"{prefix}/lib*/**/libkadmesh.so.0"
                              if glob.glob(f"{prefix}/lib*/*/libkadmesh.so.0")
                              else f"{prefix}/lib*/libkadmesh.so.0"))
    for f in ("libkadmesh.so", "libkadmesh.a", "pkgconfig/kadmesh.pc",
              "cmake/kadmesh/kadmeshConfig.cmake"):
        assert os.path.exists(f"{lib}/{f}"), f
    soname = run(["objdump", "-p", f"{lib}/libkadmesh.so"]).stdout
    assert "SONAME               libkadmesh.so.0" in soname
    exported = run(["nm", "-D", "--defined-only", f"{lib}/libkadmesh.so"])
    names = [l.split()[-1] for l in exported.stdout.splitlines()]
    leaked = [n for n in names if not n.startswith("kadmesh_")]
    assert not leaked, f"internal symbols exported: {leaked[:10]}"
    print(f"installed tree ok: {len(names)} exported symbols")
    return lib


def run_chat(exe, env=None):
    """Two instances of the example, built against the installed library,
    send a line from one to the other over loopback."""
    got = kmtest.chat_exchange(exe, env=env)
    print(f"{os.path.basename(exe)}: a line went through: {got}")


def test_pkg_config(tmp):
    dest = f"{tmp}/dest"
    run(["cmake", "--install", BUILD, "--prefix", "/usr"],
        env={**os.environ, "DESTDIR": dest})
    lib = check_tree(f"{dest}/usr")
    env = {**os.environ, "PKG_CONFIG_PATH": f"{lib}/pkgconfig"}
    flags = run(["pkg-config", "--cflags", "--libs", "kadmesh", "libuv"],
                env=env).stdout.split()
    exe = f"{tmp}/chat-pc"
    run(["cc", "-std=c11", "-Wall", "-Werror", *CFLAGS,
         f"{SRC}/examples/chat.c", "-o", exe, *flags], env=env)
    run_chat(exe, env={**os.environ, "LD_LIBRARY_PATH": lib})
    print("example built with pkg-config and ran")


def test_find_package(tmp):
    prefix = f"{tmp}/prefix"
    run(["cmake", "--install", BUILD, "--prefix", prefix])
    check_tree(prefix)
    proj = f"{tmp}/consumer"
    os.makedirs(proj)
    with open(f"{proj}/CMakeLists.txt", "w") as f:
        f.write(f"""cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(kadmesh 0.1 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(UV REQUIRED IMPORTED_TARGET libuv)
add_executable(chat-shared {SRC}/examples/chat.c)
target_link_libraries(chat-shared kadmesh::kadmesh PkgConfig::UV)
add_executable(chat-static {SRC}/examples/chat.c)
target_link_libraries(chat-static kadmesh::kadmesh_static PkgConfig::UV)
""")
    flags = " ".join(CFLAGS)
    run(["cmake", "-S", proj, "-B", f"{proj}/b", f"-DCMAKE_PREFIX_PATH={prefix}",
         f"-DCMAKE_C_FLAGS={flags}"])
    run(["cmake", "--build", f"{proj}/b"])
    run_chat(f"{proj}/b/chat-shared")
    run_chat(f"{proj}/b/chat-static")
    print("example built with find_package(kadmesh), shared and static")
    return prefix


def test_unit(prefix):
    unit = f"{prefix}/lib/systemd/system/dht-node.service"
    text = open(unit).read()
    for key in ("DynamicUser=yes", "StateDirectory=dht-node",
                "ProtectSystem=strict", f"ExecStart={prefix}/bin/dht-node"):
        assert key in text, key
    if not shutil.which("systemd-analyze"):
        kmtest.skip_check("test_install: systemd-analyze verify",
                          "systemd-analyze not installed")
        return
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                       capture_output=True, text=True, timeout=60)
    complaints = [l for l in (r.stdout + r.stderr).splitlines()
                  if "dht-node.service" in l]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr
    print("systemd-analyze verify: clean")


def main():
    with tempfile.TemporaryDirectory(prefix="kadmesh-package-") as tmp:
        test_pkg_config(tmp)
        prefix = test_find_package(tmp)
        test_unit(prefix)
    print("test_install: ok")


if __name__ == "__main__":
    main()
