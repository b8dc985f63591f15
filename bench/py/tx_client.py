"""One of many clients sharing one reader with transactions (issue 15's 64 × 1,000 row and its test).

   /usr/bin/python3 bench/py/tx_client.py READER ID N PER_TX
Connects shared, waits for a line on stdin (so every client starts together), then
N // PER_TX times: SCardBeginTransaction, PER_TX tagged APDUs (80 E0 00 00 05 ID TX TX I I 05,
answered by bench/fast-peer.mjs --tagging with the tag of the APDU before), SCardEndTransaction.
Every answer but a transaction's first must carry this client's own previous tag;
one that does not is an interleaving. Prints one JSON line:
{"id", "answered", "interleaved", "errors", "ms", "cpu_ms"} (errors: the first few return codes).
"""
import json
import sys
import time

from smartcard.scard import (SCARD_LEAVE_CARD, SCARD_PCI_T1, SCARD_PROTOCOL_T1, SCARD_S_SUCCESS, SCARD_SCOPE_USER,
                             SCARD_SHARE_SHARED, SCardBeginTransaction, SCardConnect, SCardDisconnect,
                             SCardEndTransaction, SCardEstablishContext, SCardReleaseContext, SCardTransmit)

reader, cid, n, per_tx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
errors = []
hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
if hr != SCARD_S_SUCCESS:
    sys.exit(f"SCardEstablishContext failed: {hr:#x}")
hr, card, proto = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1)
if hr != SCARD_S_SUCCESS:
    sys.exit(f"SCardConnect failed: {hr:#x}")
print(json.dumps({"id": cid, "connected": True}), flush=True)
sys.stdin.readline()

answered = interleaved = 0
t0 = time.perf_counter()
c0 = time.process_time()
for tx in range(n // per_tx):
    hr = SCardBeginTransaction(card)
    if hr != SCARD_S_SUCCESS:
        errors.append(f"begin {hr & 0xFFFFFFFF:#x}")
        continue
    prev = None
    for i in range(per_tx):
        tag = [cid & 0xFF, tx >> 8, tx & 0xFF, i >> 8, i & 0xFF]
        hr, resp = SCardTransmit(card, SCARD_PCI_T1, [0x80, 0xE0, 0x00, 0x00, 0x05] + tag + [0x05])
        if hr != SCARD_S_SUCCESS or resp[-2:] != [0x90, 0x00]:
            errors.append(f"transmit {hr & 0xFFFFFFFF:#x} {bytes(resp).hex()}")
            prev = None
            continue
        answered += 1
        if prev is not None and resp[:-2] != prev:
            interleaved += 1
        prev = tag
    hr = SCardEndTransaction(card, SCARD_LEAVE_CARD)
    if hr != SCARD_S_SUCCESS:
        errors.append(f"end {hr & 0xFFFFFFFF:#x}")
ms = (time.perf_counter() - t0) * 1000
cpu_ms = (time.process_time() - c0) * 1000
SCardDisconnect(card, SCARD_LEAVE_CARD)
SCardReleaseContext(ctx)
print(json.dumps({"id": cid, "answered": answered, "interleaved": interleaved, "errors": errors[:5], "errorCount": len(errors), "ms": ms, "cpu_ms": cpu_ms}), flush=True)
