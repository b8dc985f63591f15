"""pyscard side of the throughput benchmarks: N transmits of one APDU through pcscd.

   /usr/bin/python3 bench/py/transmit_loop.py READER N HEX
Prints one JSON line: {"n", "loop_ms", "connect_ms", "cpu_ms"} (cpu_ms: this process, user + system). PCSCLITE_CSOCK_NAME picks the pcscd.
"""
import json
import sys
import time

from smartcard.System import readers

name, n, apdu = sys.argv[1], int(sys.argv[2]), list(bytes.fromhex(sys.argv[3]))
t0 = time.perf_counter()
reader = next(r for r in readers() if str(r) == name)
conn = reader.createConnection()
conn.connect()
t1 = time.perf_counter()
c1 = time.process_time()
for _ in range(n):
    data, sw1, sw2 = conn.transmit(apdu)
    if sw1 != 0x90:
        sys.exit(f"unexpected status word {sw1:02X}{sw2:02X}")
t2 = time.perf_counter()
c2 = time.process_time()
conn.disconnect()
print(json.dumps({"n": n, "connect_ms": (t1 - t0) * 1000, "loop_ms": (t2 - t1) * 1000, "cpu_ms": (c2 - c1) * 1000}))
