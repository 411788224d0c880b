"""Front doors of the `sonolab` tools: argument parsing and messages over the library functions."""
