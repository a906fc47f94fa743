"""Catalogs: what indicators and membership functions exist, their parameters and outputs.

Metadata only; the maths lives in ktrdr-worker, and a test keeps both sides in step.
"""
