"""Plain-PyTorch network definitions."""
