"""Neural style daemon: wire protocol, client library, server, CLI.

``nst_daemon``, ``nst_daemon.protocol`` and ``nst_daemon.client`` import only pyzmq,
msgpack and the standard library (never torch): the GIMP plug-in vendors these three.
"""

__version__ = "0.1.0"
