"""WebSocket peers for tests/e2e/websocket.rs, on python `websockets` (a real client and
server, not hostalb's code). Every event is one JSON line on stdout, flushed at once.

    ws_peer.py serve [--cert FILE --key FILE]
        A target: listens on 127.0.0.1 (a free port), prints {"listening": PORT}, then
        {"server_closed": PATH, "code": CODE} whenever a connection ends. Paths:
          /ws, /echo...  echoes every message; the text "close-me" makes it close with 4000;
          /stream        sends "tick N" every 20 ms until the connection ends.
        Upgrade requests are answered whatever the path (routing is hostalb's).

    ws_peer.py client SCENARIO URL [--tls]
        echo     text echo, a 4 MiB binary message echoed, a ping answered, then a close
                 from the client (1000);
        server-close   asks the server to close (expects 4000);
        hold     prints {"open": true}, then waits for the connection to end (idle
                 timeout, drain): {"closed": CODE, "after": SECONDS};
        stream   reads /stream; after 10 ticks prints {"streaming": true}, then reads until
                 the connection ends: {"closed": CODE, "after": SECONDS since streaming};
        refused  expects the upgrade to be refused: {"refused": STATUS}.
"""

import asyncio
import json
import os
import ssl
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

BIG = 4 * 1024 * 1024


def say(**event):
    print(json.dumps(event), flush=True)


async def serve_main(args):
    ctx = None
    if "--cert" in args:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[args.index("--cert") + 1], args[args.index("--key") + 1])

    async def handler(conn):
        path = conn.request.path
        try:
            if path.startswith("/stream"):
                n = 0
                while True:
                    await conn.send(f"tick {n}")
                    n += 1
                    await asyncio.sleep(0.02)
            else:
                async for msg in conn:
                    if msg == "close-me":
                        await conn.close(4000, "bye")
                        break
                    await conn.send(msg)
        except ConnectionClosed:
            pass
        await conn.wait_closed()
        say(server_closed=path, code=conn.close_code)

    async with serve(
        handler, "127.0.0.1", 0, ssl=ctx, ping_interval=None, max_size=None, compression=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        say(listening=port)
        await asyncio.Future()


def client_ssl(url):
    if not url.startswith("wss:"):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def opened(url):
    return connect(
        url,
        ssl=client_ssl(url),
        ping_interval=None,
        max_size=None,
        compression=None,
        open_timeout=10,
        close_timeout=5,
    )


async def client_main(scenario, url):
    if scenario == "refused":
        try:
            async with opened(url):
                say(refused=None)
        except InvalidStatus as e:
            say(refused=e.response.status_code)
        return
    async with opened(url) as ws:
        if scenario == "echo":
            await ws.send("hello")
            say(text=await ws.recv())
            big = os.urandom(BIG)
            await ws.send(big)
            back = await ws.recv()
            say(binary_len=len(back), binary_same=back == big)
            latency = await asyncio.wait_for(await ws.ping(b"p"), 10)
            say(pong=latency >= 0)
            await ws.close(1000, "done")
            say(closed=ws.close_code, by_client=True)
        elif scenario == "server-close":
            await ws.send("close-me")
            try:
                await ws.recv()
                say(closed=None)
            except ConnectionClosed as e:
                say(closed=e.rcvd.code if e.rcvd else None, reason=e.rcvd.reason if e.rcvd else None)
        elif scenario == "hold":
            await ws.send("hi")
            await ws.recv()
            say(open=True)
            began = time.monotonic()
            try:
                while True:
                    await ws.recv()
            except ConnectionClosed as e:
                say(closed=e.rcvd.code if e.rcvd else 1006, after=time.monotonic() - began)
        elif scenario == "stream":
            for _ in range(10):
                await ws.recv()
            say(streaming=True)
            began = time.monotonic()
            try:
                while True:
                    await ws.recv()
            except ConnectionClosed as e:
                say(closed=e.rcvd.code if e.rcvd else 1006, after=time.monotonic() - began)
        else:
            raise SystemExit(f"unknown scenario {scenario}")


def main():
    args = sys.argv[1:]
    if args and args[0] == "serve":
        asyncio.run(serve_main(args[1:]))
    elif len(args) >= 3 and args[0] == "client":
        asyncio.run(client_main(args[1], args[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
