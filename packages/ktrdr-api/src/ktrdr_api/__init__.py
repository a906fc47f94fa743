"""ktrdr api."""
