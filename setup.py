"""Only the optional C accelerator lives here; everything else is in pyproject.toml.

``optional=True``: without a compiler or OpenSSL's headers the install still succeeds
and the scanner uses its pure-Python path (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pipelines.match._speedups",
            ["pipelines/match/_speedups.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall"],
            optional=True,
        )
    ]
)
