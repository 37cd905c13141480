"""The KFP pipeline(s). `nightly.yaml` is the compiled form uploaded to the KFP UI."""
