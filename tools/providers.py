"""Compatibility name: the module is tools/model/providers.py now."""

from .model.providers import *  # noqa: F401,F403
