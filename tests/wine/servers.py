#!/usr/bin/env python3
"""Loopback servers for .ci/wine (127.0.0.1 and ::1 only, never any other
address).

- "sample" (IPv4): answers the WDM sample's "PING safewsk" with "PONG safewsk",
  then reports whether the driver shut its side down gracefully (EOF).
- "echo" (IPv4) and "echo6" (IPv6, if the machine has ::1): echo every byte
  until the peer shuts down, then close.
- "refused" (IPv4): a port that was bound and closed, on which nothing
  listens.
- "listen1", "listen2": free ports (bound and closed) for the test driver's
  own listening sockets; "listen3", "listen4" the same for the kit's driver,
  which runs the same cases after it.

Writes `name=port` lines to the file given as argv[1] once all are listening,
logs one line per event to stdout, and exits after argv[2] seconds.
"""
import os
import socket
import sys
import threading
import time


def log(msg):
    print(f"server: {msg}", flush=True)


def serve(listener, name, handler):
    while True:
        try:
            conn, peer = listener.accept()
        except OSError:
            return
        threading.Thread(target=handler, args=(conn, name, peer), daemon=True).start()


def sample_handler(conn, name, peer):
    with conn:
        conn.settimeout(20)
        data = b""
        try:
            while b"\n" not in data:
                chunk = conn.recv(256)
                if not chunk:
                    break
                data += chunk
            log(f"{name}: received {data!r}")
            if data.startswith(b"PING safewsk"):
                conn.sendall(b"PONG safewsk\r\n")
            rest = conn.recv(256)
            log(f"{name}: peer {'shut down gracefully (EOF)' if rest == b'' else 'sent more: %r' % rest}")
        except OSError as e:
            log(f"{name}: {e}")


def echo_handler(conn, name, peer):
    total = 0
    with conn:
        conn.settimeout(60)
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    log(f"{name}: EOF after {total} bytes")
                    return
                total += len(chunk)
                conn.sendall(chunk)
        except OSError as e:
            log(f"{name}: {e} after {total} bytes")


def listen(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 0))
    s.listen(64)
    return s


def main():
    out, lifetime = sys.argv[1], float(sys.argv[2])
    ports = {}
    for name, handler in (("sample", sample_handler), ("echo", echo_handler)):
        s = listen(socket.AF_INET, "127.0.0.1")
        ports[name] = s.getsockname()[1]
        threading.Thread(target=serve, args=(s, name, handler), daemon=True).start()
    try:
        s6 = listen(socket.AF_INET6, "::1")
        ports["echo6"] = s6.getsockname()[1]
        threading.Thread(target=serve, args=(s6, "echo6", echo_handler), daemon=True).start()
    except OSError as e:
        log(f"no IPv6 loopback here: {e}")
        ports["echo6"] = 0
    r = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    r.bind(("127.0.0.1", 0))
    ports["refused"] = r.getsockname()[1]
    r.close()
    # Free ports for the test driver's own listening sockets (Wine cannot
    # report a port the stack chose: its listening WskGetLocalAddress is a
    # stub).
    # All four stay bound until each has its port, so the four differ.
    held = []
    for name in ("listen1", "listen2", "listen3", "listen4"):
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.bind(("127.0.0.1", 0))
        ports[name] = f.getsockname()[1]
        held.append(f)
    for f in held:
        f.close()
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        for k, v in ports.items():
            f.write(f"{k}={v}\n")
    os.rename(tmp, out)
    log(f"listening: {ports}")
    time.sleep(lifetime)


if __name__ == "__main__":
    main()
