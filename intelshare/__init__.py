"""intelshare: the shared core of the federation.

Envelope cryptography, federation trust (root, directory), treaties and the
sharing policy, the audit log, configuration and the one exception hierarchy.
The ``node`` and ``gateway`` packages build on this core; it imports neither.
"""

__version__ = "0.1.0"
