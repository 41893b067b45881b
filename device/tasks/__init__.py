"""What a model's outputs mean: one module per task (classify today), chosen in tasks/registry.py."""
