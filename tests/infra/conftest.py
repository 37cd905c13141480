"""Fixtures of the offline infrastructure checks (infra/)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
TF_ROOT = INFRA / "terraform"
K8S_ROOT = INFRA / "k8s"

sys.path.insert(0, str(INFRA / "policy"))
sys.path.insert(0, str(INFRA / "scripts"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tf_root() -> Path:
    return TF_ROOT


@pytest.fixture(scope="session")
def k8s_root() -> Path:
    return K8S_ROOT


@pytest.fixture
def tf_copy(tmp_path: Path) -> Path:
    """A throw-away copy of infra/ to inject violations into: the Terraform, the access declarations it
    reads (policy/access.json) and the Kubernetes manifests. Returns the copy's terraform folder;
    inject into the others with paths like `../policy/access.json`."""
    target = tmp_path / "infra"
    ignore = shutil.ignore_patterns(".terraform", "*.tfstate*", "__pycache__")
    for part in ("terraform", "policy", "k8s"):
        shutil.copytree(INFRA / part, target / part, ignore=ignore)
    return target / "terraform"
