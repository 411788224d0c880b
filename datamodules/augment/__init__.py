"""sonolab: augment."""
