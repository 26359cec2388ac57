"""Scratch-buffer sizes of CMSIS-NN's int8 kernels, per instruction set, in Python.

These are the numbers CMSIS-NN's `*_get_buffer_size()` functions return on a core with no SIMD
("plain": Cortex-M0/M0+/M3 and hosts), with the DSP extension ("dsp": Cortex-M4/M7/M33) or with Helium
("mve": Cortex-M55), for CMSIS-NN built with GCC (matched to arm_nnfunctions.h V.19.1.0). tinyc's
runtime_c/nn_buffer_sizes.c implements the same functions in C; the tests check that both agree.
The compiler uses these to reserve exactly the scratch each layer's kernel will ask for.

Integer arithmetic here follows C: `_c_div` and `_c_rem` truncate toward zero like C's / and %.
"""
from __future__ import annotations

from .cores import ISAS

# Helium's depthwise kernel works on blocks of this many channels.
MVE_DW_CHANNEL_BLOCK = 124


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _c_rem(a: int, b: int) -> int:
    return a - _c_div(a, b) * b


def _round_up(x: int, multiple: int) -> int:
    return _c_div(x + multiple - 1, multiple) * multiple


def _check_isa(isa: str) -> None:
    if isa not in ISAS:
        raise ValueError(f"unknown instruction set {isa!r}; expected one of {', '.join(ISAS)}")


def convolve_s8(isa: str, input_c: int, kernel_h: int, kernel_w: int) -> int:
    """arm_convolve_s8: two int16 im2col columns (padded to 4 values) without Helium; four int8
    columns padded to 16 bytes with Helium. Uses the input's channel count even for grouped convs."""
    _check_isa(isa)
    column = kernel_w * kernel_h * input_c
    if isa == "mve":
        return 4 * _round_up(column, 16)
    return 2 * _round_up(column, 4) * 2


def _convolve_1_x_n_mve(pad_left: int, stride_w: int, kernel_w: int, input_w: int, input_c: int,
                        output_w: int, kernel_h: int) -> int:
    total_pad = (output_w - 1) * stride_w + kernel_w - input_w
    extra_right = _c_rem(total_pad, 2)
    right_outputs = (max(1, _c_div(pad_left + extra_right + stride_w - 1, stride_w))
                     if pad_left + extra_right != 0 else 0)
    left_outputs = max(1, _c_div(pad_left + stride_w - 1, stride_w)) if pad_left != 0 else 0
    middle_outputs = max(output_w - (right_outputs + left_outputs), 0)
    if right_outputs + middle_outputs + left_outputs != output_w:
        return convolve_s8("mve", input_c, kernel_h, kernel_w)
    left_bytes = kernel_w * input_c + pad_left * input_c
    right_bytes = (kernel_w - 1) * input_c + (right_outputs * input_c if extra_right else pad_left * input_c)
    return max(left_bytes, right_bytes)


def convolve_1_x_n_s8(isa: str, *, pad_left: int, stride_w: int, kernel_w: int, input_w: int,
                      input_c: int, output_w: int, kernel_h: int = 1) -> int:
    """arm_convolve_1_x_n_s8: the general kernel's buffer, except on Helium: one padded input row."""
    _check_isa(isa)
    if isa == "mve":
        return _convolve_1_x_n_mve(pad_left, stride_w, kernel_w, input_w, input_c, output_w, kernel_h)
    return convolve_s8(isa, input_c, kernel_h, kernel_w)


def convolve_1x1_s8_fast(isa: str, input_c: int) -> int:
    """arm_convolve_1x1_s8_fast: none (its DSP variant buffers only when built with Arm Compiler 6)."""
    _check_isa(isa)
    return 0


def is_convolve_1x1(*, pad_top: int, pad_left: int, kernel_h: int, kernel_w: int, dilation_h: int,
                    dilation_w: int, input_c: int, kernel_c: int) -> bool:
    """CMSIS-NN's test for the 1x1 kernels (it reads only the top/left padding)."""
    return (pad_top == 0 and pad_left == 0 and kernel_h == 1 and kernel_w == 1 and dilation_h == 1
            and dilation_w == 1 and input_c == kernel_c)


def is_convolve_1_x_n(*, input_h: int, dilation_w: int, kernel_h: int, stride_w: int, input_c: int,
                      kernel_c: int) -> bool:
    """CMSIS-NN's test for the 1xN kernel."""
    return (input_h == 1 and dilation_w == 1 and kernel_h == 1 and (stride_w * input_c) % 4 == 0
            and input_c == kernel_c)


def convolve_wrapper_s8(isa: str, *, input_h: int, input_w: int, input_c: int, kernel_h: int,
                        kernel_w: int, kernel_c: int, pad_top: int, pad_left: int, stride_w: int,
                        dilation_h: int, dilation_w: int, output_w: int) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size: the size of the kernel the wrapper dispatches to."""
    _check_isa(isa)
    if is_convolve_1x1(pad_top=pad_top, pad_left=pad_left, kernel_h=kernel_h, kernel_w=kernel_w,
                       dilation_h=dilation_h, dilation_w=dilation_w, input_c=input_c, kernel_c=kernel_c):
        return 0
    if is_convolve_1_x_n(input_h=input_h, dilation_w=dilation_w, kernel_h=kernel_h, stride_w=stride_w,
                         input_c=input_c, kernel_c=kernel_c):
        return convolve_1_x_n_s8(isa, pad_left=pad_left, stride_w=stride_w, kernel_w=kernel_w,
                                 input_w=input_w, input_c=input_c, output_w=output_w, kernel_h=kernel_h)
    return convolve_s8(isa, input_c, kernel_h, kernel_w)


def depthwise_conv_s8_opt(isa: str, input_c: int, kernel_h: int, kernel_w: int) -> int:
    """arm_depthwise_conv_s8_opt: DSP keeps every channel's input patch as int16; Helium keeps four
    patches of one block of channels; plain cores run the general kernel (no buffer)."""
    _check_isa(isa)
    if isa == "mve":
        return 4 * MVE_DW_CHANNEL_BLOCK * kernel_w * kernel_h
    if isa == "dsp":
        return input_c * kernel_w * kernel_h * 2
    return 0


def depthwise_conv_3x3_s8(isa: str) -> int:
    _check_isa(isa)
    return 0


def depthwise_conv_s8(isa: str) -> int:
    _check_isa(isa)
    return 0


def fully_connected_s8(isa: str, units: int) -> int:
    """arm_fully_connected_s8 (and _per_channel): Helium reads one int32 kernel sum per output unit
    from the buffer (arm_vector_sum_s8 fills it); other cores need none."""
    _check_isa(isa)
    return units * 4 if isa == "mve" else 0


def avgpool_s8(isa: str, channels: int) -> int:
    """arm_avgpool_s8: the DSP kernel sums a window into one int32 per channel."""
    _check_isa(isa)
    return channels * 4 if isa == "dsp" else 0
