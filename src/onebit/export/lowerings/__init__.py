"""The built-in lowerings, one module per family of ops; importing this package registers them.

Each module registers its lowerings with :mod:`onebit.export.registry`'s decorators, the
same public mechanism a user's own module uses. Shared helpers are in :mod:`.common`.
"""

from onebit.export.lowerings import (  # noqa: F401  (imported to register)
    activations,
    arithmetic,
    layers,
    normalization,
    pooling,
    quantizers,
    residual,
    tensor,
)
