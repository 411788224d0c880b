"""sonolab: metrics."""
