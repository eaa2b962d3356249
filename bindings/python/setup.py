# Fallback for tools that still run setup.py directly; the metadata is in pyproject.toml.
from setuptools import setup

setup()
