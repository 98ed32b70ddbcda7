#!/usr/bin/env python3
"""The documents match the code, so that they cannot drift apart unseen:

- every control command in src/ops/control.c's command table has its
  "### name" section in docs/CONTROL.md, and every section names a command;
- every frame type in src/proto/frame.h is in docs/PROTOCOL.md's type table
  with its number, and the table lists no other;
- every option a man page names is one its program's --help lists (the
  other direction is test_man's), every option the README names is one of
  a program's, the README's Configuration options are dht-node's, and
  CONTROL.md's dht-ctl section names every dht-ctl option;
- every command shown in docs/BENCHMARKS.md (code blocks, and `inline`
  commands) names a program or script that exists; a paragraph that says
  "Not built yet" may name future ones;
- every key of a live node's `status` answer (and of its nested objects)
  is named in CONTROL.md's status section."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import kmtest  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KM_BIN = os.environ["KM_BIN"]
PROGRAMS = ["dht-node", "dht-ctl", "dht-lookup", "dht-sim"]
OPTION = re.compile(r"(?<![\w/-])--[a-z][a-z0-9-]*")


def read(path):
    with open(os.path.join(SRC, path), encoding="utf-8") as f:
        return f.read()


def control_commands():
    src = read("src/ops/control.c")
    table = re.search(r"static const struct command commands\[\] = \{(.*?)\n\};",
                      src, re.S)
    assert table, "control.c: no command table"
    return set(re.findall(r'^\s*\{ "([a-z-]+)",', table.group(1), re.M))


def check_control():
    code = control_commands()
    doc = set(re.findall(r"^### ([a-z-]+)", read("docs/CONTROL.md"), re.M))
    assert code - doc == set(), f"CONTROL.md lacks {sorted(code - doc)}"
    assert doc - code == set(), f"CONTROL.md documents {sorted(doc - code)}, " \
        "which control.c does not have"
    print(f"control commands: {len(code)}, all in CONTROL.md and no others")


def check_frames():
    code = {name: int(num) for name, num in re.findall(
        r"^\s*KM_FRAME_([A-Z_]+) = (\d+),", read("src/proto/frame.h"), re.M)}
    assert len(code) >= 10, code
    types = re.search(r"^### Types\n(.*?)^#", read("docs/PROTOCOL.md"),
                      re.S | re.M)
    assert types, "PROTOCOL.md: no ### Types section"
    doc = {name: int(num) for num, name in re.findall(
        r"^\| (\d+) +\| `([A-Z_]+)` *\|", types.group(1), re.M)}
    wrong = {n: (v, doc.get(n)) for n, v in code.items() if doc.get(n) != v}
    assert not wrong, f"PROTOCOL.md frame types (code, doc): {wrong}"
    extra = set(doc) - set(code)
    assert not extra, f"PROTOCOL.md lists frame types not in frame.h: {extra}"
    print(f"frame types: {len(code)}, each in PROTOCOL.md with its number")


def help_options(prog):
    r = subprocess.run([os.path.join(KM_BIN, prog), "--help"],
                       capture_output=True, text=True, timeout=30)
    return set(OPTION.findall(r.stdout + r.stderr))


def man_text(prog):
    page = read(f"docs/man/{prog}.1")
    return page.replace("\\-", "-").replace("\\fB", "").replace(
        "\\fR", "").replace("\\fI", "")


def check_options():
    opts = {p: help_options(p) for p in PROGRAMS}
    for p in PROGRAMS:
        named = set(OPTION.findall(man_text(p)))
        # A page may name another program's options (SEE ALSO, examples).
        unknown = named - set().union(*opts.values())
        assert not unknown, f"{p}.1 names options no program has: {unknown}"
    readme = read("README.md")
    # Other tools' options in its commands: cmake, cpack, pkg-config,
    # systemctl.
    others = {"--build", "--install", "--prefix", "--config", "--cflags",
              "--libs", "--now"}
    unknown = set(OPTION.findall(readme)) - set().union(*opts.values()) - \
        others
    assert not unknown, f"README names options no program has: {unknown}"
    config = re.search(r"^## Configuration\n(.*?)^## ", readme, re.S | re.M)
    assert config, "README: no Configuration section"
    cfg_opts = set(OPTION.findall(config.group(1)))
    assert cfg_opts and cfg_opts <= opts["dht-node"], \
        f"README Configuration names {cfg_opts - opts['dht-node']}, " \
        "not dht-node options"
    ctl = re.search(r"^## dht-ctl\n(.*?)(?:^## |\Z)", read("docs/CONTROL.md"),
                    re.S | re.M)
    assert ctl, "CONTROL.md: no dht-ctl section"
    lacking = opts["dht-ctl"] - set(OPTION.findall(ctl.group(1))) - {
        "--help", "--version"}
    assert not lacking, f"CONTROL.md's dht-ctl section lacks {lacking}"
    print(f"options: man pages and README name only real ones; README "
          f"Configuration: {len(cfg_opts)} dht-node options")


def command_exists(word):
    """True if word (a command's first word) names something that exists,
    None if it is not a command (output, a placeholder)."""
    if word.startswith("./"):
        word = word[2:]
    if word.startswith("build/bin/") or word.startswith("build-asan/bin/"):
        return os.access(os.path.join(KM_BIN, os.path.basename(word)), os.X_OK)
    if word.startswith("tools/"):
        return os.path.exists(os.path.join(SRC, word))
    if word in PROGRAMS or word.startswith("km-bench-"):
        return os.access(os.path.join(KM_BIN, word), os.X_OK)
    return None


def bench_commands(text):
    """(where, first word) of each command the page shows."""
    found = []
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    blocks += re.findall(r"(?:^\n)((?:^    \S.*\n)+)", text, re.M)
    for block in blocks:
        for line in block.splitlines():
            words = line.split()
            if words:
                found.append((line.strip(), words[0]))
    for para in re.split(r"\n\s*\n", text):
        if "Not built yet" in para:
            continue
        for span in re.findall(r"`([^`\n]+)`", para):
            found.append((span, span.split()[0]))
    return found


def check_benchmarks():
    shown = [(w, c) for w, c in bench_commands(read("docs/BENCHMARKS.md"))
             if command_exists(c) is not None]
    missing = sorted({c for w, c in shown if not command_exists(c)})
    assert not missing, f"BENCHMARKS.md shows commands that do not exist: " \
        f"{missing}"
    assert len(shown) >= 10, shown
    print(f"BENCHMARKS.md: {len(shown)} commands shown, "
          f"{len({c for _, c in shown})} programs and scripts, all exist")


def json_keys(o, prefix=""):
    for k, v in o.items():
        yield k
        if isinstance(v, dict):
            yield from json_keys(v, k + ".")


def check_status_keys():
    doc = read("docs/CONTROL.md")
    section = re.search(r"^### status\n(.*?)^### ", doc, re.S | re.M).group(1)
    named = set(re.findall(r"`([a-z0-9_]+)`", section)) | set(
        re.findall(r'"([a-z0-9_]+)"', section))  # `{"limit": N, ...}`
    with kmtest.Cluster() as c:
        seed = c.start(seed=True)
        st = kmtest.control(seed, "status")
    keys = set(json_keys(st))
    missing = sorted(keys - named)
    assert not missing, f"CONTROL.md's status section lacks {missing}"
    print(f"status: {len(keys)} keys, all in CONTROL.md")


def main():
    check_control()
    check_status_keys()
    check_frames()
    check_options()
    check_benchmarks()
    print("test_docs: ok")


if __name__ == "__main__":
    main()
