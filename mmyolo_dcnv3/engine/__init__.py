"""Training engine additions: hooks."""
from .hooks import LoadFromReportHook

__all__ = ['LoadFromReportHook']
