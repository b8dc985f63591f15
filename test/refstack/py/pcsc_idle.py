#!/usr/bin/python3
r"""A pyscard client for pcscd's on-demand power (R77) and a DIRECT connect asking for RAW (R78); one JSON line per fact.

  idle READER SECONDS
      with the scripted card (scriptedCard.ts: SELECT leaves its FCI waiting for GET RESPONSE; a power-off,
      power-up or reset forgets it): connect shared, SELECT, disconnect LEAVE, connect again at once and
      GET RESPONSE (the card as it was: within pcscd's grace period); SELECT again, disconnect LEAVE, wait
      SECONDS (past the grace period: no event tells a client of pcscd's power-down), then a DIRECT connect
      (the table's cardProtocol) and its SCardStatus, and a shared connect's GET RESPONSE (the card was reset)
  raw READER
      a shared handle S, then a DIRECT connect asking for SCARD_PROTOCOL_RAW (winscard.c ~357), S's transmit
      with its T=1 PCI and with RAW, a new shared T0|T1 connect, a shared RAW connect, a DIRECT connect without RAW;
      then S's reconnects: LEAVE with T0|T1 (R80), LEAVE with T0|T1|RAW, RESET with T0|T1, and a transmit after it
Runs under Debian's /usr/bin/python3 (python3-pyscard); the daemon is whatever PCSCLITE_CSOCK_NAME names.
"""
import json
import sys
import time

from smartcard.scard import (
    SCARD_SCOPE_USER, SCARD_STATE_UNAWARE, SCARD_STATE_PRESENT, SCARD_STATE_MUTE, SCARD_S_SUCCESS,
    SCARD_SHARE_SHARED, SCARD_SHARE_DIRECT, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_RAW,
    SCARD_LEAVE_CARD, SCARD_RESET_CARD, SCardEstablishContext, SCardGetStatusChange, SCardListReaders, SCardReleaseContext,
    SCardConnect, SCardDisconnect, SCardReconnect, SCardTransmit, SCardStatus,
)

ANY = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1
SELECT = [0x00, 0xA4, 0x04, 0x00, 0x08, 0xF0, 0x57, 0x42, 0x44, 0x45, 0x4D, 0x4F, 0x00]
GET_RESPONSE = [0x00, 0xC0, 0x00, 0x00, 0x0C]


def out(**kw):
    print(json.dumps(kw), flush=True)


def u(rv):
    return rv & 0xFFFFFFFF


def wait_card(hcontext, reader):
    current = SCARD_STATE_UNAWARE
    for _ in range(20):
        rv, states = SCardGetStatusChange(hcontext, 500, [(reader, current)])
        event = states[0][1] if states else 0
        if event & SCARD_STATE_PRESENT and not event & SCARD_STATE_MUTE and len(states[0][2]):
            return True
        current = event & ~0x2 if rv == SCARD_S_SUCCESS else SCARD_STATE_UNAWARE
    return False


def tx(h, proto, apdu):
    rv, resp = SCardTransmit(h, proto, apdu)
    return {'rv': u(rv), 'sw': bytes(resp[-2:]).hex() if rv == SCARD_S_SUCCESS and len(resp) >= 2 else None}


def idle(reader, seconds):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    SCardListReaders(hcontext, [])
    out(step='card', present=wait_card(hcontext, reader))
    rv, h, proto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    out(step='connect', rv=u(rv), protocol=proto)
    out(step='SELECT', **tx(h, proto, SELECT))
    out(step='disconnect', rv=u(SCardDisconnect(h, SCARD_LEAVE_CARD)))
    rv, h, proto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    out(step='connect again at once', rv=u(rv), protocol=proto)
    out(step='GET RESPONSE within the grace period: the FCI still waits', **tx(h, proto, GET_RESPONSE))
    out(step='SELECT again', **tx(h, proto, SELECT))
    out(step='disconnect again', rv=u(SCardDisconnect(h, SCARD_LEAVE_CARD)))
    time.sleep(seconds)
    rv, d, dproto = SCardConnect(hcontext, reader, SCARD_SHARE_DIRECT, 0)
    out(step='direct connect after the grace period: cardProtocol', rv=u(rv), protocol=dproto)
    rv, name, state, sproto, atr = SCardStatus(d)
    out(step='direct status after the grace period', rv=u(rv), state=state, protocol=sproto, atr=bytes(atr).hex())
    rv, h, proto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    out(step='connect after the grace period', rv=u(rv), protocol=proto)
    out(step='GET RESPONSE after the grace period: the card was reset', **tx(h, proto, GET_RESPONSE))
    rv, name, state, sproto, atr = SCardStatus(d)
    out(step='direct status after the power-up', rv=u(rv), state=state, protocol=sproto)
    SCardDisconnect(h, SCARD_LEAVE_CARD)
    SCardDisconnect(d, SCARD_LEAVE_CARD)
    SCardReleaseContext(hcontext)
    out(done=0)


def raw(reader):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    SCardListReaders(hcontext, [])
    out(step='card', present=wait_card(hcontext, reader))
    rv, s, sproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    out(step='shared connect', rv=u(rv), protocol=sproto)
    rv, d, dproto = SCardConnect(hcontext, reader, SCARD_SHARE_DIRECT, SCARD_PROTOCOL_RAW)
    out(step='direct connect asking for RAW', rv=u(rv), protocol=dproto)
    rv, name, state, stproto, atr = SCardStatus(s)
    out(step='shared handle status', rv=u(rv), protocol=stproto)
    out(step='shared transmit, its T=1 PCI', **tx(s, sproto, SELECT))
    out(step='shared transmit, RAW', **tx(s, SCARD_PROTOCOL_RAW, SELECT))
    rv, t, tproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    out(step='a new shared T0|T1 connect', rv=u(rv))
    if rv == SCARD_S_SUCCESS:
        SCardDisconnect(t, SCARD_LEAVE_CARD)
    rv, r, rproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_RAW)
    out(step='a shared RAW connect', rv=u(rv), protocol=rproto)
    if rv == SCARD_S_SUCCESS:
        SCardDisconnect(r, SCARD_LEAVE_CARD)
    rv, e, eproto = SCardConnect(hcontext, reader, SCARD_SHARE_DIRECT, 0)
    out(step='a direct connect without RAW', rv=u(rv), protocol=eproto)
    # R80: the reader's cardProtocol is RAW, so a LEAVE reconnect must ask for it (winscard.c ~707-714);
    # a reset unsets it first (~596) and negotiates again.
    rv, p = SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)
    out(step='shared reconnect LEAVE, T0|T1', rv=u(rv))
    rv, p = SCardReconnect(s, SCARD_SHARE_SHARED, ANY | SCARD_PROTOCOL_RAW, SCARD_LEAVE_CARD)
    out(step='shared reconnect LEAVE, T0|T1|RAW', rv=u(rv), protocol=p)
    rv, p = SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_RESET_CARD)
    out(step='shared reconnect RESET, T0|T1', rv=u(rv), protocol=p)
    out(step='shared transmit after the reset, its PCI', **tx(s, p, SELECT))
    for h in (e, d, s):
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    SCardReleaseContext(hcontext)
    out(done=0)


if __name__ == '__main__':
    if sys.argv[1] == 'idle':
        idle(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1] == 'raw':
        raw(sys.argv[2])
    else:
        sys.exit('usage: pcsc_idle.py idle READER SECONDS | raw READER')
