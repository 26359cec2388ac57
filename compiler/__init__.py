"""tinyc: an ahead-of-time compiler from ONNX to dependency-free C for Arm Cortex-M."""
__version__ = "0.1.0"
