"""The kernel registry: every C function that can run a layer, declared once.

A `Kernel` says which op kinds it serves, with which dtypes, on which instruction sets, under which
further preconditions; how many scratch bytes it needs; how its call is written in C; which
runtime_c files define it; where it comes from ("cmsis-nn": the CMSIS-NN API, implemented by
runtime_c or by a real CMSIS-NN checkout; "tinyc": tinyc's own kernels, always from runtime_c;
"tvm": generated); and its cost for estimates. Declarations live in `tinyc.targets.kernels.*`, one
module per family of ops, in order of preference: for an op, the first kernel that takes it wins.

Selection happens once per op (`select_kernels`, which records the choice in the op's `kernel`
attribute); every later stage (planner, code generator, build files, report) reads the recorded
choice through `kernel_choice`, never selecting again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from tinyc.ir import Graph, Op, Value
from tinyc.ops import KERNEL_ATTR, spec

from .cores import ISAS, Target

if TYPE_CHECKING:  # the emitters' context; codegen imports the registry, not the other way round
    from tinyc.codegen.emit import LayerContext

SOURCES = ("cmsis-nn", "tinyc", "tvm")
VIEW = "view"   # the pseudo-kernel of an op whose output is its input's bytes (no code)

# A precondition: None when the kernel takes the op, else why not, in a few words.
Requirement = Callable[[Target, Op, Graph], "str | None"]
Emitter = Callable[[Op, "LayerContext"], list[str]]


@dataclass(frozen=True)
class DTypes:
    """The dtypes a kernel reads and writes: one per input position (an optional trailing input may
    be absent; with `repeat`, any number of inputs of the last dtype) and the output's."""

    inputs: tuple[str, ...]
    output: str
    repeat: bool = False

    def mismatch(self, inputs: Sequence[Value], output: Value) -> str | None:
        expected = list(self.inputs)
        if self.repeat:
            expected += [self.inputs[-1]] * (len(inputs) - len(expected))
        for i, v in enumerate(inputs):
            if i < len(expected) and v.dtype != expected[i]:
                return f"input {i + 1} is {v.dtype}, the kernel reads {expected[i]}"
        if len(inputs) > len(expected):
            return f"{len(inputs)} inputs, the kernel reads {len(expected)}"
        if output.dtype != self.output:
            return f"the output is {output.dtype}, the kernel writes {self.output}"
        return None


def _always(target: Target, op: Op, graph: Graph) -> str | None:
    return None


def _no_scratch(target: Target, op: Op, graph: Graph) -> int:
    return 0


def output_elements(op: Op, graph: Graph) -> int:
    return graph.values[op.outputs[0]].size


@dataclass(frozen=True)
class Kernel:
    """One C function (or a view) that runs ops of `ops`. Adding a kernel is one declaration plus its C.

    name: the C function ("view": no code, the output is the input's bytes).
    source: "cmsis-nn", "tinyc" or "tvm" (see the module docstring).
    ops, dtypes, isas: the op kinds, dtypes and instruction sets ("plain", "dsp", "mve") it serves.
    requires: further preconditions (layout, geometry, attributes); None when met, else the reason.
    emit: the C statements of one call, from the op and a codegen.emit.LayerContext.
    scratch: bytes of its scratch buffer on a target (cmsis_nn_context.size; 0: ctx.buf may be NULL).
    in_place_inputs: input positions whose buffer the output may start at (the kernel reads every
      element before writing over it), in order of preference; a function of (op, graph) or a tuple.
    raster_block: it computes output pixels in raster order in groups of at most this many, each
      group reading its windows before writing its own pixels (the planner may then start the output
      a little below the input; 0: no such promise).
    sources: the runtime_c .c files that define it (with the files they call into); header: the one
      that declares it.
    cost_class, work: for estimates: instructions per unit of `work` (multiply-accumulates or output
      elements) come from the target's table for `cost_class` (targets.cores).
    reason: why this kernel, in a few words (reports).
    """

    name: str
    source: str
    ops: tuple[str, ...]
    dtypes: DTypes | None
    emit: Emitter | None
    isas: tuple[str, ...] = ISAS
    requires: Requirement = _always
    scratch: Callable[[Target, Op, Graph], int] = _no_scratch
    in_place_inputs: Callable[[Op, Graph], tuple[int, ...]] | tuple[int, ...] = ()
    raster_block: Callable[[Op, Graph], int] | int = 0
    sources: tuple[str, ...] = ()
    header: str = ""
    cost_class: str = "move"
    work: Callable[[Op, Graph], int] = output_elements
    reason: str = ""

    @property
    def is_view(self) -> bool:
        return self.name == VIEW

    def refusal(self, target: Target, op: Op, graph: Graph) -> str | None:
        """None when this kernel runs `op` on `target`, else why it does not."""
        if op.kind not in self.ops:
            return f"it runs {', '.join(self.ops)}, not {op.kind}"
        if target.isa not in self.isas:
            return f"it runs on {'/'.join(self.isas)} cores, not {target.isa}"
        if self.dtypes is not None:
            ins = [graph.values[n] for n in op.inputs if n]
            mismatch = self.dtypes.mismatch(ins, graph.values[op.outputs[0]])
            if mismatch:
                return mismatch
        # Kernels of integer ops take the fixed-point parameters `requantize` adds (the op table's
        # `lowered` entries); float ops have none.
        if graph.values[op.outputs[0]].dtype != "float32" and any(k not in op.attrs for k in spec(op.kind).lowered):
            return "the op has no fixed-point parameters yet (the requantize pass adds them)"
        return self.requires(target, op, graph)


@dataclass(frozen=True)
class KernelChoice:
    """The kernel chosen for one op on one target, with the facts later stages need."""

    kernel: Kernel
    scratch_bytes: int
    in_place_inputs: tuple[int, ...]
    raster_block: int
    work: int

    @property
    def function(self) -> str:
        """The C function called ("" for a view)."""
        return "" if self.kernel.is_view else self.kernel.name

    @property
    def source(self) -> str:
        return self.kernel.source

    @property
    def header(self) -> str:
        return self.kernel.header

    @property
    def is_view(self) -> bool:
        return self.kernel.is_view

    @property
    def in_place(self) -> bool:
        """The output may be written over (the first of) its inputs."""
        return bool(self.in_place_inputs)

    @property
    def reason(self) -> str:
        return self.kernel.reason


# ---- the registry ---------------------------------------------------------------------------------

_KERNELS: dict[str, Kernel] = {}
_BY_OP: dict[str, list[Kernel]] = {}


def register(kernel: Kernel) -> Kernel:
    """Add `kernel` after every kernel already registered for its ops (lower preference)."""
    if kernel.name in _KERNELS:
        raise ValueError(f"kernel {kernel.name!r} is declared twice")
    if kernel.source not in SOURCES:
        raise ValueError(f"kernel {kernel.name!r}: source must be one of {SOURCES}, not {kernel.source!r}")
    if not kernel.is_view and (kernel.emit is None or not kernel.header or not kernel.sources):
        raise ValueError(f"kernel {kernel.name!r} needs an emitter, a header and its runtime_c sources")
    _KERNELS[kernel.name] = kernel
    for kind in kernel.ops:
        spec(kind)  # an unknown op kind is a declaration error
        _BY_OP.setdefault(kind, []).append(kernel)
    return kernel


def _loaded() -> None:
    # The declarations register themselves when their modules are imported.
    from . import kernels  # noqa: F401


def kernel(name: str) -> Kernel:
    """The kernel declared as `name` (KeyError when none is)."""
    _loaded()
    return _KERNELS[name]


def all_kernels() -> list[Kernel]:
    _loaded()
    return list(_KERNELS.values())


def candidates(kind: str) -> list[Kernel]:
    """The kernels that serve `kind`, most preferred first."""
    _loaded()
    return list(_BY_OP.get(kind, ()))


def describe(kern: Kernel, target: Target, op: Op, graph: Graph) -> KernelChoice:
    """The facts of running `op` with `kern` on `target` (the kernel must take the op)."""
    in_place = kern.in_place_inputs(op, graph) if callable(kern.in_place_inputs) else kern.in_place_inputs
    block = kern.raster_block(op, graph) if callable(kern.raster_block) else kern.raster_block
    return KernelChoice(kern, int(kern.scratch(target, op, graph)), tuple(in_place), int(block),
                        int(kern.work(op, graph)))


def select_kernel(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    """The most preferred kernel that runs `op` on `target`, or None when none does."""
    for kern in candidates(op.kind):
        if kern.refusal(target, op, graph) is None:
            return describe(kern, target, op, graph)
    return None


def refusals(target: Target, op: Op, graph: Graph) -> list[tuple[Kernel, str]]:
    """Every candidate kernel for `op` with why it does not run it on `target` (empty when one does
    or when no kernel serves the op kind at all)."""
    out = []
    for kern in candidates(op.kind):
        why = kern.refusal(target, op, graph)
        if why is None:
            return []
        out.append((kern, why))
    return out


def kernel_choice(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    """The choice `select_kernels` recorded on `op` (None when it carries none), with its facts."""
    name = op.attrs.get(KERNEL_ATTR)
    if name is None:
        return None
    kern = kernel(name)
    why = kern.refusal(target, op, graph)
    if why is not None:
        raise ValueError(f"op {op.name!r} records kernel {name!r}, which cannot run it on {target.name}: {why}")
    return describe(kern, target, op, graph)
