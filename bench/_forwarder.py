"""A plain TCP forwarder, the reference relay of bench_relay.py: one thread per direction, one
user-space copy of each byte (recv_into a buffer, sendall from it), no protocol at all.

    python bench/_forwarder.py TARGET_PORT     # prints the port it listens on, then forwards

Loopback only: it listens on 127.0.0.1 (a free port) and connects to 127.0.0.1:TARGET_PORT.
"""
from __future__ import annotations

import socket
import sys
import threading

BUFFER = 1024 * 1024


def pump(src: socket.socket, dst: socket.socket) -> None:
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(view[:n])
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client: socket.socket, target: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main() -> None:
    target = int(sys.argv[1])
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, target), daemon=True).start()


if __name__ == "__main__":
    main()
