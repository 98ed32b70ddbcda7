#!/usr/bin/python3
"""libtorrent-rasterbar's DHT as a bench server, on loopback only.

No bootstrap routers, no UPnP/NAT-PMP/LSD, and the limits that would stop
one loopback client from measuring it (per-IP rate limit, DHT upload rate
limit, per-subnet routing table restrictions, "dark internet" filter) are
lifted.  Prints `ready port=N`, then `nodes=N` every second."""
import signal
import sys
import time
import warnings

import libtorrent as lt

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
BIG = 2**31 - 1
warnings.simplefilter("ignore", DeprecationWarning)  # status().dht_nodes
ses = lt.session({
    "listen_interfaces": f"{host}:{port}",
    "outgoing_interfaces": host,
    "enable_dht": True,
    "dht_bootstrap_nodes": "",
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_incoming_tcp": False,
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_ignore_dark_internet": False,
    "dht_enforce_node_id": False,
    "dht_upload_rate_limit": BIG,
    # Its DoS blocker compares a count against ten times this limit in
    # an int: 2**31 - 1 would overflow and block every second query.
    "dht_block_ratelimit": 10**8,
    "alert_mask": 0,
})
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
for _ in range(100):
    if ses.listen_port():
        break
    time.sleep(0.05)
print(f"ready port={ses.listen_port()}", flush=True)
while not stop:
    time.sleep(1)
    print(f"nodes={ses.status().dht_nodes}", flush=True)
