/* The request/reply exchange shared by the safewsk samples. */
#ifndef SAMPLE_EXCHANGE_H
#define SAMPLE_EXCHANGE_H

/* Fills Local (0.0.0.0:0) and Remote (Address:Port, IPv4, host byte order).
 * STATUS_INVALID_PARAMETER if Port is 0 or above 65535. */
NTSTATUS SampleBuildAddresses(ULONG Address, ULONG Port, SOCKADDR_IN *Local, SOCKADDR_IN *Remote);

/* On a connected Socket (a handle from one of the connects): sends
 * "PING safewsk\r\n", prints the reply with DbgPrint, disconnects and
 * closes the socket (always: the handle is consumed). PASSIVE_LEVEL. */
NTSTATUS SampleTalk(SAFEWSK_SOCKET *Socket);

/* Connects Client to Address:Port (IPv4, host byte order), sends
 * "PING safewsk\r\n", prints the reply with DbgPrint, disconnects and closes
 * the socket. Returns the first failure, or STATUS_SUCCESS. PASSIVE_LEVEL. */
NTSTATUS SampleExchange(SAFEWSK_CLIENT *Client, ULONG Address, ULONG Port);

/* The same exchange with "localhost" and Port given by name:
 * SafeWskConnectByName resolves them (WskGetAddressInfo), tries the
 * addresses in order, and reports the one reached, which is printed.
 * PASSIVE_LEVEL. */
NTSTATUS SampleExchangeByName(SAFEWSK_CLIENT *Client, ULONG Port);

/* A small echo server: resolves "localhost" with SafeWskResolveName (bind
 * by name), listens there on Port (SafeWskListen), accepts one connection
 * within 30 s (SafeWskAccept), echoes every byte until the client shuts
 * its side down, then disconnects and closes. PASSIVE_LEVEL. */
NTSTATUS SampleEchoServer(SAFEWSK_CLIENT *Client, ULONG Port);

/* A UDP exchange: a datagram socket on 0.0.0.0:0 sends "DGRAM safewsk" to
 * Address:Port (IPv4, host byte order), receives the reply and prints it
 * with its sender, then closes. PASSIVE_LEVEL. */
NTSTATUS SampleUdpExchange(SAFEWSK_CLIENT *Client, ULONG Address, ULONG Port);

#endif
