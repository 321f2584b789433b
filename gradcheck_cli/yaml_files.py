"""Reading the YAML files users write (config, plans): safe, strict about keys, YAML 1.2 numbers.

PyYAML implements YAML 1.1, where ``1e-4``, ``1E3`` and ``5e+2`` (no dot, or no signed exponent)
are strings, so ``depth-error: 1e-4`` would be refused as "not a number"; YAML 1.2, JSON and
every other language read them as floats. :class:`UserLoader` adds the YAML 1.2 spellings to the
float resolver and refuses a key given twice in one mapping (PyYAML keeps the last silently: a
threshold written twice would be half ignored). It is a ``SafeLoader``: no arbitrary objects.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# YAML 1.2's core-schema float (https://yaml.org/spec/1.2.2/#1023-core-schema), which YAML 1.1's
# resolver misses when the mantissa has no dot: 1e-4, 2E10, -3e+2, 5.e3 is matched by both.
_FLOAT_1_2 = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)$")


class UserLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 floats that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if not isinstance(key, (str, int, float, bool)):
                continue  # an unhashable key: the SafeLoader reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# A class-level copy: SafeLoader itself (and yaml.safe_load elsewhere) is left as it is.
UserLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+.0123456789"))


# No setting, plan or report nests deeper than a few levels; a document nested deeper than this
# is refused as bad input before anything recurses through it (PyYAML and tomllib recurse per
# level and raised RecursionError, exit 3, on 5,000 nested brackets).
MAX_DEPTH = 64


class TooDeep(yaml.YAMLError):
    """A document nested deeper than :data:`MAX_DEPTH` levels."""

    def __str__(self) -> str:
        return f"it is nested deeper than {MAX_DEPTH} levels"


def load_user_yaml(text: str) -> Any:
    """One YAML document, read with :class:`UserLoader`; raises ``yaml.YAMLError`` (also for a
    document nested deeper than :data:`MAX_DEPTH` levels)."""
    try:
        data = yaml.load(text, Loader=UserLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise TooDeep() from None
    check_depth(data)
    return data


def check_depth(data: Any) -> None:
    """Raise :class:`TooDeep` when ``data`` (lists and mappings) nests deeper than
    :data:`MAX_DEPTH` levels; walked with a stack, not by recursion."""
    stack = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TooDeep()
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
