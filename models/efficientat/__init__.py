"""EfficientAT MobileNets (MN) and dynamic MobileNets (DyMN)."""
