"""Every kernel tinyc can call, declared once (tinyc.targets.registry explains a declaration).

One module per family of ops; within a module, declarations go in order of preference (the first
kernel that takes an op runs it). To add a kernel: declare it in its family's module (ops, dtypes,
instruction sets, preconditions, scratch, C emitter, runtime_c sources, source, cost class) and
write its C in runtime_c/.
"""
from . import conv, depthwise, fully_connected, elementwise, pooling, softmax, conversions, movement  # noqa: F401
# The float32 kernels (float models) after the integer ones, whose order of preference stays as it is.
from . import float32  # noqa: F401
