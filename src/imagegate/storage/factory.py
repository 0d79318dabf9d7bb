"""Which storage a process uses, chosen by ``IMAGEGATE_STORAGE_URL``."""

from __future__ import annotations

from imagegate.settings import Settings
from imagegate.storage.base import Storage
from imagegate.storage.local import LocalStorage
from imagegate.storage.s3 import S3Storage, make_client
from imagegate.storage.signing import UrlSigner


def build_storage(settings: Settings, signer: UrlSigner) -> tuple[Storage, LocalStorage | None]:
    """The storage images go to, and the local one the ``/files`` route serves, if any."""
    location = settings.s3_location
    if location is None:
        local = LocalStorage(settings.files_dir, settings.resolved_public_url, signer)
        return local, local
    bucket, prefix = location
    secret = settings.s3_secret_access_key
    client = make_client(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        addressing_style=settings.s3_addressing_style,
    )
    storage = S3Storage(
        client,
        bucket,
        prefix,
        url_ttl_s=settings.signed_url_ttl_s,
        public_base_url=settings.storage_public_base_url,
    )
    return storage, None
