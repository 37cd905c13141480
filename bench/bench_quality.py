"""`make bench-quality`: every baseline and model on both protocols; writes bench/results/quality.json."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from shoprank.evaluation.quality import main  # noqa: E402

if __name__ == "__main__":
    main()
