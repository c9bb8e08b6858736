"""Using a trained network: predictions with class names (PyTorch or ONNX Runtime), ONNX
export, and the few-shot transfer experiment."""
