"""Corridor: open-source Customer Experience Management.

Measures the gap between what customers expected and what they experienced at every touch point
of the customer corridor, explains it, attributes it, and helps close it.
"""

__version__ = "0.1.0"
