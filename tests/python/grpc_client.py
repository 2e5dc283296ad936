"""A real gRPC client (grpcio) through hostalb, for tests/e2e/h2.rs: calls the
`hostalb.test.Echo` service of tests/python/grpc_server.py over TLS (the listener's
self-signed certificate as the root, its name `localhost`) and prints one JSON object with
what came back: unary, server-streaming and bidirectional calls with their metadata and
trailers, and the status of a call that fails on purpose.

    python grpc_client.py HOST:PORT CERT.pem
"""

import json
import sys

import grpc

SERVICE = "/hostalb.test.Echo/"
TIMEOUT = 20


def main():
    address, cert_file = sys.argv[1], sys.argv[2]
    with open(cert_file, "rb") as f:
        root = f.read()
    creds = grpc.ssl_channel_credentials(root_certificates=root)
    options = (("grpc.ssl_target_name_override", "localhost"),)
    out = {}
    with grpc.secure_channel(address, creds, options=options) as channel:
        unary = channel.unary_unary(SERVICE + "Unary")
        reply, call = unary.with_call(b"ping", metadata=(("x-echo", "e1"),), timeout=TIMEOUT)
        out["unary"] = {
            "reply": reply.decode(),
            "initial": dict(call.initial_metadata()),
            "trailing": dict(call.trailing_metadata()),
            "code": call.code().name,
        }
        stream = channel.unary_stream(SERVICE + "ServerStream")
        out["server_stream"] = [
            m.decode() for m in stream(b"s", metadata=(("x-count", "4"),), timeout=TIMEOUT)
        ]
        bidi = channel.stream_stream(SERVICE + "Bidi")
        responses = bidi(iter([b"a", b"b", b"c"]), metadata=(("x-echo", "e2"),), timeout=TIMEOUT)
        out["bidi"] = [m.decode() for m in responses]
        out["bidi_trailing"] = dict(responses.trailing_metadata())
        fail = channel.unary_unary(SERVICE + "Fail")
        try:
            fail(b"x", metadata=(("x-code", "PERMISSION_DENIED"),), timeout=TIMEOUT)
            out["fail"] = "OK"
        except grpc.RpcError as e:
            out["fail"] = e.code().name
            out["fail_message"] = e.details()
        missing = channel.unary_unary("/nobody.Svc/Call")
        try:
            missing(b"x", timeout=TIMEOUT)
            out["unrouted"] = "OK"
        except grpc.RpcError as e:
            out["unrouted"] = e.code().name
    print(json.dumps(out))


if __name__ == "__main__":
    main()
