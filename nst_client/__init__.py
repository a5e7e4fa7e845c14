"""The typed, torch-free contract between the neural style daemon and its clients.

``protocol`` (with ``params``, ``wire`` and ``errors``) defines every request and reply
of the wire protocol as a frozen dataclass, ``client`` talks to a daemon with them,
``text`` words statuses and errors for people, and ``names`` is the style-name rule.
Only the standard library, msgpack and pyzmq (``client``): nothing here imports torch
or the engine, and the GIMP plug-in vendors this package whole.
"""
