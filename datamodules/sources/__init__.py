"""One module per public dataset: its layout on disk -> pack items (and its packing recipe)."""
