from __future__ import annotations

import socket
import uuid
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from hydrophone_worker.sim.s3server import MotoServer, ensure_public_bucket

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def test_public_bucket_allows_anonymous_get_and_list(moto_endpoint: str, s3: Any, bucket: str) -> None:
    ensure_public_bucket(s3, bucket)  # idempotent: a second call keeps the bucket and its objects
    for key in ("rpi_a/hls/100/live.m3u8", "rpi_a/hls/200/live.m3u8", "rpi_a/latest.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    with httpx.Client(base_url=moto_endpoint, timeout=10) as anonymous:
        got = anonymous.get(f"/{bucket}/rpi_a/latest.txt")
        assert (got.status_code, got.content) == (200, b"x")
        listing = anonymous.get(
            f"/{bucket}", params={"list-type": "2", "prefix": "rpi_a/hls/", "delimiter": "/"}
        )
    assert listing.status_code == 200
    prefixes = [p.text for p in ElementTree.fromstring(listing.content).iter(f"{S3_NS}Prefix")]
    assert "rpi_a/hls/100/" in prefixes and "rpi_a/hls/200/" in prefixes


def test_objects_are_private_without_the_public_policy(moto_endpoint: str, s3: Any) -> None:
    private = f"private-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=private, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_object(Bucket=private, Key="k", Body=b"x")
    assert httpx.get(f"{moto_endpoint}/{private}/k", timeout=10).status_code == 403


def test_server_binds_loopback_and_stops_on_exit() -> None:
    with MotoServer() as endpoint:
        assert endpoint.startswith("http://127.0.0.1:")
        assert httpx.get(f"{endpoint}/", timeout=10).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{endpoint}/", timeout=2)


def test_busy_or_invalid_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=f"port {port} on 127.0.0.1 is not free"), MotoServer(port):
            pass
    with pytest.raises(ValueError, match="between 1 and 65535"), MotoServer(70_000):
        pass
