"""The integer dot path is read from the CPU's flags: fixture texts of the kinds of x86 CPU that exist (so the
result does not depend on the machine that runs the test), and this machine's own flags."""
import pytest

from mmyolo_dcnv3.deploy.cpu import IntegerDotPath, integer_dot_path, weight_width_warning

BASE_FLAGS = 'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat sse sse2 ssse3 sse4_1 sse4_2 popcnt'
AVX2_FLAGS = BASE_FLAGS + ' avx f16c fma avx2 bmi1 bmi2'


def cpuinfo(flags, processors=2):
    """A /proc/cpuinfo text of ``processors`` identical x86 processors."""
    return ''.join(f'processor\t: {i}\nvendor_id\t: AuthenticAMD\nmodel name\t: Test CPU\nflags\t\t: {flags}\n'
                   'bugs\t\t: sysret_ss_attrs\n\n' for i in range(processors))


@pytest.mark.parametrize('flags, name, vnni, amx', [
    (AVX2_FLAGS, 'AVX2 (vpmaddubsw, saturating)', False, False),  # this project's machine, Zen 2/3, Haswell
    (AVX2_FLAGS + ' avx512f avx512dq avx512bw avx512vl', 'AVX-512 (vpmaddubsw, saturating)', False, False),  # SKX
    (AVX2_FLAGS + ' avx512f avx512bw avx512vl avx512_bf16 avx512_vnni', 'AVX-512 VNNI', True, False),  # Zen 4
    (AVX2_FLAGS + ' avx_vnni', 'AVX-VNNI', True, False),  # Alder Lake
    (AVX2_FLAGS + ' avx512f avx512bw avx512_vnni amx_bf16 amx_tile amx_int8', 'AMX', True, True),  # Sapphire Rapids
    (BASE_FLAGS, 'SSE4.1 or older (pmaddubsw, saturating)', False, False),
])
def test_integer_dot_path_is_read_from_the_flags(flags, name, vnni, amx):
    path = integer_dot_path(cpuinfo(flags))
    assert path == IntegerDotPath(name, vnni=vnni, amx=amx)
    assert path.saturates is not (vnni or amx)


def test_a_flag_is_matched_whole_not_as_part_of_another():
    """'avx512_vnni' holds 'vnni' and 'avx512_vnni_extra' would hold 'avx512_vnni': neither is a VNNI flag."""
    assert integer_dot_path(cpuinfo(AVX2_FLAGS + ' vnni avx512_vnni_extra')).saturates


@pytest.mark.parametrize('text', ['', 'processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x41\n'])
def test_without_x86_flags_the_path_is_unknown_and_taken_as_saturating(text):
    path = integer_dot_path(text)
    assert path.name.startswith('unknown') and path.saturates


def test_this_machines_path_is_one_of_the_known_ones():
    """Read from /proc/cpuinfo (or unknown off Linux): a name and flags that agree with each other."""
    path = integer_dot_path()
    assert path.saturates is not (path.vnni or path.amx)
    assert ('saturating' in path.name) is path.saturates


@pytest.mark.parametrize('flags, weight_bits, warned', [
    (AVX2_FLAGS, 8, True),
    (AVX2_FLAGS, 7, False),
    (AVX2_FLAGS, None, False),  # a float file, or the quantiser's own weights
    (AVX2_FLAGS + ' avx512f avx512bw avx512vl avx512_vnni', 8, False),
    (AVX2_FLAGS + ' avx_vnni', 8, False),
])
def test_8_bit_weights_are_warned_about_only_where_the_sums_saturate(flags, weight_bits, warned):
    warning = weight_width_warning(weight_bits, integer_dot_path(cpuinfo(flags)))
    assert (warning is not None) is warned
    if warned:
        assert 'AVX2 (vpmaddubsw, saturating)' in warning and '--weight-bits 7' in warning
