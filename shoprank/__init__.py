"""shoprank: nightly MLOps for e-commerce search and recommendation.

The library holds all domain logic; Airflow DAGs, KFP components and the CLI are thin adapters.
"""

__version__ = "0.1.0"
