#!/usr/bin/python3
"""A pyscard client that holds a reader, for the "who is using a reader" tests (issue 15).

  pcsc_holder.py READER shared|exclusive|direct [tx]

Connects to READER with that share mode; with `tx` begins a transaction; SELECTs the
simulator's demo application (not on a direct handle); then prints one JSON line
{"pid": os.getpid(), "connected": rv, "sw": "9000"} and waits. A line "endtx" on stdin ends
the transaction ({"ended": rv}); "end" ends it if still open and disconnects ({"done": rv});
the end of stdin just exits.
Runs under Debian's /usr/bin/python3 (python3-pyscard); the daemon is whatever
PCSCLITE_CSOCK_NAME names.
"""
import json
import os
import sys

from smartcard.scard import (
    SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_SCOPE_USER, SCARD_SHARE_DIRECT,
    SCARD_SHARE_EXCLUSIVE, SCARD_SHARE_SHARED, SCardBeginTransaction, SCardConnect, SCardDisconnect,
    SCardEndTransaction, SCardEstablishContext, SCardTransmit,
)

SELECT = [0x00, 0xA4, 0x04, 0x00, 0x07, 0xF0, 0x57, 0x42, 0x44, 0x45, 0x4D, 0x4F]
SHARE = {'shared': SCARD_SHARE_SHARED, 'exclusive': SCARD_SHARE_EXCLUSIVE, 'direct': SCARD_SHARE_DIRECT}


def out(**kw):
    print(json.dumps(kw), flush=True)


def main(argv):
    reader, share = argv[0], argv[1]
    tx = 'tx' in argv[2:]
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    protocols = 0 if share == 'direct' else SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1
    rv, hcard, protocol = SCardConnect(hcontext, reader, SHARE[share], protocols)
    if rv != 0:
        out(pid=os.getpid(), connected=rv & 0xFFFFFFFF)
        return 1
    if tx:
        rv = SCardBeginTransaction(hcard)
        if rv != 0:
            out(pid=os.getpid(), connected=0, begin=rv & 0xFFFFFFFF)
            return 1
    sw = None
    if share != 'direct':
        rv, response = SCardTransmit(hcard, protocol, SELECT)
        sw = '%02X%02X' % (response[-2], response[-1]) if rv == 0 and len(response) >= 2 else 'rv %x' % (rv & 0xFFFFFFFF)
    out(pid=os.getpid(), connected=0, sw=sw)
    for line in sys.stdin:
        if line.strip() == 'endtx' and tx:
            rv = SCardEndTransaction(hcard, SCARD_LEAVE_CARD)
            tx = False
            out(ended=rv & 0xFFFFFFFF)
        elif line.strip() == 'end':
            if tx:
                SCardEndTransaction(hcard, SCARD_LEAVE_CARD)
            rv = SCardDisconnect(hcard, SCARD_LEAVE_CARD)
            out(done=rv & 0xFFFFFFFF)
            return 0
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
