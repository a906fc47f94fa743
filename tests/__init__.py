"""The workspace's tests. A package only so that shared helpers import as ``tests.support``."""
