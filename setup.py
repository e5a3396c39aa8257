"""The one thing pyproject.toml cannot say without an experimental table: livepitch's C extensions.

Both are optional: where they cannot be compiled (no compiler or Python headers) the install
goes on, and livepitch uses its Python audio callback (livepitch/native_capture.py) and an
abort inside PortAudio ends the process (livepitch/abort_restart.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("livepitch._capture_native", sources=["livepitch/_capture_native.c"], optional=True),
        Extension("livepitch._abort_restart", sources=["livepitch/_abort_restart.c"], optional=True),
    ]
)
