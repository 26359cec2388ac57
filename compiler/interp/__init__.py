"""Kernels of the reference interpreter (`tinyc.interpreter`).

`windows` holds layout handling and sliding windows shared by convolutions and pools, `float_kernels`
the ONNX float32 semantics, `int_kernels` the TFLite / CMSIS-NN integer semantics, `movement` the ops
that only move bytes and are the same in both forms.
"""
