"""The host path of a model: load, convert, evaluate, bundle, summary."""
