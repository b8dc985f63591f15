"""pyscard side of `node bench/apdu-cost.mjs --mode serve`: a warm-up, then N measured transmits.

   /usr/bin/python3 bench/py/serve_cost.py READER WARM N HEX SERVICE_PID [SIGNAL]
Reads the service's CPU (/proc/PID/stat, user + system, all its threads) just before and after the
measured N; with SIGNAL (a number) also sends it that signal at both ends (the service's preload
counts the heap allocated in between). Prints one JSON line: {"n", "loop_ms", "client_cpu_ms",
"service_cpu_ms"}. PCSCLITE_CSOCK_NAME picks the service.
"""
import json
import os
import sys
import time

from smartcard.System import readers

name, warm, n, apdu, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), list(bytes.fromhex(sys.argv[4])), int(sys.argv[5])
sig = int(sys.argv[6]) if len(sys.argv) > 6 else 0
tick = os.sysconf("SC_CLK_TCK")


def service_cpu_ms():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / tick


def loop(count):
    for _ in range(count):
        data, sw1, sw2 = conn.transmit(apdu)
        if sw1 != 0x90:
            sys.exit(f"unexpected status word {sw1:02X}{sw2:02X}")


reader = next(r for r in readers() if str(r) == name)
conn = reader.createConnection()
conn.connect()
loop(warm)
if sig:
    os.kill(pid, sig)
s0 = service_cpu_ms()
t0 = time.perf_counter()
c0 = time.process_time()
loop(n)
t1 = time.perf_counter()
c1 = time.process_time()
s1 = service_cpu_ms()
if sig:
    os.kill(pid, sig)
conn.disconnect()
print(json.dumps({"n": n, "loop_ms": (t1 - t0) * 1000, "client_cpu_ms": (c1 - c0) * 1000, "service_cpu_ms": s1 - s0}))
