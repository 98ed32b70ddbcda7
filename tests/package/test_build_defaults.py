#!/usr/bin/env python3
"""A packager's plain configure (`cmake -S . -B dir`, no options) leaves
warnings as warnings: a newer compiler's new warning must not break a
distribution's build.  -DKM_WERROR=ON (tools/build, ./tools/test, CI) makes
them errors.  Configure only; ./tools/test compiles every build type."""
import json
import os
import tempfile

from pkgtest import run

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def compile_flags(tmp, *opts):
    """Every compile command of a fresh configure with opts."""
    b = os.path.join(tmp, "b%d" % len(os.listdir(tmp)))
    run(["cmake", "-S", SRC, "-B", b, *opts], timeout=120)
    with open(os.path.join(b, "compile_commands.json")) as f:
        return [c["command"] for c in json.load(f)]


def main():
    with tempfile.TemporaryDirectory(prefix="kadmesh-defaults-") as tmp:
        plain = compile_flags(tmp)
        assert plain and not any("-Werror" in c for c in plain), plain[0]
        strict = compile_flags(tmp, "-DKM_WERROR=ON")
        assert all("-Werror" in c for c in strict), strict[0]
    print("plain configure: no -Werror in %d compile commands; "
          "-DKM_WERROR=ON: -Werror in all" % len(plain))


if __name__ == "__main__":
    main()
