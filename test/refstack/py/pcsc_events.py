#!/usr/bin/python3
r"""A pyscard client for what pcscd answers around card events and transactions (R45-R49); one JSON line per fact.

  events READER      a shared handle S and a direct handle D; prints {"waiting": "removal"} and waits
                     (GetStatusChange, 10 s) for the reader to be empty, then the return codes of S's and D's
                     calls; {"waiting": "insertion"}, waits for a card, then the calls again, D's resets
                     (SCardReconnect DIRECT/RESET, UNPOWER, DIRECT -> SHARED with RESET) and who hears them.
                     Only return codes (and the active protocol) are printed: the cards differ.
  transactions READER
                     two shared handles S and T and a direct one D: D's SCardBeginTransaction and whether
                     T's SCardGetAttrib is refused for sharing (libpcsclite does not poll GetAttrib) meanwhile
                     and after D's end; then S begins, reconnects to DIRECT and back to SHARED (LEAVE), and
                     T is asked again after each step and after S's end (R50)
  direct READER      SCardTransmit on SCARD_SHARE_DIRECT handles (winscard.c SCardTransmit ~1491-1640: no share-mode
                     check; the send PCI's protocol against the reader's cardProtocol, RAW passing): a shared handle
                     S negotiates, direct handles with dwPreferredProtocols 0 and T0|T1 report it and transmit with
                     it, the other protocol and RAW; after the direct handle's own DIRECT/RESET (cardProtocol
                     UNDEFINED) and after S negotiates again (R59)
  hold READER        connect shared, SCardBeginTransaction, print {"began": rv}; on each stdin line "transmit"
                     transmit (SELECT MF) and print {"transmit": rv}; on "end" SCardEndTransaction, print
                     {"ended": rv}; at the end of stdin disconnect
  connect READER shared|direct
                     print {"connecting": 1}, then SCardConnect in that share mode (libpcsclite does not poll
                     it: pcscd's answer), print {"connect": rv}
Runs under Debian's /usr/bin/python3 (python3-pyscard); the daemon is whatever PCSCLITE_CSOCK_NAME names.
"""
import json
import sys

from smartcard.scard import (
    SCARD_SCOPE_USER, SCARD_STATE_UNAWARE, SCARD_STATE_EMPTY, SCARD_STATE_PRESENT, SCARD_STATE_MUTE,
    SCARD_S_SUCCESS, SCARD_SHARE_SHARED, SCARD_SHARE_DIRECT, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_RAW,
    SCARD_LEAVE_CARD, SCARD_RESET_CARD, SCARD_UNPOWER_CARD, SCARD_ATTR_ATR_STRING, SCARD_ATTR_CHANNEL_ID,
    SCARD_CTL_CODE, SCardEstablishContext, SCardGetStatusChange, SCardListReaders, SCardReleaseContext,
    SCardConnect, SCardReconnect, SCardDisconnect, SCardTransmit, SCardStatus, SCardGetAttrib, SCardControl,
    SCardBeginTransaction, SCardEndTransaction, SCardSetAttrib, SCARD_EJECT_CARD, SCARD_ATTR_VENDOR_NAME,
)

ANY = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1
SELECT_MF = [0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00]
GET_FEATURE_REQUEST = SCARD_CTL_CODE(3400)


def out(**kw):
    print(json.dumps(kw), flush=True)


def u(rv):
    return rv & 0xFFFFFFFF


def wait_for(hcontext, reader, want):
    """GetStatusChange until the reader is empty / has a card that answered (at most 10 s in all)."""
    current = SCARD_STATE_UNAWARE
    for _ in range(20):
        rv, states = SCardGetStatusChange(hcontext, 500, [(reader, current)])
        event = states[0][1] if states else 0
        if want == 'empty' and event & SCARD_STATE_EMPTY:
            return True
        if want == 'card' and event & SCARD_STATE_PRESENT and not event & SCARD_STATE_MUTE and len(states[0][2]):
            return True
        current = event & ~0x2 if rv == SCARD_S_SUCCESS else SCARD_STATE_UNAWARE
    return False


def events(reader):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    SCardListReaders(hcontext, [])
    rv, s, sproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    rv2, d, dproto = SCardConnect(hcontext, reader, SCARD_SHARE_DIRECT, 0)
    out(step='connect', rv=[u(rv), u(rv2)])
    # SCardStatus: pyscard returns (rv, reader, state, protocol, atr); only rv is compared.
    status = lambda h: u(SCardStatus(h)[0])
    tx = lambda h, p: u(SCardTransmit(h, p, SELECT_MF)[0])
    attrib = lambda h, tag: u(SCardGetAttrib(h, tag)[0])
    control = lambda h: u(SCardControl(h, GET_FEATURE_REQUEST, [])[0])
    out(step='channel id', rv=attrib(d, SCARD_ATTR_CHANNEL_ID))
    out(waiting='removal')
    out(step='seen empty', rv=wait_for(hcontext, reader, 'empty'))
    for who, h, p in (('direct', d, SCARD_PROTOCOL_T1), ('shared', s, sproto)):
        out(step=who + ' status', rv=status(h))
        out(step=who + ' getattrib ATR', rv=attrib(h, SCARD_ATTR_ATR_STRING))
        out(step=who + ' transmit', rv=tx(h, p))
        out(step=who + ' status again', rv=status(h))
    # A direct handle opened on the empty reader: no event to hear; pcscd's SCardTransmit answers
    # SCARD_E_NO_SMARTCARD for a PCI other than RAW (winscard.c ~1542) (R59).
    rv, e, eproto = SCardConnect(hcontext, reader, SCARD_SHARE_DIRECT, 0)
    out(step='direct connect with no card', rv=u(rv), protocol=eproto)
    out(step='its transmit T=1', rv=tx(e, SCARD_PROTOCOL_T1))
    out(step='its transmit T=0', rv=tx(e, SCARD_PROTOCOL_T0))
    SCardDisconnect(e, SCARD_LEAVE_CARD)
    c = control(d)
    out(step='direct control is no event', rv=c not in (0x80100068, 0x80100069))
    c = control(s)
    out(step='shared control is no event', rv=c not in (0x80100068, 0x80100069))
    out(step='shared reconnect LEAVE', rv=u(SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)[0]))
    out(step='shared transmit after it', rv=tx(s, sproto))
    out(step='direct reconnect LEAVE', rv=u(SCardReconnect(d, SCARD_SHARE_DIRECT, 0, SCARD_LEAVE_CARD)[0]))
    out(step='direct status after it', rv=status(d))
    out(step='shared reconnect RESET', rv=u(SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_RESET_CARD)[0]))
    out(step='shared transmit after it', rv=tx(s, sproto))
    out(step='direct status after it', rv=status(d))
    out(waiting='insertion')
    out(step='seen card', rv=wait_for(hcontext, reader, 'card'))
    out(step='direct status with a card', rv=status(d))
    rv, sproto = SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)
    out(step='shared reconnect LEAVE', rv=u(rv))
    out(step='shared transmit', rv=tx(s, sproto))
    out(step='direct reconnect LEAVE', rv=u(SCardReconnect(d, SCARD_SHARE_DIRECT, 0, SCARD_LEAVE_CARD)[0]))
    out(step='direct status', rv=status(d))
    rv, p = SCardReconnect(d, SCARD_SHARE_DIRECT, 0, SCARD_RESET_CARD)
    out(step='direct reconnect DIRECT RESET', rv=u(rv), protocol=p)
    out(step='direct status after its reset', rv=status(d))
    out(step='shared transmit after the direct reset', rv=tx(s, sproto))
    out(step='shared status', rv=status(s))
    rv, sproto = SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)
    out(step='shared reconnect LEAVE', rv=u(rv))
    rv, p = SCardReconnect(d, SCARD_SHARE_DIRECT, 0, SCARD_UNPOWER_CARD)
    out(step='direct reconnect DIRECT UNPOWER', rv=u(rv), protocol=p)
    out(step='shared transmit after the direct unpower', rv=tx(s, sproto))
    rv, sproto = SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)
    out(step='shared reconnect LEAVE', rv=u(rv))
    rv, dproto = SCardReconnect(d, SCARD_SHARE_SHARED, ANY, SCARD_RESET_CARD)
    out(step='direct reconnect SHARED RESET', rv=u(rv), protocol=dproto)
    out(step='now shared: transmit', rv=tx(d, dproto))
    out(step='the other shared transmit', rv=tx(s, sproto))
    SCardDisconnect(d, SCARD_LEAVE_CARD)
    SCardDisconnect(s, SCARD_LEAVE_CARD)
    SCardReleaseContext(hcontext)
    out(done=0)


def transactions(reader):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    SCardListReaders(hcontext, [])
    rv1, s, sproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    rv2, t, tproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    rv3, d, dproto = SCardConnect(hcontext, reader, SCARD_SHARE_DIRECT, 0)
    out(step='connect', rv=[u(rv1), u(rv2), u(rv3)])
    refused = lambda h: u(SCardGetAttrib(h, SCARD_ATTR_ATR_STRING)[0]) == 0x8010000B
    out(step='direct begin', rv=u(SCardBeginTransaction(d)))
    out(step='shared refused during it', rv=refused(s))
    out(step='direct control in its own transaction not refused', rv=u(SCardControl(d, GET_FEATURE_REQUEST, [])[0]) != 0x8010000B)
    out(step='direct end', rv=u(SCardEndTransaction(d, SCARD_LEAVE_CARD)))
    out(step='shared refused after the end', rv=refused(s))
    out(step='direct end again', rv=u(SCardEndTransaction(d, SCARD_LEAVE_CARD)))
    out(step='shared begin', rv=u(SCardBeginTransaction(s)))
    out(step='reconnect to DIRECT', rv=u(SCardReconnect(s, SCARD_SHARE_DIRECT, 0, SCARD_LEAVE_CARD)[0]))
    out(step='other refused (held by the direct handle)', rv=refused(t))
    out(step='reconnect to SHARED', rv=u(SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)[0]))
    out(step='other refused (held, shared again)', rv=refused(t))
    out(step='end', rv=u(SCardEndTransaction(s, SCARD_LEAVE_CARD)))
    out(step='other refused after the end', rv=refused(t))
    for h in (s, t, d):
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    SCardReleaseContext(hcontext)
    out(done=0)


def direct(reader):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    SCardListReaders(hcontext, [])
    rv, s, sproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    out(step='shared connect', rv=u(rv), protocol=sproto)
    other = SCARD_PROTOCOL_T0 if sproto == SCARD_PROTOCOL_T1 else SCARD_PROTOCOL_T1
    rv, d, dproto = SCardConnect(hcontext, reader, SCARD_SHARE_DIRECT, 0)
    out(step='direct connect, no preferred protocol', rv=u(rv), same_protocol=dproto == sproto)
    rv, e, eproto = SCardConnect(hcontext, reader, SCARD_SHARE_DIRECT, ANY)
    out(step='direct connect, T0|T1', rv=u(rv), same_protocol=eproto == sproto)

    def tx(h, p):
        rv, resp = SCardTransmit(h, p, SELECT_MF)
        # The cards differ (simulator, vicc): whether a status word came back, not which.
        return {'rv': u(rv), 'sw': len(resp) >= 2 if rv == SCARD_S_SUCCESS else None}

    out(step='direct transmit, the card\'s protocol', **tx(d, sproto))
    out(step='direct T0|T1 handle transmit, the card\'s protocol', **tx(e, sproto))
    out(step='direct transmit, the other protocol', **tx(d, other))
    out(step='direct transmit, RAW', **tx(d, SCARD_PROTOCOL_RAW))
    out(step='shared transmit, RAW', **tx(s, SCARD_PROTOCOL_RAW))
    rv, p = SCardReconnect(d, SCARD_SHARE_DIRECT, 0, SCARD_RESET_CARD)
    out(step='direct reconnect DIRECT RESET', rv=u(rv), protocol=p)
    out(step='direct transmit after its reset, the old protocol', **tx(d, sproto))
    out(step='direct transmit after its reset, RAW', **tx(d, SCARD_PROTOCOL_RAW))
    out(step='the other direct handle hears the reset', **tx(e, sproto))
    rv, p = SCardReconnect(e, SCARD_SHARE_DIRECT, 0, SCARD_LEAVE_CARD)
    out(step='it reconnects LEAVE', rv=u(rv), protocol=p)
    rv, sproto2 = SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)
    out(step='shared reconnect LEAVE negotiates again', rv=u(rv), same_protocol=sproto2 == sproto)
    out(step='direct transmit, the card\'s protocol again', **tx(d, sproto))
    out(step='shared transmit', **tx(s, sproto))
    for h in (d, e, s):
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    SCardReleaseContext(hcontext)
    out(done=0)


def arguments(reader):
    """Refused arguments of SCardReconnect, SCardDisconnect and SCardEndTransaction (winscard.c's checks before the
    reader is looked up), and SCardSetAttrib (the reader driver's refusal, after the handle's reset)."""
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    SCardListReaders(hcontext, [])
    rv1, s, sproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    rv2, t, tproto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    out(step='connect', rv=[u(rv1), u(rv2)])
    tx = lambda h, p: u(SCardTransmit(h, p, SELECT_MF)[0])
    out(step='reconnect EJECT', rv=u(SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_EJECT_CARD)[0]))
    out(step='reconnect initialization 7', rv=u(SCardReconnect(s, SCARD_SHARE_SHARED, ANY, 7)[0]))
    out(step='reconnect share mode 0', rv=u(SCardReconnect(s, 0, ANY, SCARD_LEAVE_CARD)[0]))
    out(step='reconnect share mode 9, no protocol', rv=u(SCardReconnect(s, 9, 0, SCARD_LEAVE_CARD)[0]))
    out(step='reconnect shared, no protocol', rv=u(SCardReconnect(s, SCARD_SHARE_SHARED, 0, SCARD_LEAVE_CARD)[0]))
    out(step='the other handle: no reset, no removal', rv=tx(t, tproto))
    out(step='disconnect disposition 7', rv=u(SCardDisconnect(s, 7)))
    out(step='the handle is still there', rv=tx(s, sproto))
    out(step='begin', rv=u(SCardBeginTransaction(s)))
    out(step='end disposition 7', rv=u(SCardEndTransaction(s, 7)))
    out(step='the transaction is still held', rv=u(SCardEndTransaction(s, SCARD_LEAVE_CARD)))
    # The reader driver's refusal differs by driver (vpcd: SCARD_E_NOT_TRANSACTED; libccid, the simulator:
    # SCARD_E_UNSUPPORTED_FEATURE): compared as refused; the reset is pcscd's own check, before the driver.
    setattr_ = lambda: u(SCardSetAttrib(s, SCARD_ATTR_VENDOR_NAME, [0x41, 0x42, 0x00]))
    out(step='set attrib', refused=setattr_() != 0)
    out(step='other reconnect RESET', rv=u(SCardReconnect(t, SCARD_SHARE_SHARED, ANY, SCARD_RESET_CARD)[0]))
    out(step='set attrib after the other\'s reset', rv=setattr_())
    out(step='reconnect LEAVE', rv=u(SCardReconnect(s, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)[0]))
    out(step='set attrib again', refused=setattr_() != 0)
    for h in (s, t):
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    SCardReleaseContext(hcontext)
    out(done=0)


def hold(reader):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    SCardListReaders(hcontext, [])
    rv, h, proto = SCardConnect(hcontext, reader, SCARD_SHARE_SHARED, ANY)
    out(began=u(SCardBeginTransaction(h)) if rv == SCARD_S_SUCCESS else u(rv))
    for line in sys.stdin:
        op = line.strip()
        if op == 'transmit':
            out(transmit=u(SCardTransmit(h, proto, SELECT_MF)[0]))
        elif op == 'end':
            out(ended=u(SCardEndTransaction(h, SCARD_LEAVE_CARD)))
    SCardDisconnect(h, SCARD_LEAVE_CARD)
    SCardReleaseContext(hcontext)


def connect(reader, share):
    rv, hcontext = SCardEstablishContext(SCARD_SCOPE_USER)
    SCardListReaders(hcontext, [])
    out(connecting=1)
    mode = SCARD_SHARE_DIRECT if share == 'direct' else SCARD_SHARE_SHARED
    rv, h, proto = SCardConnect(hcontext, reader, mode, 0 if share == 'direct' else ANY)
    out(connect=u(rv))
    if rv == SCARD_S_SUCCESS:
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    SCardReleaseContext(hcontext)


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'events':
        events(sys.argv[2])
    elif cmd == 'transactions':
        transactions(sys.argv[2])
    elif cmd == 'direct':
        direct(sys.argv[2])
    elif cmd == 'arguments':
        arguments(sys.argv[2])
    elif cmd == 'hold':
        hold(sys.argv[2])
    elif cmd == 'connect':
        connect(sys.argv[2], sys.argv[3])
    else:
        sys.exit('unknown command ' + cmd)
