"""azrdp: find out why a Windows VM on Azure refuses Remote Desktop, explain it, fix it safely.

Importing this package is cheap: nothing here touches the network or imports azure.*.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
