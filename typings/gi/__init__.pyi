"""Type stubs for PyGObject: GIMP's introspected modules are typed as Any."""


def require_version(namespace: str, version: str) -> None: ...
