"""What a model's outputs mean: one module per task (classify today), chosen in tasks/registry.py."""

# Every task, by module name, in recognition order (the most specific layouts first; raw, which
# fits anything, last). The command line's --task choices read this without importing the tasks
# (and NumPy): a parent process that only starts a child stays light.
NAMES = ("keypoints", "segment", "detect", "classify", "raw")
