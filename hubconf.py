"""torch.hub entry point: ``torch.hub.load(REPO_DIR, "encoder", source="local", path=FOLDER)`` returns the same
:class:`ssl_toolkit.Encoder` as ``ssl_toolkit.load_encoder(FOLDER)`` — FOLDER an export (``ssl-toolkit export``), a
run directory or any file ``load_encoder`` reads. Offline: nothing is downloaded."""

dependencies = ["torch", "torchaudio", "torchvision", "numpy", "yaml", "safetensors"]


def encoder(path, **kwargs):
    """An ssl_toolkit Encoder (front end + encoder + weights card) from ``path``; keyword arguments as
    ``ssl_toolkit.load_encoder`` (device, trainable, freeze_bn, ...)."""
    from ssl_toolkit import load_encoder

    return load_encoder(path, **kwargs)
