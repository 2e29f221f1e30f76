"""incident-monitor: where is political violence rising beyond what its own history makes normal?"""

__version__ = "0.1.0"
