#!/usr/bin/python3
r"""A pyscard client for the PC/SC service tests; one JSON line per fact.

  readers [N]                    smartcard.System.readers(); with N, first wait (\\?PnP?\Notification,
                                 10 s) until at least N readers exist
  select READER                  connect, SELECT the demo application (or vicc's MF), transmit, disconnect
  watch READER STEP...           GetStatusChange: the current state, then for each STEP print
                                 {"waiting": STEP} and wait (10 s) for the next change
  timeout READER MS              GetStatusChange with nothing changing: SCARD_E_TIMEOUT
  cancel READER                  GetStatusChange(INFINITE) in a thread, SCardCancel from the main one
  pnp STEP...                    GetStatusChange on \\?PnP?\Notification: for each STEP print
                                 {"waiting": STEP}, wait (10 s) for the reader list to change, print it
  hold READER                    connect shared, print {"connected": rv}; after a stdin line SCardBeginTransaction,
                                 print {"held": rv}, then sleep until killed
  begin READER                   connect shared, print {"connected": rv}; after a stdin line SCardBeginTransaction (the library
                                 polls while another handle holds the reader), print {"begin": rv}, again after a
                                 SCARD_W_* warning (at most 3 times), end, disconnect
  exclusive READER               connect exclusive, print {"exclusive": rv}; on each stdin line transmit the
                                 SELECT and print {"sw": ...}; at the end of stdin disconnect, print {"done": rv}
  session READER shared|exclusive|direct
                                 connect in that share mode (direct: no preferred protocol), print {"connect": rv};
                                 then one stdin line per call: status → {"status": rv},
                                 getattrib (SCARD_ATTR_CHANNEL_ID: not supported by vpcd, nor by the service, R45) → {"getattrib": rv},
                                 transmit (SELECT MF) → {"transmit": rv, "sw": ...}, begin → {"begin": rv}
                                 (the library polls while another program holds the reader), end → {"end": rv},
                                 reset (SCardReconnect RESET) / reconnect (LEAVE) → {"reset"|"reconnect": rv},
                                 to-direct / to-shared / to-exclusive (SCardReconnect LEAVE to that share mode) → {"to-direct"|…: rv},
                                 disconnect → {"disconnect": rv}; at the end of stdin release the context, print {"done": 0}
Runs under Debian's /usr/bin/python3 (python3-pyscard); the PC/SC library is
whatever LD_LIBRARY_PATH selects, the daemon whatever PCSCLITE_CSOCK_NAME names.
"""
import json
import sys
import threading
import time

from smartcard.scard import (
    SCARD_SCOPE_USER, SCARD_STATE_UNAWARE, SCARD_STATE_CHANGED, SCARD_STATE_EMPTY, SCARD_STATE_PRESENT,
    SCARD_S_SUCCESS, SCardCancel, SCardEstablishContext, SCardGetStatusChange, SCardListReaders, SCardReleaseContext,
)


def out(**kw):
    print(json.dumps(kw), flush=True)


def state(hcontext, reader, current, timeout):
    rv, states = SCardGetStatusChange(hcontext, timeout, [(reader, current)])
    _, event, atr = states[0] if states else (reader, 0, [])
    return rv & 0xFFFFFFFF, event & 0xFFFFFFFF, list(atr)


def describe(rv, event, atr):
    return dict(rv=rv, event=event, counter=event >> 16, changed=bool(event & SCARD_STATE_CHANGED),
                present=bool(event & SCARD_STATE_PRESENT), empty=bool(event & SCARD_STATE_EMPTY), atrLength=len(atr))


def main(argv):
    cmd = argv[0]
    if cmd == 'readers':
        from smartcard.System import readers
        if len(argv) > 1:
            rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
            pnp = '\\\\?PnP?\\Notification'
            rv, pstates = SCardGetStatusChange(hcontext, 0, [(pnp, SCARD_STATE_UNAWARE)])
            cur = pstates[0][1] if pstates else 0
            deadline = time.monotonic() + 10
            while len(readers()) < int(argv[1]) and time.monotonic() < deadline:
                rv, pstates = SCardGetStatusChange(hcontext, 1000, [(pnp, cur)])
                if pstates:
                    cur = pstates[0][1] & ~SCARD_STATE_CHANGED
            SCardReleaseContext(hcontext)
        out(readers=[str(r) for r in readers()])
        return
    if cmd == 'select':
        from smartcard.System import readers
        r = [x for x in readers() if str(x) == argv[1]][0]
        c = r.createConnection()
        c.connect()
        apdu = [0x00, 0xA4, 0x04, 0x00, 0x07, 0xF0, 0x57, 0x42, 0x44, 0x45, 0x4D, 0x4F] if len(argv) < 3 else list(bytes.fromhex(argv[2]))
        data, sw1, sw2 = c.transmit(apdu)
        out(sw='%02X %02X' % (sw1, sw2), atr=bytes(c.getATR()).hex(), dataLength=len(data))
        c.disconnect()
        return
    if cmd in ('hold', 'begin', 'exclusive', 'resets'):
        from smartcard.scard import (SCardConnect, SCardBeginTransaction, SCardEndTransaction, SCardDisconnect,
                                     SCardTransmit, SCardReconnect, SCARD_SHARE_SHARED, SCARD_SHARE_EXCLUSIVE,
                                     SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD, SCARD_RESET_CARD)
        rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
        share = SCARD_SHARE_EXCLUSIVE if cmd == 'exclusive' else SCARD_SHARE_SHARED
        rv, hcard, proto = SCardConnect(hcontext, argv[1], share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
        if cmd == 'resets':
            # Two handles; who hears SCARD_W_RESET_CARD, and for how long (only the return codes: the cards differ).
            rv2, hcard2, proto2 = SCardConnect(hcontext, argv[1], share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
            select = [0x00, 0xA4, 0x04, 0x00, 0x07, 0xF0, 0x57, 0x42, 0x44, 0x45, 0x4D, 0x4F]
            tx = lambda h, p: SCardTransmit(h, p, select)[0] & 0xFFFFFFFF
            out(step='connect', rv=[rv & 0xFFFFFFFF, rv2 & 0xFFFFFFFF])
            rv, proto = SCardReconnect(hcard, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_RESET_CARD)
            out(step='one reconnect RESET', rv=rv & 0xFFFFFFFF)
            out(step='one transmit', rv=tx(hcard, proto))
            out(step='two transmit', rv=tx(hcard2, proto2))
            out(step='two transmit again', rv=tx(hcard2, proto2))
            rv, proto2 = SCardReconnect(hcard2, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD)
            out(step='two reconnect LEAVE', rv=rv & 0xFFFFFFFF)
            out(step='two transmit after', rv=tx(hcard2, proto2))
            out(step='one begin', rv=SCardBeginTransaction(hcard) & 0xFFFFFFFF)
            out(step='one end RESET', rv=SCardEndTransaction(hcard, SCARD_RESET_CARD) & 0xFFFFFFFF)
            out(step='one transmit after its end RESET', rv=tx(hcard, proto))
            out(step='two transmit after one\'s end RESET', rv=tx(hcard2, proto2))
            rv, proto = SCardReconnect(hcard, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD)
            out(step='one reconnect LEAVE', rv=rv & 0xFFFFFFFF)
            out(step='one transmit after', rv=tx(hcard, proto))
            SCardDisconnect(hcard2, SCARD_LEAVE_CARD)
        if cmd == 'hold':
            out(connected=rv & 0xFFFFFFFF)
            sys.stdin.readline()
            rv = SCardBeginTransaction(hcard)
            out(held=rv & 0xFFFFFFFF)
            while True:
                time.sleep(60)
        if cmd == 'begin':
            out(connected=rv & 0xFFFFFFFF)
            sys.stdin.readline()
            # A warning (the card was reset or removed meanwhile) stays until SCardReconnect, as pcscd's
            # RFCheckReaderEventState reports it: ask again once (still the warning), reconnect, begin.
            rv = SCardBeginTransaction(hcard) & 0xFFFFFFFF
            out(begin=rv)
            if rv != SCARD_S_SUCCESS:
                out(begin=SCardBeginTransaction(hcard) & 0xFFFFFFFF)
                rv, proto = SCardReconnect(hcard, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD)
                out(reconnect=rv & 0xFFFFFFFF)
                out(begin=SCardBeginTransaction(hcard) & 0xFFFFFFFF)
            SCardEndTransaction(hcard, SCARD_LEAVE_CARD)
        if cmd == 'exclusive':
            out(exclusive=rv & 0xFFFFFFFF)
            for _ in sys.stdin:
                rv, resp = SCardTransmit(hcard, proto, [0x00, 0xA4, 0x04, 0x00, 0x07, 0xF0, 0x57, 0x42, 0x44, 0x45, 0x4D, 0x4F])
                out(sw='%02X %02X' % (resp[-2], resp[-1]) if rv == SCARD_S_SUCCESS else None, rv=rv & 0xFFFFFFFF)
        out(done=SCardDisconnect(hcard, SCARD_LEAVE_CARD) & 0xFFFFFFFF)
        SCardReleaseContext(hcontext)
        return
    if cmd == 'attribs':
        # SCardGetAttrib on a direct connection (no card needed), each reader-fact tag: its bytes (hex) or rv.
        from smartcard.scard import SCardConnect, SCardDisconnect, SCardGetAttrib, SCARD_SHARE_DIRECT, SCARD_LEAVE_CARD
        rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
        SCardListReaders(hcontext, [])
        rv, hcard, proto = SCardConnect(hcontext, argv[1], SCARD_SHARE_DIRECT, 0)
        out(connect=rv & 0xFFFFFFFF)
        tags = dict(VENDOR_NAME=0x10100, VENDOR_IFD_TYPE=0x10101, VENDOR_IFD_VERSION=0x10102, VENDOR_IFD_SERIAL_NO=0x10103,
                    CHANNEL_ID=0x20110, MAX_IFSD=0x30125, MAXINPUT=0x7A007)
        result = {}
        for name, tag in tags.items():
            rv, attrib = SCardGetAttrib(hcard, tag)
            result[name] = bytes(attrib).hex() if rv == SCARD_S_SUCCESS else 'rv %08X' % (rv & 0xFFFFFFFF)
        out(attribs=result)
        SCardDisconnect(hcard, SCARD_LEAVE_CARD)
        SCardReleaseContext(hcontext)
        return
    if cmd == 'session':
        from smartcard.scard import (SCardConnect, SCardBeginTransaction, SCardEndTransaction, SCardDisconnect,
                                     SCardTransmit, SCardReconnect, SCardStatus, SCARD_SHARE_SHARED, SCARD_SHARE_EXCLUSIVE,
                                     SCARD_SHARE_DIRECT, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD,
                                     SCARD_RESET_CARD, SCardGetAttrib)
        rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
        SCardListReaders(hcontext, [])
        share = {'exclusive': SCARD_SHARE_EXCLUSIVE, 'direct': SCARD_SHARE_DIRECT}.get(argv[2], SCARD_SHARE_SHARED)
        any_t = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1
        if share == SCARD_SHARE_DIRECT:
            rv, hcard, proto = SCardConnect(hcontext, argv[1], share, 0)
        else:
            rv, hcard, proto = SCardConnect(hcontext, argv[1], share, any_t)
        out(connect=rv & 0xFFFFFFFF)
        for line in sys.stdin:
            op = line.strip()
            if op == 'status':
                out(status=SCardStatus(hcard)[0] & 0xFFFFFFFF)
            elif op == 'getattrib':
                out(getattrib=SCardGetAttrib(hcard, 0x20110)[0] & 0xFFFFFFFF)
            elif op in ('to-direct', 'to-shared', 'to-exclusive'):
                share = {'to-direct': SCARD_SHARE_DIRECT, 'to-exclusive': SCARD_SHARE_EXCLUSIVE}.get(op, SCARD_SHARE_SHARED)
                rv, proto = SCardReconnect(hcard, share, 0 if op == 'to-direct' else any_t, SCARD_LEAVE_CARD)
                out(**{op: rv & 0xFFFFFFFF})
            elif op == 'transmit':
                rv, resp = SCardTransmit(hcard, proto, [0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00])
                ok = rv == SCARD_S_SUCCESS and len(resp) >= 2
                out(transmit=rv & 0xFFFFFFFF, sw='%02X %02X' % (resp[-2], resp[-1]) if ok else None)
            elif op == 'begin':
                out(begin=SCardBeginTransaction(hcard) & 0xFFFFFFFF)
            elif op == 'end':
                out(end=SCardEndTransaction(hcard, SCARD_LEAVE_CARD) & 0xFFFFFFFF)
            elif op in ('reset', 'reconnect'):
                rv, proto = SCardReconnect(hcard, share, any_t, SCARD_RESET_CARD if op == 'reset' else SCARD_LEAVE_CARD)
                out(**{op: rv & 0xFFFFFFFF})
            elif op == 'disconnect':
                out(disconnect=SCardDisconnect(hcard, SCARD_LEAVE_CARD) & 0xFFFFFFFF)
        SCardReleaseContext(hcontext)
        out(done=0)
        return
    if cmd == 'pnp':
        from smartcard.System import readers
        rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
        pnp = '\\\\?PnP?\\Notification'
        rv, pstates = SCardGetStatusChange(hcontext, 0, [(pnp, SCARD_STATE_UNAWARE)])
        cur = pstates[0][1] if pstates else 0
        out(initial=dict(rv=rv & 0xFFFFFFFF, readers=[str(r) for r in readers()]))
        for step in argv[1:]:
            out(waiting=step)
            rv, pstates = SCardGetStatusChange(hcontext, 10000, [(pnp, cur)])
            event = pstates[0][1] if pstates else 0
            cur = event & ~SCARD_STATE_CHANGED
            out(step=step, rv=rv & 0xFFFFFFFF, changed=bool(event & SCARD_STATE_CHANGED), readers=[str(r) for r in readers()])
        SCardReleaseContext(hcontext)
        return
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    assert rv == SCARD_S_SUCCESS, hex(rv)
    # List first, as programs do: a 2.5 client talking 4:4/4:5 (e.g. to Debian's pcscd 1.9.9)
    # fails its first SCardGetStatusChange with SCARD_E_NO_SERVICE until a
    # SCardListReaders/SCardStatus has sized its reader table (winscard_clnt.c 2.5.1).
    SCardListReaders(hcontext, [])
    reader = argv[1]
    rv, cur, atr = state(hcontext, reader, SCARD_STATE_UNAWARE, 0)
    out(initial=describe(rv, cur, atr))
    if cmd == 'watch':
        for step in argv[2:]:
            out(waiting=step)
            rv, event, atr = state(hcontext, reader, cur, 10000)
            out(step=step, **describe(rv, event, atr))
            cur = event & ~SCARD_STATE_CHANGED
    elif cmd == 'timeout':
        rv, event, atr = state(hcontext, reader, cur & ~SCARD_STATE_CHANGED, int(argv[2]))
        out(step='timeout', **describe(rv, event, atr))
    elif cmd == 'cancel':
        result = {}
        started = threading.Event()

        def waiter():
            started.set()
            result['r'] = state(hcontext, reader, cur & ~SCARD_STATE_CHANGED, 0xFFFFFFFF)
        t = threading.Thread(target=waiter)
        t.start()
        started.wait()
        # SCardCancel succeeds whether or not the waiter has registered yet; repeat until it returns.
        while t.is_alive():
            SCardCancel(hcontext)
            t.join(0.05)
        out(step='cancel', **describe(*result['r']))
    SCardReleaseContext(hcontext)


if __name__ == '__main__':
    main(sys.argv[1:])
