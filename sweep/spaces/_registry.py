"""Name -> Space. A family module calls `register` at import; `spaces/__init__` imports them all."""

from __future__ import annotations

from sweep.spaces._space import Space
from trainables.errors import ConfigError

_SPACES: dict[str, Space] = {}


def register(space: Space) -> Space:
    """Add a space; a second space with the same name is a mistake, not an override."""
    if space.name in _SPACES and _SPACES[space.name] is not space:
        raise ConfigError(f"space {space.name!r} is already registered; pick another name")
    _SPACES[space.name] = space
    return space


def get_space(name: str) -> Space:
    try:
        return _SPACES[name]
    except KeyError:
        raise ConfigError(
            f"unknown space {name!r}; choose one of {sorted(_SPACES)} (see --list-spaces)"
        ) from None


def list_spaces() -> list[Space]:
    return [_SPACES[n] for n in sorted(_SPACES)]
