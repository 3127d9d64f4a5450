"""What a process runs on: devices and precision, seeds, shared files, the cache folder."""
