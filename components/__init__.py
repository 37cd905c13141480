"""KFP components, one per pipeline step: thin adapters that call shoprank.orchestration.steps.

Lightweight Python components: KFP ships each function's source to the pod (or, locally, to a
kfp.local subprocess), so every import happens inside the function. On a cluster they run in the
shoprank image, which already holds the project and kfp; nothing is pip-installed at run time.

The image is pinned by digest, the one `infra/k8s/platform/versions.env` names for every shoprank
image (a tag can be moved; a digest cannot). `SHOPRANK_IMAGE` overrides it whole.
"""

import os
from pathlib import Path

VERSIONS = Path(__file__).resolve().parent.parent / "infra" / "k8s" / "platform" / "versions.env"


def pinned_image(versions: Path = VERSIONS) -> str:
    """`<SHOPRANK_IMAGE>@<SHOPRANK_IMAGE_DIGEST>` from the cluster's pinned versions."""
    values = dict(line.split("=", 1) for line in versions.read_text().splitlines()
                  if line.strip() and not line.startswith("#") and "=" in line)
    return f"{values['SHOPRANK_IMAGE']}@{values['SHOPRANK_IMAGE_DIGEST']}"


BASE_IMAGE = os.environ.get("SHOPRANK_IMAGE") or pinned_image()
COMPONENT_OPTIONS = {"base_image": BASE_IMAGE, "install_kfp_package": False}
