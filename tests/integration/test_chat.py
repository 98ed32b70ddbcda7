#!/usr/bin/env python3
"""examples/chat over loopback: two instances, built against the shared
libkadmesh, find each other and a line typed into one appears in the other."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402


def main():
    got = kmtest.chat_exchange(kmtest.bin_path("chat"))
    print("a got:", got)
    print("test_chat: ok")


if __name__ == "__main__":
    main()
