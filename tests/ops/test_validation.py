"""Every bad argument of the op gets an error that names it."""
import pytest
import torch

from mmyolo_dcnv3.ops import dcnv3, dcnv3_reference
from tests.ops.dcnv3_testing import Case


def call(fn=dcnv3, case=Case(), input=None, offset=None, mask=None, **overrides):
    tensors = dict(zip(('input', 'offset', 'mask'), case.tensors()))
    for name, value in (('input', input), ('offset', offset), ('mask', mask)):
        if value is not None:
            tensors[name] = value
    names = ('kernel_h', 'kernel_w', 'stride_h', 'stride_w', 'pad_h', 'pad_w', 'dilation_h',
             'dilation_w', 'group', 'group_channels', 'offset_scale', 'im2col_step', 'remove_center')
    args = dict(zip(names, case.op_args()))
    args.update(overrides)
    return fn(**tensors, **args)


@pytest.mark.parametrize('fn', [dcnv3, dcnv3_reference])
@pytest.mark.parametrize('kwargs,error,message', [
    (dict(input=torch.zeros(7, 9, 10)), ValueError, r'input must be 4-D channels-last'),
    (dict(offset=torch.zeros(2, 7, 9)), ValueError, r'offset must be 4-D'),
    (dict(mask=torch.zeros(2, 7, 9, 18, 1)), ValueError, r'mask must be 4-D'),
    (dict(input=[[1.0]]), TypeError, r'input must be a torch.Tensor'),
    (dict(input=torch.zeros(2, 7, 9, 10, dtype=torch.long)), TypeError,
     r'input must be a floating-point tensor'),
    (dict(group_channels=4), ValueError, r'input has 10 channels .* group \* group_channels = 2 \* 4 = 8'),
    (dict(offset=torch.zeros(2, 7, 9, 35, dtype=torch.float64)), ValueError,
     r'offset must have shape \(N, H_out, W_out, group \* points \* 2\) = \(2, 7, 9, 36\)'),
    (dict(mask=torch.zeros(2, 7, 9, 9, dtype=torch.float64)), ValueError,
     r'mask must have shape \(N, H_out, W_out, group \* points\) = \(2, 7, 9, 18\)'),
    (dict(offset=torch.zeros(2, 6, 9, 36, dtype=torch.float64)), ValueError,
     r'offset must have shape .* = \(2, 7, 9, 36\).* got \(2, 6, 9, 36\)'),
    (dict(mask=torch.zeros(2, 7, 9, 18)), TypeError,
     r'same dtype, got torch.float64, torch.float64 and torch.float32'),
    (dict(offset=torch.zeros(2, 7, 9, 36, dtype=torch.float64, device='meta')), ValueError,
     r'same device'),
    (dict(kernel_h=0), ValueError, r'kernel_h must be a positive int, got 0'),
    (dict(kernel_w=-3), ValueError, r'kernel_w must be a positive int, got -3'),
    (dict(stride_h=0), ValueError, r'stride_h must be a positive int'),
    (dict(stride_w=1.5), ValueError, r'stride_w must be a positive int, got 1.5'),
    (dict(dilation_h=0), ValueError, r'dilation_h must be a positive int'),
    (dict(dilation_w=-1), ValueError, r'dilation_w must be a positive int'),
    (dict(group=0), ValueError, r'group must be a positive int'),
    (dict(group_channels=0), ValueError, r'group_channels must be a positive int'),
    (dict(im2col_step=0), ValueError, r'im2col_step must be a positive int'),
    (dict(pad_h=-1), ValueError, r'pad_h must be a non-negative int, got -1'),
    (dict(pad_w=-2), ValueError, r'pad_w must be a non-negative int, got -2'),
    (dict(offset_scale='1'), TypeError, r'offset_scale must be a float'),
    (dict(remove_center=1), TypeError, r'remove_center must be a bool'),
    (dict(kernel_h=20, pad_h=0), ValueError, r'input of 7x9 pixels is too small for kernel 20x3'),
])
def test_bad_argument_is_named_in_the_error(fn, kwargs, error, message):
    with pytest.raises(error, match=message):
        call(fn, **kwargs)


@pytest.mark.parametrize('kernel', [(2, 2), (3, 5), (1, 1)])
def test_remove_center_needs_an_odd_square_kernel(kernel):
    case = Case(kernel=kernel)
    with pytest.raises(ValueError, match=r'remove_center=True needs an odd, square kernel of at least 3x3, '
                                         rf'got kernel_h={kernel[0]}, kernel_w={kernel[1]}'):
        call(case=case, remove_center=True)


def test_registered_op_checks_shapes_too():
    # Direct calls bypass the Python checks; the kernels still refuse bad shapes.
    ops = pytest.importorskip('mmyolo_dcnv3.ops._library').compiled_kernels()
    if not ops.available('cpu'):
        pytest.skip('kernels not built')
    case = Case()
    input, offset, mask = case.tensors()
    with pytest.raises(RuntimeError, match=r'dcnv3: mask must have shape \[2, 7, 9, 18\]'):
        torch.ops.mmyolo_dcnv3.dcnv3_forward(input, offset, mask[..., :-1], *case.op_args())
    with pytest.raises(RuntimeError, match=r'dcnv3: input has 8 channels, expected group \* group_channels = 10'):
        torch.ops.mmyolo_dcnv3.dcnv3_forward(input[..., :-2], offset, mask, *case.op_args())
