#!/usr/bin/env python3
"""`dht-ctl metrics` is valid Prometheus text exposition (checked by a small
parser written to the format's rules) and agrees with `status` and `table`;
`dht-ctl table --histogram` shows the same bucket fill."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmtest  # noqa: E402

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? "
                    r"([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, v)]}};
    raises AssertionError at the first line that breaks the format."""
    fams, current = {}, None
    assert text.endswith("\n"), "the exposition ends with a newline"
    for n, line in enumerate(text.splitlines(), 1):
        where = f"line {n}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(NAME, name), where
            assert name not in fams, f"family twice: {where}"
            fams[name] = {"help": line.split(" ", 3)[3], "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name == current and "type" not in fams[name], where
            assert typ in TYPES, where
            fams[name]["type"] = typ
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample: {where}"
            name, labels, value = m.groups()
            suffixes = ("_bucket", "_sum", "_count") \
                if fams[current]["type"] == "histogram" else ("",)
            assert any(name == current + s for s in suffixes), where
            lab = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"',
                                  labels or ""))
            v = float(value)
            if fams[current]["type"] == "counter":
                assert name.endswith("_total") and v >= 0, where
            fams[current]["samples"].append((name, lab, v))
    for name, f in fams.items():
        assert "type" in f and f["samples"], f"{name}: TYPE and samples"
    return fams


def check_histogram(f):
    buckets = [(s[1]["le"], s[2]) for s in f["samples"]
               if s[0].endswith("_bucket")]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"buckets are cumulative: {buckets}"
    assert buckets[-1][0] == "+Inf"
    count = [s[2] for s in f["samples"] if s[0].endswith("_count")][0]
    assert buckets[-1][1] == count


def value(fams, name, **labels):
    samples = [s for f in fams.values() for s in f["samples"]]
    for n, lab, v in samples:
        if n == "kadmesh_" + name and all(lab.get(k) == val for k, val in labels.items()):
            return v
    raise KeyError(name)


def check_nat(fams, nat):
    """Punch and relay results: families present, agreeing with status
    (the NAT test checks them after a real punch and a relay)."""
    for need in ("punch_attempts_total", "punch_total", "relay_total",
                 "relay_circuits", "relay_bytes_total", "relayed_links",
                 "punch_requests_total", "reachability",
                 "dialback_checks_total"):
        assert "kadmesh_" + need in fams, need
    assert fams["kadmesh_relay_circuits"]["type"] == "gauge"
    assert fams["kadmesh_punch_total"]["type"] == "counter"
    assert value(fams, "punch_total", result="success") == nat["punches_ok"]
    assert value(fams, "punch_total", result="failure") == nat["punches_failed"]
    assert value(fams, "relay_total", result="opened") == nat["relays_served"]
    assert value(fams, "relay_circuits") == nat["relay_circuits"] == 0
    assert sum(s[2] for s in fams["kadmesh_reachability"]["samples"]) == 1


def main():
    with kmtest.Cluster() as c:
        seed = c.start(seed=True)
        nodes = [c.start(bootstrap=[seed]) for _ in range(3)]
        for n in nodes:
            kmtest.wait_linked(seed, n)
        c.ctl(nodes[0], "lookup", kmtest.random_id().hex())
        c.ctl(seed, "broadcast", "metrics test")
        text = c.ctl(seed, "metrics")
        fams = parse(text)
        check_histogram(fams["kadmesh_lookup_duration_seconds"])
        for need in ("krpc_packets_received_total", "krpc_bytes_total",
                     "lookups_started_total", "routing_table_bucket_nodes",
                     "neighbours", "broadcasts_total", "dropped_total"):
            assert "kadmesh_" + need in fams, need
        assert value(fams, "broadcasts_total", event="originated") == 1
        for reason in ("rate_limited", "banned_source", "subnet_cap",
                       "krpc_malformed", "connection_per_ip_cap"):
            assert value(fams, "dropped_total", reason=reason) >= 0
        # Either end may have dialled: the joiners pick the seed from their
        # tables as the seed may pick them, and of two links the lower ID's
        # stays.  The gauge must say what status says.
        nb = c.ctl(seed, "--json", "status")["neighbours"]
        for way in ("in", "out"):
            assert value(fams, "neighbours", direction=way,
                         state="up") == nb[way], (way, nb)
        assert nb["in"] + nb["out"] == 3, nb
        check_nat(fams, c.ctl(seed, "--json", "status")["nat"])
        table = c.ctl(seed, "--json", "table")
        fill = sum(s[2] for s in fams["kadmesh_routing_table_bucket_nodes"]
                   ["samples"])
        assert fill == len(table), (fill, len(table))
        m = parse(c.ctl(nodes[0], "metrics"))
        assert value(m, "lookup_duration_seconds_count") >= 1
        hist = c.ctl(seed, "table", "--histogram")
        bars = sum(int(l.split()[-1]) for l in hist.splitlines()
                   if "|" in l)
        assert bars == len(table), hist
        print(f"metrics: {len(fams)} families, {text.count(chr(10))} lines")
        print(hist)
    print("test_metrics: ok")


if __name__ == "__main__":
    main()
