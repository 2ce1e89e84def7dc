"""Runner hooks, registered in mmengine's root HOOKS (any config scope finds them)."""
from .load_from_report_hook import LoadFromReportHook

__all__ = ['LoadFromReportHook']
