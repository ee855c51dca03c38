"""nova 34's own PCI functional tests, unmodified, with the plugin enabled."""
