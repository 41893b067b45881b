"""Models from other frameworks: ONNX (onnx2tf in its own venv), PyTorch (exported to ONNX in its own
venv), ONNX Runtime's own variants, and the fidelity check between the converted model and ORT."""
