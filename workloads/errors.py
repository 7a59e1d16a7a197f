"""The one error type of the workloads layer."""


class WorkloadError(ValueError):
    """Bad workload input (a length spec, an arrival kind, a tokenizer path, a prompt request):
    the message is one line for the user. A ValueError, so callers that catch ValueError keep working."""
