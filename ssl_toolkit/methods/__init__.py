"""One file per method; each registers itself in METHODS."""

from . import (  # noqa: F401
    byol,  # noqa: F401
    ccsl,
    cssl,
    simclr,
    simsiam,
    tribyol,
)
