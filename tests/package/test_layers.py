#!/usr/bin/env python3
"""The one-way flow of src/, checked on every run rather than kept by
discipline:

    proto <- dht <- net <- {uv, ops} <- lib, tools

- a file in src/<dir> includes project headers only from <dir> and the
  directories below it (uv and ops are siblings: neither includes the other);
- proto, dht and net are sans-IO: no libuv, no socket or file header, and no
  call that reads a clock or the OS's randomness (time and randomness are
  inputs, see docs/PROTOCOL.md);
- each directory's CMake target links only what it needs: proto, dht and net
  neither libuv nor cJSON, uv not cJSON, ops not libuv;
- the public library, libkadmesh.so, does not need cJSON, and its sans-IO
  header include/kadmesh.h names nothing of libuv (kadmesh_uv.h does).

The checker is run on the real tree and on a copy with a forbidden include or
call planted, which must fail: a check that cannot fail would be no check."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# What each directory of src/ may include from the project, besides itself.
BELOW = {
    "proto": set(),
    "dht": {"proto"},
    "net": {"proto", "dht"},
    "uv": {"proto", "dht", "net"},
    "ops": {"proto", "dht", "net"},
    "lib": {"proto", "dht", "net", "uv", "ops"},
}
SANS_IO = ("proto", "dht", "net")
# System headers that mean I/O, a clock or the OS's randomness.  proto's
# addr.c keeps <arpa/inet.h>: inet_pton and inet_ntop only convert text.
IO_HEADERS = re.compile(
    r"^(uv\.h|uv/.*|cJSON\.h|sys/socket\.h|sys/un\.h|netinet/.*|netdb\.h|"
    r"sys/random\.h|sys/time\.h|time\.h|unistd\.h|fcntl\.h|sys/stat\.h|"
    r"sys/types\.h|pthread\.h|poll\.h|sys/epoll\.h|dirent\.h)$")
IO_CALLS = re.compile(
    r"\b(clock_gettime|gettimeofday|time|getrandom|getentropy|arc4random|"
    r"rand|random|srand|srandom|socket|sendto|recvfrom|sendmsg|recvmsg|"
    r"connect|accept|bind|listen|fopen|open|read|write|close|uv_\w+)\s*\(")
LINKS_FORBIDDEN = {
    "proto": ("UV", "CJSON"), "dht": ("UV", "CJSON"), "net": ("UV", "CJSON"),
    "uv": ("CJSON",), "ops": ("UV",),
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def code_only(text):
    """The text with comments and string literals blanked, so that a word in
    a comment ("we never call time()") is not a call."""
    text = re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group(0)), text,
                  flags=re.S)
    text = re.sub(r"//[^\n]*", lambda m: " " * len(m.group(0)), text)
    return re.sub(r'"(\\.|[^"\\\n])*"',
                  lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', text)


def check_file(root, path, layer):
    """Violations in one file of src/<layer>."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    rel = os.path.relpath(path, root)
    found = []
    for kind, name in INCLUDE.findall(text):
        top = name.split("/")[0] if "/" in name else None
        if kind == '"' and top in BELOW and top != layer \
                and top not in BELOW[layer]:
            found.append(f"{rel}: includes {name}, against the flow "
                         f"({layer} may use {sorted(BELOW[layer]) or 'nothing'})")
        if layer in SANS_IO and kind == "<" and IO_HEADERS.match(name):
            found.append(f"{rel}: includes <{name}> in the sans-IO core")
    if layer in SANS_IO:
        code = code_only(text)  # same offsets as text
        for m in IO_CALLS.finditer(code):
            before = code[:m.start()].rstrip()
            if before.endswith(("->", ".")):   # a member, e.g. cb->write(
                continue
            if re.search(r"\b(struct|void|int|bool|static)\s*\**\s*$", before):
                continue                           # a declaration of ours
            found.append(f"{rel}: calls {m.group(1)}() in the sans-IO core")
    return found


def check_cmake(root, layer):
    path = os.path.join(root, "src", layer, "CMakeLists.txt")
    if not os.path.exists(path):
        return [f"src/{layer}: no CMakeLists.txt"]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    links = " ".join(re.findall(r"target_link_libraries\(([^)]*)\)", text))
    return [f"src/{layer}/CMakeLists.txt links {dep}"
            for dep in LINKS_FORBIDDEN.get(layer, ()) if dep in links]


def check_tree(root):
    """Every violation of the layering in the tree at root."""
    found = []
    for layer in BELOW:
        base = os.path.join(root, "src", layer)
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if name.endswith((".c", ".h")):
                    found += check_file(root, os.path.join(dirpath, name),
                                        layer)
        found += check_cmake(root, layer)
    return found


def test_the_tree_follows_the_one_way_flow():
    found = check_tree(SRC)
    assert not found, "\n".join(found)


def planted(edit):
    """check_tree of a copy of src/ with edit(copy_root) applied."""
    tmp = tempfile.mkdtemp(prefix="layers-")
    try:
        shutil.copytree(os.path.join(SRC, "src"), os.path.join(tmp, "src"))
        edit(tmp)
        return check_tree(tmp)
    finally:
        shutil.rmtree(tmp)


def append(root, rel, text):
    with open(os.path.join(root, rel), "a", encoding="utf-8") as f:
        f.write(text)


def test_an_include_against_the_flow_fails():
    found = planted(lambda r: append(r, "src/net/node.c",
                                     '\n#include "ops/control.h"\n'))
    assert any("node.c: includes ops/control.h" in v for v in found), found
    found = planted(lambda r: append(r, "src/uv/node.c",
                                     '\n#include "ops/metrics.h"\n'))
    assert any("uv/node.c: includes ops/metrics.h" in v for v in found), found


def test_io_in_the_core_fails():
    found = planted(lambda r: append(r, "src/dht/table.c", "\n#include <uv.h>\n"))
    assert any("<uv.h> in the sans-IO core" in v for v in found), found
    found = planted(lambda r: append(
        r, "src/proto/frame.c",
        "\nstatic long now_s(void) { return (long)time(0); }\n"))
    assert any("frame.c: calls time()" in v for v in found), found
    found = planted(lambda r: append(r, "src/net/lan.c",
                                     "\n#include <sys/socket.h>\n"))
    assert any("<sys/socket.h>" in v for v in found), found


def test_a_core_target_linking_libuv_fails():
    found = planted(lambda r: append(
        r, "src/dht/CMakeLists.txt",
        "\ntarget_link_libraries(km_dht PUBLIC PkgConfig::UV)\n"))
    assert "src/dht/CMakeLists.txt links UV" in found, found


def sans_io_header_problems(path):
    with open(path, encoding="utf-8") as f:
        code = code_only(f.read())
    return re.findall(r"<uv\.h>|\buv_\w+|kadmesh_uv_\w+", code)


def test_the_sans_io_header_names_nothing_of_libuv():
    assert not sans_io_header_problems(os.path.join(SRC, "include",
                                                    "kadmesh.h"))
    assert sans_io_header_problems(os.path.join(SRC, "include",
                                                "kadmesh_uv.h"))


def test_the_public_library_does_not_need_cjson():
    lib = os.path.join(os.environ["KM_BIN"], "..", "src", "lib",
                       "libkadmesh.so")
    out = subprocess.run(["readelf", "-d", lib], capture_output=True,
                         text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\).*\[(.*)\]", out)
    assert needed and not [n for n in needed if "cjson" in n.lower()], needed


def main():
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    for t in tests:
        t()
        print(f"ok {t.__name__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
