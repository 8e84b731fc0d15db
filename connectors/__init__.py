"""Connectors: where events come from and go to outside the pipeline (files, synthetic data, brokers)."""
