"""ktrdr core."""
