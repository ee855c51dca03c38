"""The pure PCI domain core: no I/O, never imports nova."""
