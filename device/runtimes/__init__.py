"""TFLite runtimes on the board: which one is there, and what it made of a model."""
