"""The HDF5 audio format and its engine: layout, audio I/O, label tables, the packer."""
