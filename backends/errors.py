"""The one error type of the backends layer."""


class BackendError(ValueError):
    """The endpoint or its answers cannot be used (unreachable, wrong API, model not served...),
    or a setting of the backends layer is bad (the mock server's flags): the message is one line
    for the user. A ValueError, so callers that catch ValueError keep working."""
