#!/usr/bin/env python3
"""A moto S3 server that runs one request at a time, for Reef's S3 tests.

moto 5.2.5 answers 412 to both conditional PUTs (If-None-Match: * and
If-Match), but its server does not lock check-then-write, so concurrent
conditional PUTs can all "win". This wrapper serves the same WSGI app that
`moto_server` builds, holding one global lock per request (including while
the response body is drained), so conditional PUTs are atomic as on AWS.

Usage: serial_moto.py --port PORT [--host 127.0.0.1] [--bucket NAME ...]
Creates the buckets, then prints "serial-moto ready http://HOST:PORT" and
serves until SIGTERM/SIGINT. Any credentials are accepted.
"""
import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


class SerializedApp:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            result = self.app(environ, start_response)
            try:
                body = [bytes(chunk) for chunk in result]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return body


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket", action="append", default=[])
    args = parser.parse_args()
    os.environ["MOTO_PORT"] = str(args.port)

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        args.host, args.port, SerializedApp(app), threaded=True,
        request_handler=MotoRequestHandler,
    )
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()

    endpoint = f"http://{args.host}:{server.server_port}"
    if args.bucket:
        import boto3  # moto depends on boto3
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )
        for bucket in args.bucket:
            client.create_bucket(Bucket=bucket)

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(f"serial-moto ready {endpoint}", flush=True)
    stopped.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
