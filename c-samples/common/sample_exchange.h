/* The request/reply exchange shared by the safewsk samples. */
#ifndef SAMPLE_EXCHANGE_H
#define SAMPLE_EXCHANGE_H

/* Connects Client to Address:Port (IPv4, host byte order), sends
 * "PING safewsk\r\n", prints the reply with DbgPrint, disconnects and closes
 * the socket. Returns the first failure, or STATUS_SUCCESS. PASSIVE_LEVEL. */
NTSTATUS SampleExchange(SAFEWSK_CLIENT *Client, ULONG Address, ULONG Port);

#endif
