"""Named presets for frozen dataclass configurations (one lookup for every config class)."""

from __future__ import annotations

from typing import ClassVar

from atvg_tf.errors import InputError


class Presets:
    """Mixin: `PRESETS` maps a preset name to the field values that differ from the defaults.

        @dataclasses.dataclass(frozen=True)
        class NetConfig(Presets):
            PRESETS = {"paper": {}, "small": {"units": 64}}
            units: int = 256

        NetConfig.preset("small")  # NetConfig(units=64)
    """

    PRESETS: ClassVar[dict[str, dict]] = {}

    @classmethod
    def preset(cls, name: str):
        """The configuration called `name`; an unknown name is an `InputError` listing the known ones."""
        if name not in cls.PRESETS:
            raise InputError(f"unknown {cls.__name__} preset {name!r}; choose one of {', '.join(sorted(cls.PRESETS))}.")
        return cls(**cls.PRESETS[name])

    @classmethod
    def from_fields(cls, fields: dict):
        """The configuration whose fields are `fields` (as JSON holds them: lists become tuples again)."""
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()})
