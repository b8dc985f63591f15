#!/usr/bin/python3
"""A pyscard client for a restart of the daemon under it (issue 15): the workbench's PC/SC service
restarted by a setting change or its helper killed, and pcscd stopped or killed, compared.

  pcsc_restart.py hold READER   establishes a context, waits (10 s at most) for READER with a card,
                                lists the readers, connects shared, transmits;
                                prints {"ready": {...return codes}}; then, on the stdin line "after",
                                calls again on the old context and handle (Transmit, Status, ListReaders,
                                GetStatusChange with timeout 0, Disconnect, ReleaseContext) and prints
                                {"old": {...}}; then a new context: EstablishContext, waits (10 s at most)
                                for READER with a card, Connect, Transmit, and prints {"new": {...}}.
  pcsc_restart.py wait READER   establishes a context, reads READER's state until it stays the same for
                                1 s (10 s at most), prints {"waiting": 1} and
                                waits in SCardGetStatusChange (60 s) for a change; prints {"waited": rv,
                                "ms": how long, "state": the reader's dwEventState when rv is 0}; on the
                                stdin line "after", ListReaders and GetStatusChange (timeout 0) on the
                                same context: {"after": {...}}.

Only return codes (unsigned) are printed: the readers and cards of the two daemons differ.
Runs under Debian's /usr/bin/python3 (python3-pyscard); the daemon is whatever PCSCLITE_CSOCK_NAME names.
"""
import json
import sys
import time

from smartcard.scard import (
    SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_SCOPE_USER, SCARD_SHARE_SHARED,
    SCARD_STATE_PRESENT, SCARD_STATE_MUTE, SCARD_STATE_UNAWARE, SCardConnect, SCardDisconnect,
    SCardEstablishContext, SCardGetStatusChange, SCardListReaders, SCardReleaseContext, SCardStatus,
    SCardTransmit,
)

SELECT_MF = [0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00]
ANY = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1


def out(**kw):
    print(json.dumps(kw), flush=True)


def u(rv):
    return rv & 0xFFFFFFFF


def connect_and_transmit(hcontext, reader):
    """ListReaders, Connect, Transmit: their return codes, and the handle."""
    rv_list, readers = SCardListReaders(hcontext, [])
    rv_conn, hcard, proto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    rv_tx = u(SCardTransmit(hcard, proto, SELECT_MF)[0]) if rv_conn == 0 else None
    return {'list': u(rv_list), 'listed': reader in (readers or []), 'connect': u(rv_conn), 'transmit': rv_tx}, hcard, proto


def wait_for_card(hcontext, reader, ms):
    """GetStatusChange until READER is listed and has a card that answered; False after `ms`."""
    end = time.monotonic() + ms / 1000
    current = SCARD_STATE_UNAWARE
    while time.monotonic() < end:
        rv, readers = SCardListReaders(hcontext, [])
        if rv != 0 or reader not in readers:
            time.sleep(0.1)
            continue
        rv, states = SCardGetStatusChange(hcontext, 500, [(reader, current)])
        event = states[0][1] if rv == 0 and states else 0
        if event & SCARD_STATE_PRESENT and not event & SCARD_STATE_MUTE:
            return True
        current = event & ~0x2 if rv == 0 else SCARD_STATE_UNAWARE
    return False


def hold(reader):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    seen = rv == 0 and wait_for_card(hcontext, reader, 10_000)
    first, hcard, proto = connect_and_transmit(hcontext, reader)
    out(ready=dict(establish=u(rv), cardSeen=seen, **first))
    if first['connect'] != 0:
        return 1
    for line in sys.stdin:
        if line.strip() == 'after':
            break
    else:
        return 0
    old = {
        'transmit': u(SCardTransmit(hcard, proto, SELECT_MF)[0]),
        'status': u(SCardStatus(hcard)[0]),
        'list': u(SCardListReaders(hcontext, [])[0]),
        'getStatusChange': u(SCardGetStatusChange(hcontext, 0, [(reader, SCARD_STATE_UNAWARE)])[0]),
        'disconnect': u(SCardDisconnect(hcard, SCARD_LEAVE_CARD)),
        'release': u(SCardReleaseContext(hcontext)),
    }
    out(old=old)
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    new = {'establish': u(rv), 'cardSeen': rv == 0 and wait_for_card(hcontext, reader, 10_000)}
    more, hcard, _ = connect_and_transmit(hcontext, reader)
    new.update(more)
    if more['connect'] == 0:
        new['disconnect'] = u(SCardDisconnect(hcard, SCARD_LEAVE_CARD))
    new['release'] = u(SCardReleaseContext(hcontext))
    out(new=new)
    return 0


def wait(reader):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    rv, states = SCardGetStatusChange(hcontext, 0, [(reader, SCARD_STATE_UNAWARE)])
    if rv != 0:
        out(failed=u(rv))
        return 1
    current = states[0][1] & ~0x2  # without SCARD_STATE_CHANGED
    # Settle: the reader's state still changes while the card powers up or the holder connects.
    for _ in range(10):
        rv, states = SCardGetStatusChange(hcontext, 1000, [(reader, current)])
        if rv != 0:
            break
        current = states[0][1] & ~0x2
    out(waiting=1)
    t0 = time.monotonic()
    rv, states = SCardGetStatusChange(hcontext, 60_000, [(reader, current)])
    out(waited=u(rv), ms=round((time.monotonic() - t0) * 1000), state=states[0][1] if rv == 0 and states else None)
    for line in sys.stdin:
        if line.strip() == 'after':
            break
    else:
        return 0
    out(after={
        'list': u(SCardListReaders(hcontext, [])[0]),
        'getStatusChange': u(SCardGetStatusChange(hcontext, 0, [(reader, SCARD_STATE_UNAWARE)])[0]),
        'release': u(SCardReleaseContext(hcontext)),
    })
    return 0


if __name__ == '__main__':
    sys.exit({'hold': hold, 'wait': wait}[sys.argv[1]](sys.argv[2]))
