"""An S3-compatible server for the simulator and tests: moto, in-process, on 127.0.0.1 only."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOOPBACK = "127.0.0.1"


def _check_port_free(port: int) -> None:
    # ThreadedMotoServer.start() waits forever if its thread fails to bind, so find out first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError as exc:
            raise ValueError(
                f"port {port} on {LOOPBACK} is not free ({exc.strerror}); choose another port or omit it "
                "to use a free one"
            ) from exc


@contextmanager
def MotoServer(port: int | None = None) -> Iterator[str]:
    """Run moto's S3 on 127.0.0.1 (a free port unless `port` is given); yields the endpoint URL.

    All moto servers in one process share moto's in-memory state, so give each user its own bucket.
    """
    from moto.server import ThreadedMotoServer  # heavy (~1 s): only when a server is really wanted

    if port is not None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        _check_port_free(port)
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port or 0, verbose=False)
    # werkzeug logs every request at INFO; a simulator run would drown its own output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()


def public_read_policy(bucket: str) -> dict[str, Any]:
    """Anonymous GetObject and ListBucket, as on the real Orcasound bucket."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
            {
                "Sid": "PublicList",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
        ],
    }


def ensure_public_bucket(s3_client: Any, bucket: str) -> None:
    """Create `bucket` if missing and make it anonymously readable and listable (idempotent)."""
    existing = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        region = s3_client.meta.region_name
        # S3 rejects an explicit us-east-1 constraint and requires one everywhere else.
        location = (
            {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3_client.create_bucket(Bucket=bucket, **location)
    s3_client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read_policy(bucket)))


def s3_client(endpoint_url: str, *, region: str = "us-west-2") -> Any:
    """A boto3 S3 client for an S3-compatible endpoint, path-style (as the Orcasound base URL is).

    moto accepts any credentials; explicit dummy ones keep boto3 from searching the host for real ones.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="simulator",
        aws_secret_access_key="simulator",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
    )
