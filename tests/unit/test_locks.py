"""The locks that `make run` and `make test` install from (requirements/*.txt) must
agree with pyproject.toml: a dependency added or narrowed there without `make lock`
would otherwise install on a developer's machine and be missing on a fresh one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# A pin's line: ``name==version`` then an optional ``; marker`` and the hash lines.
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*;\s*(.+?))?\s*\\?$", re.M)
# What the locks are installed on in CI (the test lock is for this platform only).
CI = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
}


def pins(lock: str) -> dict[str, Version]:
    """The version each package has in ``lock`` on CI's platform."""
    found: dict[str, Version] = {}
    for name, version, marker in PIN.findall((ROOT / "requirements" / lock).read_text()):
        if marker and not Requirement(f"x; {marker}").marker.evaluate(CI):  # type: ignore[union-attr]
            continue
        found[canonicalize_name(name)] = Version(version)
    return found


def wanted(*extras: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    declared = [*project["dependencies"]]
    for extra in extras:
        declared += project["optional-dependencies"][extra]
    return [Requirement(r) for r in declared]


@pytest.mark.parametrize(("lock", "extras"), [("run.txt", ()), ("test.txt", ("dev", "diffusers"))])
def test_every_declared_dependency_is_locked_within_its_range(
    lock: str, extras: tuple[str, ...]
) -> None:
    locked = pins(lock)
    outside = {
        str(req): str(locked.get(canonicalize_name(req.name), "missing"))
        for req in wanted(*extras)
        if not req.specifier.contains(locked.get(canonicalize_name(req.name), Version("0")), True)
    }
    assert not outside, f"run `make lock`: {outside}"


def test_the_test_lock_installs_the_run_locks_versions() -> None:
    run, test = pins("run.txt"), pins("test.txt")
    differ = {name: (str(v), str(test.get(name))) for name, v in run.items() if test.get(name) != v}
    assert not differ, f"run `make lock`: {differ}"


def test_torch_is_the_cpu_build_on_disk_not_a_cuda_download() -> None:
    """A plain ``torch==2.13.0`` pin with PyPI's hashes would pull several GB of CUDA
    libraries; the lock names the CPU build and its file's hash only."""
    text = (ROOT / "requirements" / "test.txt").read_text()
    assert pins("test.txt")[canonicalize_name("torch")] == Version("2.13.0+cpu")
    assert "nvidia" not in text
