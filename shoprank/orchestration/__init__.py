"""The nightly steps as plain functions, and the runners that execute the KFP pipeline."""
