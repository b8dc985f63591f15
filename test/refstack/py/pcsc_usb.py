#!/usr/bin/python3
r"""A pyscard client for the USB CCID reader through the PC/SC service (usbService.test.ts); one JSON line per fact.

  pcsc_usb.py READER APDU_HEX...
      readers   SCardListReaders
      initial   SCardGetStatusChange(READER, UNAWARE, 0): rv, event state bits, ATR
      connect   SCardConnect shared, T=0|T=1: rv, the protocol
      transmit  each APDU_HEX in turn: rv, the response (hex)
      status    SCardStatus: rv, reader name, state, protocol, ATR
      attribs   SCardGetAttrib VENDOR_NAME, VENDOR_IFD_TYPE, VENDOR_IFD_VERSION, VENDOR_IFD_SERIAL_NO, CHANNEL_ID,
                MAX_IFSD, MAXINPUT: hex or "rv XXXXXXXX"
      features  SCardControl(SCARD_CTL_CODE(3400)) (CM_IOCTL_GET_FEATURE_REQUEST): rv, the answer (hex)
      ready     then waits for a stdin line (the test removes the card meanwhile)
      removed   SCardTransmit of the first APDU again: rv
      watch     SCardGetStatusChange(READER, the state seen at "initial", 10 s): rv, event state bits, ATR
Runs under Debian's /usr/bin/python3 (python3-pyscard); the daemon is whatever PCSCLITE_CSOCK_NAME names.
"""
import json
import sys

from smartcard.scard import (
    SCARD_SCOPE_USER, SCARD_STATE_UNAWARE, SCARD_STATE_CHANGED, SCARD_STATE_EMPTY, SCARD_STATE_PRESENT,
    SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD, SCARD_S_SUCCESS,
    SCardEstablishContext, SCardReleaseContext, SCardListReaders, SCardGetStatusChange, SCardConnect,
    SCardDisconnect, SCardTransmit, SCardStatus, SCardGetAttrib, SCardControl, SCARD_CTL_CODE,
)


def out(**kw):
    print(json.dumps(kw), flush=True)


def u32(rv):
    return rv & 0xFFFFFFFF


def state(rv, states):
    _, event, atr = states[0] if states else ('', 0, [])
    event = u32(event)
    return dict(rv=u32(rv), event=event, changed=bool(event & SCARD_STATE_CHANGED), present=bool(event & SCARD_STATE_PRESENT),
                empty=bool(event & SCARD_STATE_EMPTY), atr=bytes(atr).hex())


def main(reader, apdus):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    assert rv == SCARD_S_SUCCESS, hex(rv)
    rv, names = SCardListReaders(hcontext, [])
    out(step='readers', rv=u32(rv), readers=list(names))
    rv, states = SCardGetStatusChange(hcontext, 0, [(reader, SCARD_STATE_UNAWARE)])
    out(step='initial', **state(rv, states))
    seen = states[0][1] & ~SCARD_STATE_CHANGED if states else 0
    rv, hcard, proto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
    out(step='connect', rv=u32(rv), protocol=proto)
    for a in apdus:
        rv, resp = SCardTransmit(hcard, proto, list(bytes.fromhex(a)))
        out(step='transmit', rv=u32(rv), response=bytes(resp).hex() if rv == SCARD_S_SUCCESS else None)
    rv, name, st, p, atr = SCardStatus(hcard)
    out(step='status', rv=u32(rv), reader=name, state=u32(st), protocol=p, atr=bytes(atr).hex())
    attribs = {}
    for tag_name, tag in (('VENDOR_NAME', 0x10100), ('VENDOR_IFD_TYPE', 0x10101), ('VENDOR_IFD_VERSION', 0x10102),
                          ('VENDOR_IFD_SERIAL_NO', 0x10103), ('CHANNEL_ID', 0x20110), ('MAX_IFSD', 0x30125), ('MAXINPUT', 0x7A007)):
        rv, attrib = SCardGetAttrib(hcard, tag)
        attribs[tag_name] = bytes(attrib).hex() if rv == SCARD_S_SUCCESS else 'rv %08X' % u32(rv)
    out(step='attribs', attribs=attribs)
    rv, answer = SCardControl(hcard, SCARD_CTL_CODE(3400), [])
    out(step='features', rv=u32(rv), answer=bytes(answer).hex() if rv == SCARD_S_SUCCESS else None)
    out(step='ready')
    sys.stdin.readline()
    rv, resp = SCardTransmit(hcard, proto, list(bytes.fromhex(apdus[0])))
    out(step='removed', rv=u32(rv))
    rv, states = SCardGetStatusChange(hcontext, 10000, [(reader, seen)])
    out(step='watch', **state(rv, states))
    out(step='disconnect', rv=u32(SCardDisconnect(hcard, SCARD_LEAVE_CARD)))
    SCardReleaseContext(hcontext)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2:])
