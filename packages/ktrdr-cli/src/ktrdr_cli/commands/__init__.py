"""One module per command group of `ktrdr`."""
