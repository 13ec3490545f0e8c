"""Compatibility name: the module is tools/model/workspace.py now."""

from .model.workspace import *  # noqa: F401,F403
