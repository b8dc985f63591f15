/* The PC/SC types and structures as a platform's real headers lay them out, for
 * test/refstack/pcsc-layout.test.ts. Built with that platform's compiler: run, it
 * prints the values one per line; compiled only (-S -emit-llvm), they are read from
 * the constant array. The order is LAYOUT_FIELDS in the test. */
#include <stddef.h>
#ifdef _WIN32
#include <windows.h>
#include <winscard.h>
#define PROBE_READERSTATE SCARD_READERSTATEA /* the ANSI structure: the driver calls the ...A entry points */
#else
#include PROBE_HEADER
#define PROBE_READERSTATE SCARD_READERSTATE
#endif

const unsigned long long probe_layout[] = {
  sizeof(DWORD),
  sizeof(LONG),
  sizeof(SCARDHANDLE),
  sizeof(SCARDCONTEXT),
  sizeof(PROBE_READERSTATE),
  offsetof(PROBE_READERSTATE, szReader),
  offsetof(PROBE_READERSTATE, pvUserData),
  offsetof(PROBE_READERSTATE, dwCurrentState),
  offsetof(PROBE_READERSTATE, dwEventState),
  offsetof(PROBE_READERSTATE, cbAtr),
  offsetof(PROBE_READERSTATE, rgbAtr),
  sizeof(((PROBE_READERSTATE *)0)->rgbAtr),
  sizeof(SCARD_IO_REQUEST),
  offsetof(SCARD_IO_REQUEST, dwProtocol),
  offsetof(SCARD_IO_REQUEST, cbPciLength),
};

#ifdef PROBE_MAIN
#include <stdio.h>
int main(void)
{
  for (size_t i = 0; i < sizeof probe_layout / sizeof probe_layout[0]; i++)
    printf("%llu\n", probe_layout[i]);
  return 0;
}
#endif
