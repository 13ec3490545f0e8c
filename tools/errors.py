"""Compatibility name: the module is tools/model/errors.py now."""

from .model.errors import *  # noqa: F401,F403
