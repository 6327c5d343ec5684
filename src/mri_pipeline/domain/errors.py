"""Domain errors, mapped once at each edge (DICOM status, HTTP status, CLI message)."""


class DomainError(Exception):
    """Base of every rule the domain refuses."""


class UnknownIndication(DomainError):
    """An indication or red-flag code not in the catalogue."""


class UnknownProtocol(DomainError):
    """A protocol code not in the catalogue."""


class InvalidOrder(DomainError):
    """An order that breaks a rule of the catalogue or the schedule."""


class InvalidQuery(DomainError):
    """A C-FIND identifier whose keys the matching rules cannot read."""
