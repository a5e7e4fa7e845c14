"""Errors the engine raises. Each carries a stable ``code`` that the wire protocol reports."""


class NSTError(Exception):
    """Base class: a problem a user can understand and act on."""

    code = "internal"


class WeightsMissingError(NSTError):
    code = "weights_missing"


class StyleNotFoundError(NSTError):
    code = "unknown_style"


class ModelFormatError(NSTError):
    """A style model or weights file that cannot be read (corrupt, truncated, wrong shapes)."""

    code = "bad_model"


class ImageError(NSTError):
    code = "bad_image"


class ParameterError(NSTError):
    code = "bad_parameter"


class OutOfMemoryError(NSTError):
    code = "out_of_memory"


class Cancelled(NSTError):
    code = "cancelled"
