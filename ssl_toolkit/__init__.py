"""ssl_toolkit: BYOL-family self-supervised learning for images and audio, driven by YAML recipes."""
__version__ = "0.1.0"
