"""Runnable demonstrations behind ``opflow demo``."""
