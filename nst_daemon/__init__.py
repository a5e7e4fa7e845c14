"""Neural style daemon: server, job queue, CLI, batch, cluster and video runs.

The wire protocol's messages and the client library are the torch-free ``nst_client``
package (which the GIMP plug-in vendors); this package is the daemon side.
"""

__version__ = "0.1.0"
