"""The DCNv3 operator. Imports and runs with torch alone (no OpenMMLab)."""
from .dcnv3_op import IMPL_ENV, dcnv3, dcnv3_implementation
from .reference import dcnv3_reference, sampling_locations

__all__ = ['dcnv3', 'dcnv3_reference', 'dcnv3_implementation', 'sampling_locations', 'IMPL_ENV']
