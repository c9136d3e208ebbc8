"""The version of opflow: the one place it is written.

``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``), so the package
metadata, ``opflow.__version__`` and ``opflow --version`` always agree.
"""

__version__ = "0.1.0"
