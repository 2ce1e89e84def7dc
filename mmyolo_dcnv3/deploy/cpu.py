"""Which integer dot product the CPU gives the INT8 kernels of ONNX Runtime and OpenVINO (numpy-free).

x86 CPUs multiply uint8 activations by int8 weights in one of two ways.
Without VNNI, ``(v)pmaddubsw`` adds each pair of products into a 16-bit sum
that saturates: two products of 255 by 127 exceed it. With VNNI (AVX-512
VNNI, AVX-VNNI) or AMX, ``vpdpbusd``/``tdpbusd`` accumulate four products
straight into 32 bits and nothing saturates. ONNX Runtime (MLAS) and
OpenVINO (oneDNN) pick their kernels from the CPU's features, so the same
INT8 file computes differently on the two kinds of machine unless its
weights fit in 7 bits, where even the 16-bit sums cannot saturate.
"""
from dataclasses import dataclass
from typing import Optional

CPUINFO = '/proc/cpuinfo'


@dataclass(frozen=True)
class IntegerDotPath:
    """The uint8 x int8 dot product the runtimes' INT8 kernels run on.

    Attributes:
        name: what it is, e.g. ``'AVX2 (vpmaddubsw, saturating)'``,
            ``'AVX-512 VNNI'``, ``'AVX-VNNI'``, ``'AMX'``.
        vnni: the CPU has AVX-512 VNNI or AVX-VNNI (32-bit accumulation).
        amx: the CPU has AMX-INT8 tiles.
    """

    name: str
    vnni: bool
    amx: bool

    @property
    def saturates(self) -> bool:
        """Whether full 8-bit weights can saturate its sums (no VNNI and no AMX: 16-bit pair sums)."""
        return not (self.vnni or self.amx)


def integer_dot_path(cpuinfo: Optional[str] = None) -> IntegerDotPath:
    """The integer dot path of this CPU, or of the ``/proc/cpuinfo`` text ``cpuinfo``.

    Read from the first processor's ``flags`` line (Linux, x86). Without one
    (another operating system or architecture) the path is unknown and
    taken to be the saturating one, the case that needs the safe recipe.
    """
    if cpuinfo is None:
        try:
            with open(CPUINFO) as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ''
    flags = next((set(line.split(':', 1)[1].split()) for line in cpuinfo.splitlines()
                  if line.split(':', 1)[0].strip() == 'flags' and ':' in line), None)
    if flags is None:
        return IntegerDotPath('unknown (no x86 CPU flags; assumed saturating)', vnni=False, amx=False)
    vnni = bool({'avx512_vnni', 'avx_vnni'} & flags)
    amx = 'amx_int8' in flags
    if amx:
        name = 'AMX'
    elif 'avx512_vnni' in flags:
        name = 'AVX-512 VNNI'
    elif 'avx_vnni' in flags:
        name = 'AVX-VNNI'
    elif 'avx512bw' in flags:
        name = 'AVX-512 (vpmaddubsw, saturating)'
    elif 'avx2' in flags:
        name = 'AVX2 (vpmaddubsw, saturating)'
    else:
        name = 'SSE4.1 or older (pmaddubsw, saturating)'
    return IntegerDotPath(name, vnni=vnni, amx=amx)


def weight_width_warning(weight_bits: Optional[int], path: IntegerDotPath) -> Optional[str]:
    """What to tell someone who runs an INT8 file with ``weight_bits``-bit weights (None: not recorded)
    on a CPU with integer dot path ``path``, or None when the file computes exactly there."""
    if weight_bits == 8 and path.saturates:
        return (f"8-bit INT8 weights on a CPU whose integer dot products saturate with them ({path.name}): "
                'detections will be off; quantise with --weight-bits 7 for this CPU')
    return None
