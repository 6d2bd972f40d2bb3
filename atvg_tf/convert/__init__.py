"""Converters from other frameworks' checkpoints to this project's model folders.

Converters import the models and the generation conventions; nothing below imports a converter.
"""
