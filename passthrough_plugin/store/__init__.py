"""Report stores: the latest HostReport per host, and atomic claims."""
