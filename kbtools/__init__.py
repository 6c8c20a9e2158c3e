"""kbtools: share MountainSort datasets on a KBucket network, checked and verified."""

__version__ = "0.1.0"
