"""An S3-protocol server on loopback for the tests: moto's server (``moto[server]`` from
PyPI), in a thread of the test process, with throwaway credentials."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from loopback import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def start() -> Iterator[str]:
    """Start the server; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.session.Session(aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).client(
        "s3", endpoint_url=endpoint, region_name="us-east-1")
