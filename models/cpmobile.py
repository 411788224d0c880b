"""CP-Mobile (DCASE Task 1 low-complexity scene classifiers)."""
