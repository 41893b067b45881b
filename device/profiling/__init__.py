"""Per-operator profile and static memory plan of a .tflite model."""
