/*
 * LD_PRELOAD shim for pcscd in the reference stack (docs/reference-stack.md).
 *
 * 1. accept()/accept4(): sets TCP_NODELAY on accepted TCP sockets. Stock vpcd
 *    writes the 2-byte length and the payload separately; with Nagle and delayed
 *    ACK every APDU costs ~44 ms. With TCP_NODELAY the stack is a fair baseline.
 * 2. bind(): when REFSTACK_BIND_LOOPBACK=1, an IPv4 bind to INADDR_ANY becomes a
 *    bind to 127.0.0.1, because vpcd's server socket always binds all addresses
 *    and its reader.conf has no way to choose the address.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void set_nodelay(int fd)
{
    if (fd < 0)
        return;
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *) &addr, &len) != 0)
        return;
    if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6)
        return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *)) dlsym(RTLD_NEXT, "accept");
    int r = real(fd, addr, len);
    set_nodelay(r);
    return r;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int)) dlsym(RTLD_NEXT, "accept4");
    int r = real(fd, addr, len, flags);
    set_nodelay(r);
    return r;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (int (*)(int, const struct sockaddr *, socklen_t)) dlsym(RTLD_NEXT, "bind");
    const char *loopback = getenv("REFSTACK_BIND_LOOPBACK");
    if (loopback && strcmp(loopback, "1") == 0 && addr && addr->sa_family == AF_INET
        && len >= (socklen_t) sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, addr, sizeof in);
        if (in.sin_addr.s_addr == htonl(INADDR_ANY)) {
            in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real(fd, (const struct sockaddr *) &in, sizeof in);
        }
    }
    return real(fd, addr, len);
}
