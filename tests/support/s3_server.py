"""A real S3-compatible server on loopback (moto's server mode), for storage tests."""

from __future__ import annotations

import subprocess
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx

from tests.support.server import free_port, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "us-east-1"


class S3Server:
    """``moto.server`` in a child process; any access key is accepted."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"moto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> S3Server:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=log,
        )
        wait_until(self._ready, timeout, 0.05, f"moto on {self.url} (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"moto exited early:\n{self.log_path.read_text()}")
        try:
            httpx.get(self.url + "/moto-api/", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    def stop(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    @cached_property
    def client(self) -> S3Client:
        """A plain boto3 client, for what operators do by hand: buckets, listings."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str) -> None:
        for key in self.keys(name):
            self.client.delete_object(Bucket=name, Key=key)
        self.client.delete_bucket(Bucket=name)

    def keys(self, bucket: str) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def env(self, bucket_url: str) -> dict[str, str]:
        """The settings an imagegate process needs to store into ``bucket_url``."""
        return {
            "IMAGEGATE_STORAGE_URL": bucket_url,
            "IMAGEGATE_S3_ENDPOINT_URL": self.url,
            "IMAGEGATE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "IMAGEGATE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }
