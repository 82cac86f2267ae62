"""Input contracts, reference data, synthetic data, adapters, feature definitions and engines."""
