/* A textual IPv4 or IPv6 address and a port as the struct sockaddr the kernel takes
 * and reports (fanout.c sends to it, port_receive.c looks senders up by it). */
#include <stdint.h>

/* `addr` holds at least 28 bytes; 0, or -1 if `host` is not an address. */
int sockaddr_from_text(uint8_t *addr, uint32_t *addrlen, const char *host, int port);
