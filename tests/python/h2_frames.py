"""Raw HTTP/2 frames against an HTTPS listener, for the abuse tests in tests/e2e/h2.rs.

Each scenario sends what a well-behaved client never sends, then reads what comes back
until the connection closes or the time is up, and prints one JSON object: the GOAWAY
(error code, last stream id), the RST_STREAM codes and response statuses per stream, how
many frames were sent before the server closed, and how long it took. Every loop is
bounded in count and time.

Usage: h2_frames.py HOST PORT SCENARIO [ARGS...]
"""

import json
import socket
import ssl
import sys
import time

from hpack import Encoder, Decoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL = 0x8
READ_PATIENCE = 10.0


class Conn:
    def __init__(self, host, port, settings=None):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((host, port), timeout=READ_PATIENCE)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        if self.sock.selected_alpn_protocol() != "h2":
            raise SystemExit("server did not choose h2")
        self.host = host
        self.port = port
        self.enc = Encoder()
        self.dec = Decoder()
        self.buf = b""
        self.sent_frames = 0
        self.closed = False
        self.send_failed = False
        self.goaway = None
        self.resets = {}
        self.statuses = {}
        self.ended = set()
        self.send(PREFACE)
        self.frame(SettingsFrame(0, settings=settings or {}))

    def send(self, data):
        """False once the server stopped taking bytes (what it sent is still read)."""
        if self.send_failed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError):
            self.send_failed = True
            return False

    def frame(self, f):
        if self.send(f.serialize()):
            self.sent_frames += 1
            return True
        return False

    def block(self, path, method="GET", extra=()):
        headers = [
            (":method", method),
            (":scheme", "https"),
            (":authority", "localhost:%d" % self.port),
            (":path", path),
        ] + list(extra)
        return self.enc.encode(headers)

    def request(self, sid, path, end_stream=True, method="GET"):
        f = HeadersFrame(sid, self.block(path, method))
        f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        return self.frame(f)

    def read_frame(self, deadline):
        """The next frame, or None when the connection closed or the deadline passed."""
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    head, self.buf = self.buf[:9], self.buf[9:]
                    f, length = Frame.parse_frame_header(head)
                    body, self.buf = self.buf[:length], self.buf[length:]
                    f.parse_body(memoryview(body))
                    self.note(f)
                    return f
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return None
            self.buf += data

    def note(self, f):
        if isinstance(f, GoAwayFrame):
            self.goaway = {"code": f.error_code, "last_stream_id": f.last_stream_id}
        elif isinstance(f, RstStreamFrame):
            self.resets[f.stream_id] = f.error_code
            self.ended.add(f.stream_id)
        elif isinstance(f, HeadersFrame):
            try:
                fields = dict(self.dec.decode(f.data))
            except Exception:  # a header block split over CONTINUATIONs: not used here
                fields = {}
            status = fields.get(":status") or fields.get(b":status")
            if status is not None and f.stream_id not in self.statuses:
                self.statuses[f.stream_id] = int(status)
            if "END_STREAM" in f.flags:
                self.ended.add(f.stream_id)
        elif isinstance(f, DataFrame):
            if f.data:
                self.frame(WindowUpdateFrame(0, window_increment=len(f.data)))
                self.frame(WindowUpdateFrame(f.stream_id, window_increment=len(f.data)))
            if "END_STREAM" in f.flags:
                self.ended.add(f.stream_id)
        elif isinstance(f, PingFrame) and "ACK" not in f.flags:
            pong = PingFrame(0, opaque_data=f.opaque_data)
            pong.flags.add("ACK")
            self.frame(pong)
        elif isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            self.frame(ack)

    def drain(self, seconds, until=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if until is not None and until():
                return
            if self.read_frame(deadline) is None:
                return

    def report(self, started, **extra):
        out = {
            "goaway": self.goaway,
            "closed": self.closed,
            "sent_frames": self.sent_frames,
            "elapsed": round(time.monotonic() - started, 3),
            "statuses": sorted(self.statuses.values()),
            "resets": sorted(self.resets.values()),
        }
        out.update(extra)
        print(json.dumps(out))


def streams(c, n, path):
    """n requests at once, ignoring the server's SETTINGS_MAX_CONCURRENT_STREAMS."""
    started = time.monotonic()
    ids = [1 + 2 * i for i in range(n)]
    for sid in ids:
        c.request(sid, path)
    c.drain(READ_PATIENCE, until=lambda: all(s in c.ended for s in ids))
    c.report(started)


def rapid_reset(c, n, path):
    """n x (HEADERS, RST_STREAM CANCEL), sent as fast as the socket takes them."""
    started = time.monotonic()
    for i in range(n):
        sid = 1 + 2 * i
        if not c.request(sid, path):
            break
        if not c.frame(RstStreamFrame(sid, error_code=CANCEL)):
            break
        if i % 100 == 99:
            c.sock.setblocking(False)
            try:
                data = c.sock.recv(65536)
                if data:
                    c.buf += data
                else:
                    c.closed = True
            except (BlockingIOError, ssl.SSLWantReadError):
                pass
            except (OSError, ssl.SSLError):
                c.closed = True
            c.sock.setblocking(True)
            c.sock.settimeout(READ_PATIENCE)
            while c.read_frame(time.monotonic()) is not None:
                pass
            if c.closed or c.goaway is not None:
                break
    c.drain(5.0)
    c.report(started)


def continuation(c, n):
    """HEADERS without END_HEADERS, then up to n empty CONTINUATION frames."""
    started = time.monotonic()
    f = HeadersFrame(1, c.block("/never"))
    f.flags.add("END_STREAM")
    c.frame(f)
    for _ in range(n):
        if not c.frame(ContinuationFrame(1, data=b"")):
            break
    c.drain(5.0)
    c.report(started)


def header_bomb(c, count, size):
    """One request with `count` header fields of `size` bytes each (never indexed)."""
    started = time.monotonic()
    extra = [("x-bomb-%d" % i, "b" * size) for i in range(count)]
    block = c.enc.encode([
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost:%d" % c.port),
        (":path", "/bomb"),
    ] + extra)
    chunk = 16384
    first = HeadersFrame(1, block[:chunk])
    first.flags.add("END_STREAM")
    rest = block[chunk:]
    if not rest:
        first.flags.add("END_HEADERS")
    c.frame(first)
    while rest:
        f = ContinuationFrame(1, data=rest[:chunk])
        rest = rest[chunk:]
        if not rest:
            f.flags.add("END_HEADERS")
        c.frame(f)
    c.drain(READ_PATIENCE, until=lambda: 1 in c.ended)
    # The same connection still serves a normal request.
    c.request(3, "/after-bomb")
    c.drain(READ_PATIENCE, until=lambda: 3 in c.ended)
    c.report(started, bomb=c.statuses.get(1), bomb_reset=c.resets.get(1), after=c.statuses.get(3))


def flood(c, kind, n):
    """n PING, SETTINGS, or empty DATA frames (on an open POST stream), unread."""
    started = time.monotonic()
    if kind == "empty-data":
        c.request(1, "/upload", end_stream=False, method="POST")
    for i in range(n):
        if kind == "ping":
            f = PingFrame(0, opaque_data=i.to_bytes(8, "big"))
        elif kind == "settings":
            f = SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100})
        else:
            f = DataFrame(1, data=b"")
        if not c.frame(f):
            break
    c.drain(5.0)
    c.report(started)


def window_updates(c, n, path):
    """n WINDOW_UPDATE frames of increment 1 on the connection, then a request on the
    same connection: each costs hostalb O(1) and no answer, so the connection serves on."""
    started = time.monotonic()
    for _ in range(n):
        if not c.frame(WindowUpdateFrame(0, window_increment=1)):
            break
    c.request(1, path)
    c.drain(5.0, until=lambda: 1 in c.ended)
    c.report(started)


def window_overflow(c):
    """Connection window increments past 2^31-1: FLOW_CONTROL_ERROR (RFC 9113 6.9.1)."""
    started = time.monotonic()
    for _ in range(2):
        c.frame(WindowUpdateFrame(0, window_increment=2**31 - 1))
    c.drain(5.0, until=lambda: c.goaway is not None)
    c.report(started)


def zero_window(c, path):
    """A stream whose window is never opened: a reader that reads nothing."""
    started = time.monotonic()
    c.request(1, path)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and 1 not in c.ended and not c.closed:
        f = c.read_frame(deadline)
        if f is None:
            break
    c.report(started, stream_reset=c.resets.get(1))


def ping_idle(c, seconds, every):
    """No stream, a PING every `every` seconds for up to `seconds`: PINGs are not
    activity, so the idle timeout still ends the connection."""
    started = time.monotonic()
    pings = 0
    while time.monotonic() - started < seconds and c.goaway is None and not c.closed:
        ping = PingFrame(0, opaque_data=pings.to_bytes(8, "big"))
        c.frame(ping)
        pings += 1
        c.drain(every, until=lambda: c.goaway is not None)
    c.drain(2.0)
    c.report(started, pings=pings)


def main():
    host, port, scenario = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    args = sys.argv[4:]
    if scenario == "zero-window":
        c = Conn(host, port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        zero_window(c, args[0])
        return
    c = Conn(host, port)
    if scenario == "streams":
        streams(c, int(args[0]), args[1])
    elif scenario == "rapid-reset":
        rapid_reset(c, int(args[0]), args[1])
    elif scenario == "continuation":
        continuation(c, int(args[0]))
    elif scenario == "header-bomb":
        header_bomb(c, int(args[0]), int(args[1]))
    elif scenario == "ping-idle":
        ping_idle(c, float(args[0]), float(args[1]))
    elif scenario == "window-updates":
        window_updates(c, int(args[0]), args[1])
    elif scenario == "window-overflow":
        window_overflow(c)
    elif scenario in ("ping", "settings", "empty-data"):
        flood(c, scenario, int(args[0]))
    else:
        raise SystemExit("unknown scenario " + scenario)


if __name__ == "__main__":
    main()
