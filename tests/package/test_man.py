#!/usr/bin/env python3
"""The man pages keep up with the programs: every long option and every
dht-ctl command that --help lists appears in docs/man/<program>.1, and each
page renders without warnings when man is installed (else that check is
reported skipped)."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import kmtest  # noqa: E402

MAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "docs", "man")


def main():
    for prog in ("dht-node", "dht-ctl", "dht-lookup", "dht-sim"):
        r = subprocess.run([os.path.join(os.environ["KM_BIN"], prog), "--help"],
                           capture_output=True, text=True, timeout=30)
        help_text = r.stdout + r.stderr
        page = open(os.path.join(MAN, prog + ".1")).read()
        plain = page.replace("\\-", "-").replace("\\fB", "").replace(
            "\\fR", "").replace("\\fI", "")
        words = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text))
        if prog == "dht-ctl":
            words |= set(re.findall(r"^  ([a-z][a-z-]+) ", help_text, re.M))
        missing = sorted(w for w in words if w not in plain)
        assert not missing, f"{prog}.1 lacks {missing}"
        if shutil.which("man"):
            w = subprocess.run(["man", "--warnings", "-l", os.path.join(
                MAN, prog + ".1")], capture_output=True, text=True,
                env={**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8"},
                timeout=30)
            assert w.returncode == 0 and not w.stderr.strip(), w.stderr
        else:
            kmtest.skip_check(f"test_man: man --warnings {prog}.1",
                              "man is not installed")
        print(f"{prog}.1: {len(words)} options/commands documented")
    print("test_man: ok")


if __name__ == "__main__":
    main()
