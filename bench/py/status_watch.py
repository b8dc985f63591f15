"""What pcsc_scan does: waits in SCardGetStatusChange and prints card insertion
and removal with a wall-clock timestamp (ms since the epoch).

   /usr/bin/python3 bench/py/status_watch.py READER
Prints {"kind": "ready"} once waiting, then {"kind": "cardInserted"|"cardRemoved", "t": ms}.
Stops when stdin closes (checked between 100 ms waits).
"""
import json
import select
import sys
import time

from smartcard.scard import (SCARD_S_SUCCESS, SCARD_E_TIMEOUT, SCARD_SCOPE_USER, SCARD_STATE_PRESENT,
                             SCARD_STATE_CHANGED, SCARD_STATE_UNAWARE, SCardEstablishContext,
                             SCardGetStatusChange)

name = sys.argv[1]
hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
if hr != SCARD_S_SUCCESS:
    sys.exit(f"SCardEstablishContext failed: {hr:#x}")
hr, states = SCardGetStatusChange(ctx, 0, [(name, SCARD_STATE_UNAWARE)])
state = states[0][1] & ~SCARD_STATE_CHANGED
print(json.dumps({"kind": "ready", "present": bool(state & SCARD_STATE_PRESENT)}), flush=True)
while True:
    # A long wait like pcsc_scan's; stdin is checked between waits so the caller can stop us.
    hr, states = SCardGetStatusChange(ctx, 100, [(name, state)])
    t = time.time() * 1000
    if hr == SCARD_S_SUCCESS:
        new = states[0][1] & ~SCARD_STATE_CHANGED
        if (new ^ state) & SCARD_STATE_PRESENT:
            kind = "cardInserted" if new & SCARD_STATE_PRESENT else "cardRemoved"
            print(json.dumps({"kind": kind, "t": t}), flush=True)
        state = new
    elif hr != SCARD_E_TIMEOUT:
        sys.exit(f"SCardGetStatusChange failed: {hr:#x}")
    if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
        break
