"""KFP components, one per nightly step: thin adapters that call shoprank.orchestration.steps.

Lightweight Python components: KFP ships each function's source to the pod (or, locally, to a
kfp.local subprocess), so every import happens inside the function. On a cluster they run in the
shoprank image, which already holds the project and kfp; nothing is pip-installed at run time.
"""

import os

BASE_IMAGE = os.environ.get("SHOPRANK_IMAGE", "ghcr.io/shoprank/shoprank:0.1.0")
COMPONENT_OPTIONS = {"base_image": BASE_IMAGE, "install_kfp_package": False}
