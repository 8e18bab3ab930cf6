"""One file per method; each registers itself in METHODS."""
from . import byol  # noqa: F401
from . import ccsl, cssl, simclr, simsiam, tribyol  # noqa: F401
