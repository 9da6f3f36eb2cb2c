"""A client socket, plain or TLS (no verification: the target is a test server), with the
non-blocking receive smuggler's timing checks use."""

import socket
import ssl
import time


class EasySSL:
    def __init__(self, ssl_flag):
        self.ssl_flag = ssl_flag
        self.sock = None

    def connect(self, host, port, timeout):
        raw = socket.create_connection((host, port), timeout=timeout)
        if self.ssl_flag:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            raw = ctx.wrap_socket(raw, server_hostname=host)
        self.sock = raw

    def send(self, data):
        self.sock.sendall(data)

    def recv_nb(self, timeout):
        """What arrives within `timeout` seconds, returned as soon as some data came and the peer
        paused; None when nothing arrived (closed or timed out)."""
        self.sock.settimeout(0.5)
        data = b""
        end = time.time() + timeout
        while time.time() < end:
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                if data:
                    break
                continue
            except (OSError, ssl.SSLError):
                break
            if not chunk:
                break
            data += chunk
        return data if data else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
