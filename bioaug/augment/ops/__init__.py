"""The op registry: protocol step name → :class:`Op` class.

Adding an op is one module in this package: an :class:`Op` subclass decorated with
:func:`register_op` that declares its ``Params`` model, ``channels``, ``group``,
``summary``, ``example`` parameters and whether it ``resamples``. The modules of this
package are imported here, so their ops are registered as soon as ``bioaug.augment`` is;
validation, ``list-ops``, the generated documentation, the property tests and the fusion of
geometric steps all read :data:`OPS` and those declarations.
"""

from __future__ import annotations

import importlib
import pkgutil

from bioaug.augment.ops.base import GROUPS, OPS, ChannelSupport, Op, ops_by_group, register_op
from bioaug.augment.ops.params import OpParams

#: Modules of this package that hold shared machinery rather than ops.
_NOT_OPS = frozenset({"base", "params", "geometry"})


def _discover() -> None:
    """Import every op module, then order the registry as the reference lists it: by
    group (:data:`GROUPS` first), alphabetically within a group."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in _NOT_OPS:
            importlib.import_module(f"{__name__}.{info.name}")
    ranked = sorted(OPS.items(), key=lambda item: (
        GROUPS.index(item[1].group) if item[1].group in GROUPS else len(GROUPS),
        item[1].group, item[0]))
    OPS.clear()
    OPS.update(ranked)


_discover()


__all__ = ["GROUPS", "OPS", "ChannelSupport", "Op", "OpParams", "ops_by_group", "register_op"]
