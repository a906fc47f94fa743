"""ktrdr worker."""
