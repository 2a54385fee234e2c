"""``ssh`` ProxyCommand: connect stdin/stdout to HOST:PORT. ``ray up`` has no SSH port setting, and
the test's sshd listens on a free port, not 22: ``auth.ssh_proxy_command: python3 port_proxy.py %h PORT``."""

import os
import socket
import sys
import threading


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.create_connection((host, port))

    def upstream() -> None:
        while chunk := os.read(0, 65536):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    while chunk := sock.recv(65536):
        os.write(1, chunk)


if __name__ == "__main__":
    main()
