"""A gRPC target for hostalb's end-to-end tests (grpcio, generic handlers, no protoc).

Messages are raw bytes (no protobuf): what goes in comes back. Service `hostalb.test.Echo`:

- `Unary`: answers the request bytes. Initial metadata `x-target: <name>`; trailing
  metadata `x-echo-trailer: <the request's x-echo metadata, or "none">`.
- `ServerStream`: answers `<request>#0`, `<request>#1`, ... (`x-count` metadata, default 3).
- `Bidi`: answers each request message as it arrives, then the same trailing metadata.
- `Fail`: aborts with the status code named by the `x-code` metadata (default NOT_FOUND)
  and the message "failed on purpose".

Any other method (the ALB health check's `/AWS.ALB/healthcheck` among them) is
UNIMPLEMENTED (12), grpcio's own answer, which is ALB's default GrpcCode matcher.

    python grpc_server.py [--port 0] [--name NAME] [--tls CERT.pem KEY.pem]

Prints `LISTENING <port>` on stdout once it serves, then runs until killed.
"""

import argparse
import sys
from concurrent import futures

import grpc

SERVICE = "hostalb.test.Echo"
# Worker threads: one per concurrent call; the tests run a few dozen at most.
WORKERS = 64


def metadata(context, key, default):
    for k, v in context.invocation_metadata():
        if k == key:
            return v
    return default


def serve(port, name, tls):
    def unary(request, context):
        context.send_initial_metadata((("x-target", name),))
        context.set_trailing_metadata(
            (("x-echo-trailer", metadata(context, "x-echo", "none")),)
        )
        return request

    def server_stream(request, context):
        count = int(metadata(context, "x-count", "3"))
        for i in range(count):
            yield request + b"#" + str(i).encode()

    def bidi(requests, context):
        context.set_trailing_metadata(
            (("x-echo-trailer", metadata(context, "x-echo", "none")),)
        )
        for message in requests:
            yield message

    def fail(request, context):
        code = getattr(grpc.StatusCode, metadata(context, "x-code", "NOT_FOUND"))
        context.abort(code, "failed on purpose")

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
    server.add_generic_rpc_handlers((handler,))
    address = f"127.0.0.1:{port}"
    if tls:
        with open(tls[0], "rb") as f:
            cert = f.read()
        with open(tls[1], "rb") as f:
            key = f.read()
        bound = server.add_secure_port(
            address, grpc.ssl_server_credentials(((key, cert),))
        )
    else:
        bound = server.add_insecure_port(address)
    server.start()
    print(f"LISTENING {bound}", flush=True)
    server.wait_for_termination()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="grpc-target")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    serve(args.port, args.name, args.tls)


if __name__ == "__main__":
    sys.exit(main())
