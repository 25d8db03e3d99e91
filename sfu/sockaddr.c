/* See sockaddr.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "sockaddr.h"

int sockaddr_from_text(uint8_t *addr, uint32_t *addrlen, const char *host, int port)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    memset(addr, 0, 28);
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        memcpy(addr, &v4, sizeof(v4));
        *addrlen = sizeof(v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        memcpy(addr, &v6, sizeof(v6));
        *addrlen = sizeof(v6);
        return 0;
    }
    return -1;
}
