"""The built-in MobileNet-style model: its architecture and its training."""
