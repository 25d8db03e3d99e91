"""Only what pyproject.toml cannot say: cffi's setuptools integration builds the C
fan-out step (sfu/_fanout) from sfu/fanout_build.py into the wheel."""

from setuptools import setup

setup(cffi_modules=["sfu/fanout_build.py:ffibuilder"])
