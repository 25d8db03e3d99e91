/* What Python (sfu/port_receive.py, sfu/rtp_packet.py, through cffi) and
 * port_receive.c share. cffi reads this file as declarations: no macros. */

/* One read takes up to RX_BATCH datagrams of up to RX_MTU bytes (longer ones are cut
 * and dropped). Every record is RX_FIELDS integers, see rx_receive(). */
enum { RX_BATCH = 32, RX_MTU = 2048, RX_SLOTS = 8192, RX_FIELDS = 12, RX_ADDR = 28 };

/* What a record holds: a datagram for the Python demultiplexer as it came (STUN, DTLS,
 * anything from an address with no entry, SRTP that did not authenticate); SRTP that
 * its connection's entry decrypted: RTP (its header read), RTCP, or RTP whose header
 * does not parse; or a datagram longer than RX_MTU, cut short (dropped). */
enum { RX_RAW = 0, RX_RTP = 1, RX_RTCP = 2, RX_BAD_RTP = 3, RX_CUT = 4 };

/* RTP header faults, as rtp_parse() returns them (0: none). */
enum { RTP_SHORT = 1, RTP_VERSION = 2, RTP_EXTENSION_HEADER = 3, RTP_EXTENSION_BLOCK = 4,
       RTP_PADDING = 5, RTP_HEADER_LONGER = 6 };

/* rtp_parse() output, in this order */
enum { RTP_PAYLOAD_TYPE = 0, RTP_MARKER = 1, RTP_SEQ = 2, RTP_TIMESTAMP = 3, RTP_SSRC = 4,
       RTP_PAYLOAD_START = 5, RTP_PAYLOAD_END = 6, RTP_AUDIO_LEVEL = 7, RTP_MID_START = 8,
       RTP_MID_END = 9, RTP_PARSED = 10 };

/* A connection whose SRTP arrives on a shared socket: its remote address (the ICE pair
 * it nominated) and the libsrtp session that decrypts what comes from there. */
struct rx_entry {
    void *session;         /* srtp_t; the owner keeps it alive while the entry is in a table */
    void *unprotect;       /* libsrtp's srtp_unprotect */
    void *unprotect_rtcp;  /* libsrtp's srtp_unprotect_rtcp */
    int64_t owner;         /* the Python side's number for the connection */
    int audio_level_id;    /* 0: no audio-level extension */
    uint64_t media;        /* datagrams that authenticated */
    uint32_t addrlen;
    uint8_t addr[28];
};

/* The entries of one socket, by source address (open addressing). */
struct rx_table {
    struct rx_entry *slots[8192];
    int count;
};

/* One read's datagrams, as received and as decrypted, and its records. */
struct rx_batch {
    int64_t records[32][12];
    uint8_t addrs[32][28];        /* each datagram's source, a struct sockaddr_in(6) */
    uint32_t data[32][512];       /* as received (32-bit words: libsrtp's alignment) */
    uint32_t clear[32][512];      /* decrypted */
};

int rx_set_address(struct rx_entry *entry, const char *host, int port);
/* 0; -1 if the table is full. An entry already there for the address is replaced. */
int rx_add(struct rx_table *table, struct rx_entry *entry);
void rx_remove(struct rx_table *table, struct rx_entry *entry);
/* The entry for a source address (a struct sockaddr as the kernel reports it), or NULL. */
struct rx_entry *rx_find(const struct rx_table *table, const uint8_t *addr, uint32_t addrlen);

/* Read what is waiting on `fd` (non-blocking), up to RX_BATCH datagrams, and fill one
 * record per datagram: [kind, owner, offset, size, then for RX_RTP the header as
 * rtp_parse() reads it: payload type, marker, seq, timestamp, ssrc, payload start and
 * end (from offset), audio level or -1]. `offset` is the datagram's byte offset in
 * `clear` (RX_RTP, RX_RTCP) or `data` (RX_RAW, RX_CUT). Returns the count, or -errno
 * if nothing was read. */
int rx_receive(int fd, struct rx_table *table, struct rx_batch *batch);

/* Read an RTP header (RFC 3550; one-byte extensions of RFC 8285 for the audio level
 * and the mid). Fills RTP_PARSED integers; returns 0 or an RTP_* fault. */
int rtp_parse(const uint8_t *packet, int size, int audio_level_id, int mid_id, int64_t *out);
