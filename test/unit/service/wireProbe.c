/*
 * Prints sizeof/offsetof of pcsc-lite's client/daemon wire structs and the
 * constants the service uses, one JSON object per line. Compiled at test time
 * against a pcsc-lite source tree (test/unit/service/wire.test.ts) and compared
 * with server/src/service/wire.ts. READER_STATE is `struct pubReaderStatesList`
 * in eventhandler.h up to 2.4 and `struct pubReaderState` in readers.h from 2.5
 * (-DPROBE_READERS_H).
 */
#include <stdio.h>
#include <stddef.h>
#include "winscard_msg.h"
#include "eventhandler.h"
#ifdef PROBE_READERS_H
#define READER_STATE_TAG pubReaderState
#else
#define READER_STATE_TAG pubReaderStatesList
#endif
#define S(t) printf("{\"struct\":\"%s\",\"size\":%zu,\"fields\":{", #t, sizeof(struct t))
#define F(t,f) printf("%s\"%s\":[%zu,%zu]", first ? "" : ",", #f, offsetof(struct t,f), sizeof(((struct t*)0)->f)), first = 0
#define E() printf("}}\n"), first = 1
#define C(n) printf("{\"const\":\"%s\",\"value\":%lld}\n", #n, (long long)(n))
int main(void) {
  int first = 1;
  S(rxHeader); F(rxHeader,size); F(rxHeader,command); E();
  S(version_struct); F(version_struct,major); F(version_struct,minor); F(version_struct,rv); E();
  S(client_struct); F(client_struct,hContext); E();
  S(wait_reader_state_change); F(wait_reader_state_change,timeOut); F(wait_reader_state_change,rv); E();
  S(establish_struct); F(establish_struct,dwScope); F(establish_struct,hContext); F(establish_struct,rv); E();
  S(release_struct); F(release_struct,hContext); F(release_struct,rv); E();
  S(connect_struct); F(connect_struct,hContext); F(connect_struct,szReader); F(connect_struct,dwShareMode); F(connect_struct,dwPreferredProtocols); F(connect_struct,hCard); F(connect_struct,dwActiveProtocol); F(connect_struct,rv); E();
  S(reconnect_struct); F(reconnect_struct,hCard); F(reconnect_struct,dwShareMode); F(reconnect_struct,dwPreferredProtocols); F(reconnect_struct,dwInitialization); F(reconnect_struct,dwActiveProtocol); F(reconnect_struct,rv); E();
  S(disconnect_struct); F(disconnect_struct,hCard); F(disconnect_struct,dwDisposition); F(disconnect_struct,rv); E();
  S(begin_struct); F(begin_struct,hCard); F(begin_struct,rv); E();
  S(end_struct); F(end_struct,hCard); F(end_struct,dwDisposition); F(end_struct,rv); E();
  S(cancel_struct); F(cancel_struct,hContext); F(cancel_struct,rv); E();
  S(status_struct); F(status_struct,hCard); F(status_struct,rv); E();
  S(transmit_struct); F(transmit_struct,hCard); F(transmit_struct,ioSendPciProtocol); F(transmit_struct,ioSendPciLength); F(transmit_struct,cbSendLength); F(transmit_struct,ioRecvPciProtocol); F(transmit_struct,ioRecvPciLength); F(transmit_struct,pcbRecvLength); F(transmit_struct,rv); E();
  S(control_struct); F(control_struct,hCard); F(control_struct,dwControlCode); F(control_struct,cbSendLength); F(control_struct,cbRecvLength); F(control_struct,dwBytesReturned); F(control_struct,rv); E();
  S(getset_struct); F(getset_struct,hCard); F(getset_struct,dwAttrId); F(getset_struct,pbAttr); F(getset_struct,cbAttrLen); F(getset_struct,rv); E();
  S(get_reader_events); F(get_reader_events,readerEvents); F(get_reader_events,rv); E();
  printf("{\"struct\":\"READER_STATE\",\"size\":%zu,\"fields\":{", sizeof(struct READER_STATE_TAG));
  F(READER_STATE_TAG,readerName); F(READER_STATE_TAG,eventCounter); F(READER_STATE_TAG,readerState); F(READER_STATE_TAG,readerSharing);
  F(READER_STATE_TAG,cardAtr); F(READER_STATE_TAG,cardAtrLength); F(READER_STATE_TAG,cardProtocol); E();
  C(PROTOCOL_VERSION_MAJOR); C(PROTOCOL_VERSION_MINOR);
  C(MAX_READERNAME); C(MAX_ATR_SIZE); C(MAX_BUFFER_SIZE); C(MAX_BUFFER_SIZE_EXTENDED); C(PCSCLITE_MAX_READERS_CONTEXTS);
  C(SCARD_ESTABLISH_CONTEXT); C(SCARD_RELEASE_CONTEXT); C(SCARD_LIST_READERS); C(SCARD_CONNECT); C(SCARD_RECONNECT); C(SCARD_DISCONNECT);
  C(SCARD_BEGIN_TRANSACTION); C(SCARD_END_TRANSACTION); C(SCARD_TRANSMIT); C(SCARD_CONTROL); C(SCARD_STATUS); C(SCARD_GET_STATUS_CHANGE);
  C(SCARD_CANCEL); C(SCARD_CANCEL_TRANSACTION); C(SCARD_GET_ATTRIB); C(SCARD_SET_ATTRIB); C(CMD_VERSION); C(CMD_GET_READERS_STATE);
  C(CMD_WAIT_READER_STATE_CHANGE); C(CMD_STOP_WAITING_READER_STATE_CHANGE); C(CMD_GET_READER_EVENTS); C(CMD_ENUM_LAST);
#ifdef PROBE_READERS_H
  C(CMD_GET_READERS_STATE_SIZE); C(CMD_GET_READERS_STATE_ARRAY);
#endif
  C(SCARD_UNKNOWN); C(SCARD_ABSENT); C(SCARD_PRESENT); C(SCARD_SWALLOWED); C(SCARD_POWERED); C(SCARD_NEGOTIABLE); C(SCARD_SPECIFIC);
  C(PCSCLITE_SHARING_LAST_CONTEXT); C(PCSCLITE_SHARING_NO_CONTEXT); C(PCSCLITE_SHARING_EXCLUSIVE_CONTEXT); C(READER_NOT_INITIALIZED);
  C(SCARD_E_SERVICE_STOPPED); C(SCARD_E_INVALID_HANDLE); C(SCARD_E_INVALID_VALUE); C(SCARD_E_CANCELLED); C(SCARD_F_INTERNAL_ERROR);
  C(SCARD_E_TIMEOUT); C(SCARD_E_NO_SMARTCARD); C(SCARD_E_UNKNOWN_READER); C(SCARD_E_SHARING_VIOLATION); C(SCARD_W_RESET_CARD);
  C(SCARD_W_REMOVED_CARD); C(SCARD_E_INSUFFICIENT_BUFFER); C(SCARD_E_NO_SERVICE); C(SCARD_E_READER_UNAVAILABLE); C(SCARD_E_NOT_TRANSACTED);
  C(SCARD_E_PROTO_MISMATCH); C(SCARD_E_INVALID_PARAMETER); C(SCARD_E_UNSUPPORTED_FEATURE); C(SCARD_E_NO_MEMORY); C(SCARD_W_UNPOWERED_CARD);
  C(SCARD_W_UNRESPONSIVE_CARD); C(SCARD_E_NOT_READY); C(SCARD_F_COMM_ERROR);
  C(SCARD_SHARE_EXCLUSIVE); C(SCARD_SHARE_SHARED); C(SCARD_SHARE_DIRECT);
  C(SCARD_LEAVE_CARD); C(SCARD_RESET_CARD); C(SCARD_UNPOWER_CARD); C(SCARD_EJECT_CARD);
  C(SCARD_PROTOCOL_UNDEFINED); C(SCARD_PROTOCOL_T0); C(SCARD_PROTOCOL_T1); C(SCARD_PROTOCOL_RAW); C(SCARD_PROTOCOL_T15); C(SCARD_PROTOCOL_ANY);
  return 0;
}
