"""S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, …) through boto3.

boto3 is synchronous, so every call runs in a worker thread; one client is shared by
all of them, which boto3 allows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from imagegate.storage.base import ObjectNotFound

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

# A readiness probe must answer quickly even when S3 does not; load balancers probe
# often, so one answer serves for a few seconds.
CHECK_TIMEOUT_S = 3.0
CHECK_CACHE_S = 5.0


def make_client(
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    addressing_style: Literal["auto", "path", "virtual"] = "auto",
) -> S3Client:
    """An S3 client; without keys, boto3's usual chain (``AWS_*`` env, instance role)."""
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "max_attempts": 3},
        # Several jobs store images at once; boto3's default pool of 10 would queue them.
        max_pool_connections=50,
        # R2 and other non-AWS stores accept only SigV4, and presigned URLs need it too.
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},
        # boto3 >= 1.36 adds CRC checksums to every upload by default, which some
        # S3-compatible servers reject; send them only where the API demands one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # A session of our own: boto3's module-level default session is not thread-safe.
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=region,
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)


class S3Storage:
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        url_ttl_s: int = 3600,
        public_base_url: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._url_ttl_s = url_ttl_s
        self._public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self._monotonic = monotonic
        self._checked: tuple[float, str | None] | None = None

    def object_key(self, key: str) -> str:
        """Where ``key`` lives in the bucket: under the configured prefix."""
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.object_key(key),
            Body=data,
            ContentType=content_type,
        )

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    def _read(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise ObjectNotFound(key) from None
            raise
        with response["Body"] as body:
            return body.read()

    async def delete(self, key: str) -> None:
        # S3 answers 204 for a key that is not there, so absent keys need no special case.
        await asyncio.to_thread(
            self.client.delete_object, Bucket=self.bucket, Key=self.object_key(key)
        )

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_prefix, prefix)

    def _delete_prefix(self, prefix: str) -> int:
        # Listed and deleted a page (at most 1,000 keys, one DeleteObjects call) at a
        # time; a job has a handful of objects, so this is one round trip or two.
        removed = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.object_key(prefix)):
            found: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in page.get("Contents", []) if "Key" in item
            ]
            if found:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": found, "Quiet": True}
                )
                removed += len(found)
        return removed

    def url(self, key: str) -> str:
        if self._public_base_url is not None:
            return f"{self._public_base_url}/{quote(self.object_key(key))}"
        # Presigning is local arithmetic with the credentials: no request is made.
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=self._url_ttl_s,
        )

    async def check(self) -> str | None:
        now = self._monotonic()
        if self._checked is not None and now < self._checked[0]:
            return self._checked[1]
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the probe ends (a stopping server).
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                reason = await asyncio.to_thread(self._probe_bucket)
        except TimeoutError:
            reason = f"S3 did not answer within {CHECK_TIMEOUT_S:g} s"
        self._checked = (now + CHECK_CACHE_S, reason)
        return reason

    def _probe_bucket(self) -> str | None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = _error_code(error)
            if code in {"404", "NoSuchBucket"}:
                return f"bucket {self.bucket!r} does not exist"
            if code in {"403", "AccessDenied"}:
                return f"access to bucket {self.bucket!r} denied (needs s3:ListBucket)"
            return f"bucket {self.bucket!r}: {code or error}"
        except BotoCoreError as error:
            return f"cannot reach S3: {error}"
        return None

    def close(self) -> None:
        self.client.close()


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
