"""A request template as smuggler's configs build it: a head with placeholders and a body."""

import random
import string

RN = "\r\n"

# The body of a chunked message's terminating chunk.
EndChunk = "0" + RN + RN


def Chunked(data):
    """`data` as one chunk."""
    return "%x" % len(data) + RN + data + RN


class Payload:
    """`header` holds request-line and header lines, each ending in CRLF, with __METHOD__,
    __ENDPOINT__, __HOST__, __RANDOM__ and __REPLACE_CL__ placeholders; `cl` overrides the
    Content-Length written for __REPLACE_CL__ (else the body's length)."""

    def __init__(self):
        self.header = ""
        self.body = ""
        self.host = ""
        self.method = "POST"
        self.endpoint = "/"
        self.cl = -1

    def __str__(self):
        cl = self.cl if self.cl >= 0 else len(self.body)
        rand = "".join(random.choice(string.ascii_lowercase) for _ in range(8))
        head = (
            self.header.replace("__METHOD__", self.method)
            .replace("__ENDPOINT__", self.endpoint)
            .replace("__HOST__", self.host)
            .replace("__RANDOM__", rand)
            .replace("__REPLACE_CL__", str(cl))
        )
        return head + RN + self.body
