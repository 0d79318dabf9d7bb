"""Choosing the storage backend from ``IMAGEGATE_STORAGE_URL``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from imagegate.settings import Settings
from imagegate.storage.factory import build_storage
from imagegate.storage.local import LocalStorage
from imagegate.storage.s3 import S3Storage
from imagegate.storage.signing import UrlSigner

SIGNER = UrlSigner(b"k", 60)


@pytest.mark.parametrize("url", [None, "", "file://"])
def test_local_disk_is_the_default(url: str | None, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, storage_url=url)
    assert settings.s3_location is None
    storage, local = build_storage(settings, SIGNER)
    assert isinstance(storage, LocalStorage) and storage is local
    assert storage.root == (tmp_path / "files").resolve()


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("s3://images", ("images", "")),
        ("s3://images/", ("images", "")),
        ("s3://images/prod/v1/", ("images", "prod/v1")),
    ],
)
def test_s3_urls_name_a_bucket_and_prefix(url: str, location: tuple[str, str]) -> None:
    settings = Settings(storage_url=url, s3_access_key_id="a", s3_secret_access_key="b")
    assert settings.s3_location == location
    storage, local = build_storage(settings, SIGNER)
    assert isinstance(storage, S3Storage) and local is None
    assert (storage.bucket, storage.prefix) == location
    storage.close()


@pytest.mark.parametrize(
    "url", ["gs://images", "s3://", "s3:///prefix", "/var/images", "file:///srv/img"]
)
def test_other_storage_urls_are_refused_at_start_up(url: str) -> None:
    with pytest.raises(ValidationError, match=r"must be unset, file:// .* or s3://bucket"):
        Settings(storage_url=url)


def test_the_secret_key_stays_out_of_reprs() -> None:
    settings = Settings(storage_url="s3://b", s3_secret_access_key="hunter2")
    assert "hunter2" not in repr(settings)
