"""Models in and converted: importers, TFLite conversion and quantisation, INT8 debugging."""
