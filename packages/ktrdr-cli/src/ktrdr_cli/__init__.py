"""ktrdr cli."""
