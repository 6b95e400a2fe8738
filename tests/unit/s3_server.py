"""An S3-protocol server on loopback for the tests: moto's server (``moto[server]`` from
PyPI), in a thread of the test process, with throwaway credentials."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def start() -> Iterator[str]:
    """Start the server; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
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
