"""The built-in lowerings, one module per family of ops; importing this package registers them.

Each module registers its lowerings with :mod:`onebit.export.registry`'s decorators, the
same public mechanism a user's own module uses. Every module of this package is imported
here (a new family needs only its file); shared helpers are in :mod:`.common`.
"""

import importlib as _importlib
import pkgutil as _pkgutil

for _m in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _importlib.import_module(f"{__name__}.{_m.name}")
