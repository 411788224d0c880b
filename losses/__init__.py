"""sonolab: losses."""
