"""The one thing pyproject.toml cannot say without an experimental table: livepitch's C audio callback.

The extension is optional: where it cannot be compiled (no compiler or Python headers) the
install goes on, and livepitch uses its Python callback (livepitch/native_capture.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("livepitch._capture_native", sources=["livepitch/_capture_native.c"], optional=True),
    ]
)
